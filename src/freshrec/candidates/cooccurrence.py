"""Co-occurrence: items that followed the user's recent items in other users' sequences, counted live.

"People who had this next had ...": the user's :data:`RECENT` newest entries vote for their followers in the
live item graph (:mod:`freshrec.state.graph`), the newest with weight 1, the one before it 1/2, then 1/3...
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from freshrec.candidates.base import Proposal, top_k
from freshrec.schema import UserSnapshot
from freshrec.state.base import StateStore

#: The user's newest entries that vote.
RECENT = 5


class CoOccurrence:
    """The co-occurrence candidate source (see the module docstring).

    Example
    -------
    >>> from freshrec.schema import EventRecord
    >>> from freshrec.sequence import EventTypes
    >>> from freshrec.state.memory import MemoryStateStore
    >>> state = MemoryStateStore(EventTypes(["view"]))
    >>> events = [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 3), ("c", 1)]   # (user, item)
    >>> _ = state.apply([EventRecord(n + 1, u, str(i), "view", float(n)) for n, (u, i) in enumerate(events)],
    ...             [i for _, i in events])
    >>> c = state.get("c")
    >>> [p.items.tolist() for p in CoOccurrence(state).propose([c], 5, [c.seen])]   # 2 followed 1 twice
    [[2, 3]]
    """

    name = "co-occurrence"

    def __init__(self, state: StateStore, recent: int = RECENT) -> None:
        self.state = state
        self.recent = recent

    def propose(
        self, snapshots: Sequence[UserSnapshot | None], k: int, exclude: Sequence[np.ndarray]
    ) -> list[Proposal]:
        out = []
        for snap, seen in zip(snapshots, exclude, strict=True):
            if snap is None or not len(snap.items):
                out.append(Proposal.empty())
                continue
            newest_first = list(dict.fromkeys(snap.items[::-1][: self.recent].tolist()))
            scores: dict[int, float] = {}
            for rank, followers in enumerate(self.state.followers(newest_first)):
                weight = 1.0 / (rank + 1)
                for item, count in followers.items():
                    scores[item] = scores.get(item, 0.0) + weight * count
            out.append(top_k(scores, k, seen))
        return out
