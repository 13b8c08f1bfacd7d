"""Live baselines for the streaming replay: item-to-item co-occurrence, updated with every event."""

from __future__ import annotations

from collections import Counter, defaultdict

from freshrec.schema import EventRecord


class CoOccurrence:
    """Items that followed the user's recent items in other users' sequences ("people who viewed this
    next viewed ..."), counted live. Falls back to live popularity when the user's items have no
    followers yet.

    Parameters
    ----------
    window
        How many preceding items of a sequence each new item counts as a follower of.
    recent
        How many of the user's newest items vote, weighted 1, 1/2, 1/3, ... from the newest.

    Example
    -------
    >>> from freshrec.schema import EventRecord
    >>> co = CoOccurrence(negative_types=())
    >>> for user, item in [("a", "tent"), ("a", "stove"), ("b", "tent"), ("b", "stove"), ("c", "tent")]:
    ...     co.learn(EventRecord(0, user, item, "view", 0.0))
    >>> co.recommend("c", 2)
    ['stove']
    """

    name = "co-occurrence"

    def __init__(self, window: int = 3, recent: int = 5, negative_types: tuple[str, ...] = ("dislike", "skip")) -> None:
        self.window = window
        self.recent = recent
        self.negative_types = frozenset(negative_types)
        self.followers: dict[str, Counter[str]] = defaultdict(Counter)
        self.history: dict[str, list[str]] = defaultdict(list)
        self.seen: dict[str, set[str]] = defaultdict(set)
        self.popularity: Counter[str] = Counter()

    def learn(self, event: EventRecord) -> None:
        self.seen[event.user_id].add(event.item_id)
        if event.type in self.negative_types:
            return
        history = self.history[event.user_id]
        if history and history[-1] == event.item_id:
            return  # a repeated action on the same item is one sequence entry
        for previous in history[-self.window :]:
            if previous != event.item_id:
                self.followers[previous][event.item_id] += 1
        history.append(event.item_id)
        del history[: -max(self.window, self.recent)]
        self.popularity[event.item_id] += 1

    def recommend(self, user_id: str, k: int) -> list[str]:
        seen = self.seen.get(user_id, set())
        scores: Counter[str] = Counter()
        for rank, item in enumerate(reversed(self.history.get(user_id, [])[-self.recent :])):
            weight = 1.0 / (rank + 1)
            for follower, count in self.followers.get(item, {}).items():
                if follower not in seen:
                    scores[follower] += weight * count
        out = [item for item, _ in scores.most_common(k)]
        if len(out) < k:
            taken = set(out)
            for item, _ in self.popularity.most_common(k + len(seen) + len(out)):
                if item not in seen and item not in taken:
                    out.append(item)
                    if len(out) == k:
                        break
        return out
