"""Live baselines for the streaming replay: a candidate source on its own, as a user could deploy it.

Each baseline answers from the engine's live state (updated by every ingested event) through one of the
serving path's candidate sources (:mod:`freshrec.candidates`), so the replay measures exactly what that source
proposes; a list the source cannot fill is completed from trending, as a deployed counter would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from freshrec.candidates.base import CandidateSource
from freshrec.schema import EventRecord

if TYPE_CHECKING:
    from freshrec.engine import Engine


class LiveSource:
    """A candidate source as a replay strategy: its top k for the user, seen items excluded, then trending.

    Example
    -------
    >>> import tempfile
    >>> from freshrec.candidates.cooccurrence import CoOccurrence
    >>> from freshrec.config import load_settings
    >>> from freshrec.engine import build_engine
    >>> from freshrec.schema import EventIn
    >>> engine = build_engine(load_settings(storage={"data_dir": tempfile.mkdtemp()}, serving={"ranker": True}))
    >>> rows = [("a", "tent"), ("a", "stove"), ("b", "tent"), ("b", "stove"), ("c", "tent")]
    >>> _ = engine.ingest([EventIn(user_id=u, item_id=i, type="view", ts=float(n)) for n, (u, i) in enumerate(rows)])
    >>> LiveSource(engine, CoOccurrence(engine.state)).recommend("c", 2)
    ['stove']
    >>> engine.close()
    """

    def __init__(self, engine: Engine, source: CandidateSource) -> None:
        self.engine = engine
        self.source = source
        self.name = source.name

    def recommend(self, user_id: str, k: int) -> list[str]:
        snap = self.engine.state.get(user_id)
        seen = snap.seen if snap is not None else np.zeros(0, dtype=np.int64)
        [proposal] = self.source.propose([snap], k, [seen])
        catalog = self.engine.catalog
        out = [catalog.external_id(int(i)) for i in proposal.items]
        if len(out) < k:
            taken = set(out)
            for item in self.engine.recommender.trending_list(
                user_id, min(k + len(out), self.engine.settings.serving.max_k)
            ).items:
                if item.item_id not in taken and len(out) < k:
                    out.append(item.item_id)
        return out

    def learn(self, event: EventRecord) -> None:
        pass  # the engine's ingest already updated the live state this source reads
