"""The live item-to-item graph: what followed what in users' sequences, and who recently had each item.

Both are updated by every event that adds a sequence entry, before the event is acknowledged, so a pair of
items other users just saw together can be recommended at the next request, without any retrain. They feed
the live candidate sources (:mod:`freshrec.candidates`):

* **followers**: for each item, how often each other item came within :data:`FOLLOW_WINDOW` entries after it
  in a user's sequence (co-occurrence, "people who had this next had ...");
* **recent users**: for each item, the users whose sequence most recently gained it (at most
  :data:`USERS_PER_ITEM`, newest first): the neighbour sessions a session-kNN search starts from.

Counts are kept as the events arrive; the event log stays the source of truth (a restart rebuilds them).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence

#: Entries after an item in a sequence that count as its followers.
FOLLOW_WINDOW = 3
#: Users remembered per item, the most recent ones (a bounded sample of the neighbour sessions).
USERS_PER_ITEM = 200


class ItemGraph:
    """Followers and recent users per catalogue index (see the module docstring). Not thread-safe: the
    state store calls it under its own lock.

    Example
    -------
    >>> g = ItemGraph()
    >>> g.add("a", 2, previous=[1]); g.add("b", 2, previous=[1]); g.add("b", 3, previous=[1, 2])
    >>> g.followers([1])[0], g.followers([2])[0]
    ({2: 2.0, 3: 1.0}, {3: 1.0})
    >>> g.recent_users([2], limit=5)
    [['b', 'a']]
    """

    def __init__(self, window: int = FOLLOW_WINDOW, users_per_item: int = USERS_PER_ITEM) -> None:
        self.window = window
        self.users_per_item = users_per_item
        self._followers: dict[int, dict[int, float]] = {}
        self._users: dict[int, OrderedDict[str, None]] = {}

    def add(self, user_id: str, item: int, previous: Sequence[int]) -> None:
        """A new entry ``item`` in ``user_id``'s sequence, after the entries ``previous`` (newest last)."""
        for p in previous[-self.window :]:
            if p != item:
                counts = self._followers.setdefault(int(p), {})
                counts[item] = counts.get(item, 0.0) + 1.0
        users = self._users.setdefault(item, OrderedDict())
        users.pop(user_id, None)
        users[user_id] = None  # newest last
        if len(users) > self.users_per_item:
            users.popitem(last=False)

    def followers(self, items: Sequence[int]) -> list[dict[int, float]]:
        """Per item, its followers and their counts (copies)."""
        return [dict(self._followers.get(int(i), {})) for i in items]

    def recent_users(self, items: Sequence[int], limit: int) -> list[list[str]]:
        """Per item, up to ``limit`` users whose sequence most recently gained it, newest first."""
        out = []
        for i in items:
            users = self._users.get(int(i))
            out.append(list(itertools.islice(reversed(users), limit)) if users else [])
        return out

    def forget(self, user_id: str, items: Sequence[int]) -> None:
        """Drop a user from the recent users of ``items`` (the user was deleted). Follower counts are
        anonymous totals; they lose the user's contribution when state is next rebuilt from the log."""
        for i in items:
            users = self._users.get(int(i))
            if users is not None:
                users.pop(user_id, None)
