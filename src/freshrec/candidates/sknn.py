"""Session-kNN: items from the sequences of users who recently had the same items, in the spirit of STAN
(Garg et al., SIGIR 2019) and V-SKNN (Ludewig & Jannach, 2018).

1. The user's :data:`RECENT` newest distinct entries, newest first, weigh 1, 1/2, 1/3, ... (recency within
   the user's own sequence).
2. Neighbours: the users who most recently had each of those items (at most :data:`SAMPLE` per item, from the
   live item graph); a neighbour's similarity is the summed weight of the user's items it shares.
3. The :data:`NEIGHBOURS` most similar neighbours each contribute the items around their newest shared entry,
   weighted by their similarity and by ``exp(-(distance - 1) / DECAY)``; items after the shared entry (what
   came next) count fully, items before it half.

Every part is read from live state, so an event changes the next request's neighbours and scores.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from freshrec.candidates.base import Proposal, top_k
from freshrec.schema import UserSnapshot
from freshrec.state.base import StateStore

#: The user's newest distinct entries that look for neighbours.
RECENT = 10
#: Users sampled per item (the most recent ones).
SAMPLE = 100
#: Neighbours whose sequences vote.
NEIGHBOURS = 100
#: Entries on either side of a neighbour's shared entry that it votes for.
REACH = 10
#: How fast a vote decays with the distance from the shared entry.
DECAY = 3.0
#: The weight of entries before the shared one, relative to those after it.
BEFORE = 0.5


class SessionKNN:
    """The session-kNN candidate source (see the module docstring).

    Example
    -------
    >>> from freshrec.schema import EventRecord
    >>> from freshrec.sequence import EventTypes
    >>> from freshrec.state.memory import MemoryStateStore
    >>> state = MemoryStateStore(EventTypes(["view"]))
    >>> rows = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 4), ("c", 1)]   # (user, item), in time order
    >>> _ = state.apply([EventRecord(n + 1, u, str(i), "view", float(n)) for n, (u, i) in enumerate(rows)],
    ...             [i for _, i in rows])
    >>> c = state.get("c")
    >>> proposal, = SessionKNN(state).propose([c], 5, [c.seen])
    >>> proposal.items.tolist()   # what followed 1 for a and b; 2 right after it scores like 4
    [2, 4, 3]
    """

    name = "session-knn"

    def __init__(
        self,
        state: StateStore,
        recent: int = RECENT,
        sample: int = SAMPLE,
        neighbours: int = NEIGHBOURS,
        reach: int = REACH,
        decay: float = DECAY,
    ) -> None:
        self.state = state
        self.recent, self.sample, self.neighbours = recent, sample, neighbours
        self.reach, self.decay = reach, decay
        self._after = np.array([math.exp(-(d - 1) / decay) for d in range(1, reach + 1)])

    def propose(
        self, snapshots: Sequence[UserSnapshot | None], k: int, exclude: Sequence[np.ndarray]
    ) -> list[Proposal]:
        return [self._one(snap, k, seen) for snap, seen in zip(snapshots, exclude, strict=True)]

    def _one(self, snap: UserSnapshot | None, k: int, seen: np.ndarray) -> Proposal:
        if snap is None or not len(snap.items):
            return Proposal.empty()
        recent = list(dict.fromkeys(snap.items[::-1].tolist()))[: self.recent]
        weight = {item: 1.0 / (rank + 1) for rank, item in enumerate(recent)}
        similarity: dict[str, float] = {}
        for item, users in zip(recent, self.state.recent_users(recent, self.sample + 1), strict=True):
            for user in users:
                similarity[user] = similarity.get(user, 0.0) + weight[item]
        similarity.pop(snap.user_id, None)
        nearest = heapq.nlargest(self.neighbours, similarity.items(), key=lambda kv: (kv[1], kv[0]))
        if not nearest:
            return Proposal.empty()
        sims = np.array([sim for _, sim in nearest])
        found = self.state.sequences([u for u, _ in nearest])
        seqs = [q if q is not None else np.zeros(0, dtype=np.int64) for q in found]
        lengths = np.array([len(q) for q in seqs])
        if not lengths.sum():
            return Proposal.empty()
        flat = np.concatenate(seqs)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ends = starts + lengths
        # each neighbour's newest entry the user shares (its anchor), for all neighbours at once
        shared = np.zeros(max(recent) + 1, dtype=bool)
        shared[recent] = True
        hit = (flat < len(shared)) & shared[np.minimum(flat, len(shared) - 1)]
        position = np.where(hit, np.arange(len(flat)), -1)
        nonempty = lengths > 0
        anchors = np.full(len(seqs), -1)
        anchors[nonempty] = np.maximum.reduceat(position, starts[nonempty])
        keep = anchors >= starts
        anchors, sims, starts, ends = anchors[keep], sims[keep], starts[keep], ends[keep]
        if not len(anchors):
            return Proposal.empty()
        steps = np.arange(1, self.reach + 1)
        after = anchors[:, None] + steps[None, :]  # [K, R] positions in flat
        before = anchors[:, None] - steps[None, :]
        ok_after, ok_before = after < ends[:, None], before >= starts[:, None]
        weight = sims[:, None] * self._after[None, :]
        votes = np.concatenate([flat[after[ok_after]], flat[before[ok_before]]])
        weights = np.concatenate([weight[ok_after], BEFORE * weight[ok_before]])
        if not len(votes):
            return Proposal.empty()
        items, inverse = np.unique(votes, return_inverse=True)
        totals = np.bincount(inverse, weights=weights)
        return top_k(dict(zip(items.tolist(), totals.tolist(), strict=True)), k, seen)
