"""How events become a user's sequence: the one rule live state, training data and the online trainer use.

Live serving, offline training, the online trainer and its quality gate must read the same sequence for
the same events, or the model is trained on one thing, judged on another and served a third. So all of
them fold events through :class:`Sequences` (one :class:`UserSequence` per user):

* entries are kept in event-time order; events with equal time keep arrival order;
* negative events (``dislike``, ``skip``) are remembered as seen (never recommended) but are not entries;
* with ``collapse_repeats``, consecutive events on the same item (view -> cart -> purchase) form one entry
  whose type is the latest action, so the model learns "what comes next", not "repeat the last item";
* an event whose type the registry does not know (a custom type removed from the settings after it was
  logged) is an entry with type code 0, which the model reads as "no type".
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from freshrec.schema import UserSnapshot


class EventTypes:
    """The registry of event types and their model codes (position + 1; 0 is padding).

    Example
    -------
    >>> types = EventTypes(["view", "purchase", "skip"], negative=["skip"])
    >>> types.code["purchase"], types.is_negative("skip"), len(types)
    (2, True, 3)
    >>> types.code_of("teleport"), types.name(0)   # a type the registry does not know
    (0, 'unknown')
    """

    def __init__(self, names: Sequence[str], negative: Iterable[str] = ()) -> None:
        if len(names) > 127:
            raise ValueError(f"at most 127 event types are supported, got {len(names)}")
        self.names = list(names)
        self.code = {name: i + 1 for i, name in enumerate(self.names)}
        self.negative = frozenset(negative)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.code

    def is_negative(self, name: str) -> bool:
        return name in self.negative

    def code_of(self, name: str) -> int:
        """The model code of a type name; 0 for a name the registry does not know."""
        return self.code.get(name, 0)

    def name(self, code: int) -> str:
        """The name of a model code (``"unknown"`` for 0)."""
        return self.names[code - 1] if code > 0 else "unknown"

    def translation(self, model_types: Sequence[str]) -> np.ndarray:
        """[len(self) + 1] int64: this registry's codes -> the codes of a model trained with ``model_types``
        (0 where the model does not know the type), so a version trained before a type was added still reads
        sequences correctly.

        >>> EventTypes(["view", "cart", "buy"]).translation(["view", "buy"]).tolist()
        [0, 1, 0, 2]
        """
        model_code = {name: i + 1 for i, name in enumerate(model_types)}
        return np.array([0] + [model_code.get(n, 0) for n in self.names], dtype=np.int64)


class UserSequence:
    """One user's time-ordered item sequence (catalogue indices) and the set of items they have seen.

    Parameters
    ----------
    max_len
        Entries kept (oldest dropped first); ``None`` keeps everything (training data).
    collapse_repeats
        Merge consecutive events on the same item into one entry.

    Example
    -------
    >>> s = UserSequence(max_len=3)
    >>> [s.add(item, type_code=1, ts=ts) for item, ts in [(5, 1.0), (5, 2.0), (7, 3.0), (2, 0.5)]]
    [True, False, True, True]
    >>> list(s.items), s.seen_list()
    ([2, 5, 7], [2, 5, 7])
    """

    __slots__ = ("collapse_repeats", "items", "max_len", "seen", "ts", "types", "version")

    def __init__(self, max_len: int | None = None, collapse_repeats: bool = True) -> None:
        self.max_len = max_len
        self.collapse_repeats = collapse_repeats
        # array.array keeps 13 bytes per entry instead of ~150 for Python tuples: 100K users x 200
        # entries stay in a few hundred MB.
        self.items = array("i")
        self.types = array("b")
        self.ts = array("d")
        self.seen = array("i")  # sorted, unique
        self.version = 0  # bumped by every event, so derived values (the encoded user) can be cached

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item_idx: int, type_code: int, ts: float, negative: bool = False) -> bool:
        """Record one event; see the module docstring for the rules. True when it added an entry."""
        self.version += 1
        pos = bisect_right(self.seen, item_idx)
        if pos == 0 or self.seen[pos - 1] != item_idx:
            self.seen.insert(pos, item_idx)
        if negative:
            return False
        n = len(self.items)
        at = n if n == 0 or ts >= self.ts[-1] else bisect_right(self.ts, ts)
        if self.collapse_repeats:
            if at > 0 and self.items[at - 1] == item_idx:
                self.types[at - 1] = type_code
                if at == n:
                    self.ts[at - 1] = ts
                return False
            if at < n and self.items[at] == item_idx:  # a late, older action on the next entry's item
                return False
        if at == n:
            self.items.append(item_idx)
            self.types.append(type_code)
            self.ts.append(ts)
        else:
            self.items.insert(at, item_idx)
            self.types.insert(at, type_code)
            self.ts.insert(at, ts)
        if self.max_len is not None and len(self.items) > self.max_len:
            drop = len(self.items) - self.max_len
            del self.items[:drop], self.types[:drop], self.ts[:drop]
        return True

    def has_seen(self, item_idx: int) -> bool:
        pos = bisect_right(self.seen, item_idx)
        return pos > 0 and self.seen[pos - 1] == item_idx

    def seen_list(self) -> list[int]:
        return self.seen.tolist()

    def seen_array(self) -> np.ndarray:
        """Seen item indices as an int64 array (a copy)."""
        return np.frombuffer(self.seen, dtype=np.int32).astype(np.int64)

    def item_array(self) -> np.ndarray:
        return np.frombuffer(self.items, dtype=np.int32).astype(np.int64)

    def type_array(self) -> np.ndarray:
        return np.frombuffer(self.types, dtype=np.int8).astype(np.int64)

    def ts_array(self) -> np.ndarray:
        """Entry times as a float64 array (a copy)."""
        return np.frombuffer(self.ts, dtype=np.float64).copy()

    def snapshot(self, user_id: str) -> UserSnapshot:
        """A copy of this sequence as the state stores hand it out."""
        return UserSnapshot(
            items=self.item_array(),
            types=self.type_array(),
            ts=self.ts_array(),
            seen=self.seen_array(),
            version=self.version,
            user_id=user_id,
        )


#: ``before(position, sequence)``: called by :meth:`Sequences.fold` with the user's sequence as it is just
#: before the event at ``position`` is folded in (``None`` for a user without one yet).
BeforeFold = Callable[[int, "UserSequence | None"], None]


class Sequences:
    """Every user's :class:`UserSequence`, built by the one fold rule (see the module docstring).

    Parameters
    ----------
    types
        The event-type registry: codes, and which types are negative.
    max_len
        Entries kept per user (oldest dropped first); ``None`` keeps everything (training data).
    collapse_repeats
        Merge consecutive events on the same item into one entry.

    Example
    -------
    >>> from freshrec.schema import EventRecord
    >>> seqs = Sequences(EventTypes(["view", "skip"], negative=["skip"]), max_len=5)
    >>> events = [EventRecord(1, "u", "a", "view", 1.0), EventRecord(2, "u", "b", "skip", 2.0),
    ...           EventRecord(3, "u", "c", "view", 3.0)]
    >>> seqs.fold(events, [1, 2, 3])      # the events that added an entry (the skip did not)
    [0, 2]
    >>> seqs.get("u").item_array().tolist(), seqs.get("u").seen_list()
    ([1, 3], [1, 2, 3])
    """

    def __init__(self, types: EventTypes, max_len: int | None = None, collapse_repeats: bool = True) -> None:
        self.types = types
        self.max_len = max_len
        self.collapse_repeats = collapse_repeats
        self._users: dict[str, UserSequence] = {}
        self._created = 0

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self) -> Iterator[str]:
        return iter(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def get(self, user_id: str) -> UserSequence | None:
        return self._users.get(user_id)

    def pop(self, user_id: str) -> UserSequence | None:
        return self._users.pop(user_id, None)

    def put(self, user_id: str, seq: UserSequence) -> None:
        """Hold ``seq`` as the user's sequence (one kept elsewhere, e.g. in a shared state store)."""
        self._users[user_id] = seq

    def next_version(self) -> int:
        """The version a user's first sequence starts at; never repeats for this registry."""
        self._created += 1
        return self._created << 32

    def fold(self, events: Sequence, item_idx: Sequence[int], before: BeforeFold | None = None) -> list[int]:
        """Fold ``events`` (:class:`~freshrec.schema.EventRecord`, in log order) into the users' sequences;
        ``item_idx[j]`` is event ``j``'s catalogue index. Returns the positions of the events that added an
        entry, in order. ``before`` sees each user's sequence just before each event (see
        :data:`BeforeFold`): the history the event was chosen after."""
        users, code_of, negative = self._users, self.types.code_of, self.types.negative
        added: list[int] = []
        for j, (e, idx) in enumerate(zip(events, item_idx, strict=True)):
            seq = users.get(e.user_id)
            if before is not None:
                before(j, seq)
            if seq is None:
                seq = users[e.user_id] = UserSequence(self.max_len, self.collapse_repeats)
                # versions never repeat for a user id, even one deleted and recreated: a cache keyed by
                # (user, version) must not serve a deleted history to the new one
                seq.version = self.next_version()
            if seq.add(idx, code_of(e.type), e.ts, e.type in negative):
                added.append(j)
        return added
