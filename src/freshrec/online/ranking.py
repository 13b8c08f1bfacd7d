"""The online trainer's ranker job: requests from the stream, a refitted ranker, its own gate.

While serving uses the ranker (``serving.ranker``), the trainer keeps the live state the ranker's features
read, folded event by event exactly as serving folds it (:class:`~freshrec.ranking.collect.RequestCollector`).
For a sample of each micro-batch's positive events it records the request serving would have answered just
before the event, with the current version as the model: the merged candidates, their features and which
one the user chose (prequential: neither the model nor any ranker has seen that event). After every
:data:`REFIT_EVERY` new requests whose chosen item was a candidate, a ranker is fitted on the newest
:data:`BUFFER_REQUESTS` but the last :data:`GATE_SHARE` of them, and judged against the current version's
ranker on those last ones (:func:`~freshrec.model.gate.compare_ranks`, the model gate's rule and tolerance).
An accepted ranker is published with the current version's weights, as a version of kind ``ranker``; later
model versions carry it on. The requests live in memory: after a restart they are collected afresh.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from freshrec.events.base import iter_pages
from freshrec.model.gate import NOISE_Z, GateDecision, GateLog, compare_ranks
from freshrec.ranking.collect import Request, RequestCollector, requests_of
from freshrec.ranking.features import FEATURES
from freshrec.ranking.ranker import Ranker, load_ranker
from freshrec.schema import EventRecord
from freshrec.serving_model import ServingModel
from freshrec.stores import Stores

log = logging.getLogger(__name__)

#: Positive events per micro-batch whose request is recorded (a uniform sample). Each costs what one
#: served request costs (a few ms): at the default micro-batch of 2,000 events this bounds the trainer's
#: extra work per batch to about a second.
REQUESTS_PER_BATCH = 256
#: Requests (with the chosen item among the candidates) kept to fit on: the newest.
BUFFER_REQUESTS = 20_000
#: New such requests between two ranker fits.
REFIT_EVERY = 500
#: The newest share of the kept requests a new ranker is judged on and not fitted on.
GATE_SHARE = 0.2
#: Fewest requests a ranker is fitted on.
MIN_FIT_REQUESTS = 200

_MODEL_SCORE = FEATURES.index("model_score")


def ranks(ranker: Ranker | None, requests: Sequence[Request]) -> np.ndarray:
    """The chosen item's 0-based rank among each request's candidates, in ``ranker``'s order (``None``: the
    transformer's own order, as a version without a ranker serves)."""
    out = np.empty(len(requests), dtype=np.int64)
    for n, r in enumerate(requests):
        assert r.x is not None
        s = ranker.score(r.x) if ranker is not None else np.nan_to_num(r.x[:, _MODEL_SCORE], nan=-np.inf)
        out[n] = int((s > s[r.target]).sum())
    return out


class OnlineRanker:
    """Collects ranker requests from the stream and refits, gates and publishes the ranker (module docstring).

    Example
    -------
    >>> ranking = OnlineRanker(stores, seed=42)                  # doctest: +SKIP
    >>> ranking.rebuild(upto=trainer.state.committed)           # doctest: +SKIP
    >>> ranking.observe(events, idx)                              # doctest: +SKIP
    >>> decision = ranking.refit_if_due()                         # doctest: +SKIP
    """

    def __init__(self, stores: Stores, seed: int, tolerance: float) -> None:
        self.stores = stores
        self.tolerance = tolerance
        self.collector = RequestCollector(stores)
        self.requests: deque[Request] = deque(maxlen=BUFFER_REQUESTS)
        self.asked = 0
        self.fresh = 0  # kept requests since the last fit
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self._serving: ServingModel | None = None
        self.gate_log = GateLog(stores.registry.root)

    def rebuild(self, upto: Sequence[int]) -> None:
        """Fold the log up to cursor ``upto`` into the live state (no requests)."""
        catalog = self.stores.catalog
        for page in iter_pages(self.stores.event_log, upto=upto):
            self.collector.feed(None, page, catalog.internal_ids([e.item_id for e in page], create=True))

    def serving(self) -> ServingModel | None:
        """The current version bound as serving binds it (rebound when the version changes)."""
        registry = self.stores.registry
        current = registry.current()
        if current is None:
            return None
        if self._serving is None or self._serving.version != current:
            loaded = registry.load(current)
            serving = ServingModel(loaded, self.stores.catalog, self.stores.types, self.stores.settings.serving.index)
            serving.ranker = load_ranker(loaded.ranker)
            if self.stores.content is not None:
                serving.attach_content(self.stores.content)
            self._serving = serving
        return self._serving

    def observe(self, events: Sequence[EventRecord], idx: Sequence[int]) -> int:
        """Fold a micro-batch into the live state, recording the requests of a sample of its positive events;
        returns how many were recorded with the chosen item among the candidates."""
        negative = self.stores.types.negative
        positive = [j for j, e in enumerate(events) if e.type not in negative]
        if len(positive) > REQUESTS_PER_BATCH:
            positive = sorted(self._rng.choice(positive, REQUESTS_PER_BATCH, replace=False).tolist())
        serving = self.serving() if positive else None
        asked = self.collector.feed(serving, events, idx, positive if serving is not None else ())
        kept = [r for r in asked if r.target >= 0]
        self.asked += len(asked)
        self.requests.extend(kept)
        self.fresh += len(kept)
        return len(kept)

    def refit_if_due(self) -> GateDecision | None:
        """Fit, judge and (if accepted) publish a ranker once :data:`REFIT_EVERY` new requests arrived."""
        if self.fresh < REFIT_EVERY or len(self.requests) < MIN_FIT_REQUESTS / (1 - GATE_SHARE):
            return None
        if self.stores.registry.pinned():
            return None
        serving = self.serving()
        if serving is None:
            return None
        self.fresh = 0
        kept = list(self.requests)
        n_gate = max(1, int(len(kept) * GATE_SHARE))
        fit_on, judge_on = kept[:-n_gate], kept[-n_gate:]
        data = requests_of(fit_on)
        ranker, report = Ranker.fit(data.x, data.y, data.groups, seed=self._seed, held_out=0.0)
        decision = compare_ranks(
            "newest requests",
            ranks(ranker, judge_on),
            ranks(serving.ranker, judge_on),
            [r.user_id for r in judge_on],
            self.tolerance,
            serving.version,
            NOISE_Z,
        )
        decision.context = {
            "kind": "ranker",
            "fitted_on_requests": len(fit_on),
            "judged_on_requests": len(judge_on),
            "current_has_ranker": serving.ranker is not None,
        }
        if decision.accepted:
            decision.candidate_version = self._publish(ranker, serving, report, decision)
        self.gate_log.append(decision)
        return decision

    def _publish(self, ranker: Ranker, serving: ServingModel, report: Any, decision: GateDecision) -> str:
        registry = self.stores.registry
        parent = serving.version
        meta = {k: v for k, v in registry.meta(parent).items() if k not in ("version", "config", "parent")}
        meta.pop("created_at", None)
        meta.pop("event_types", None)
        meta.update(
            {
                "kind": "ranker",
                "ranker": {**asdict(report), "fitted_from": "stream requests"},
                "gate": {"reason": decision.reason, "tolerance": decision.tolerance},
                "metrics": {"gate": decision.figures},
            }
        )
        loaded = registry.load(parent)
        version = registry.publish(
            loaded.model, list(loaded.item_ids), list(loaded.event_types), meta, parent=parent, ranker=ranker.to_text()
        )
        log.info("published ranker version %s (%s)", version, decision.reason)
        return version
