"""Offsets and cursors of a partitioned event log.

An **offset** names one event of the whole log: its partition in the high bits, its place in the partition
(1, 2, 3, …) in the low :data:`PARTITION_SHIFT` bits. Partition 0's offsets are plain 1, 2, 3, so a log with
one partition (SQLite, a one-partition topic) numbers its events as a counter would. Offsets are unique in
the log and increase in append order within a partition; a user's events all go to one partition (keyed by
user id), so a user's events are in offset order.

A **cursor** is how far a reader has got: per partition, the highest offset it has consumed, or the
partition's :func:`base` when it has consumed none.

>>> offset(2, 7), partition_of(offset(2, 7)), local(offset(2, 7))
(2199023255559, 2, 7)
>>> c = advance(start(2), [1, 2, offset(1, 1)])
>>> c == (2, offset(1, 1)), covers(c, 2), covers(c, 3), behind(c, (5, offset(1, 4)))
(True, True, False, 6)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: Bits of an offset that number events within a partition (a trillion events per partition).
PARTITION_SHIFT = 40
_LOCAL_MASK = (1 << PARTITION_SHIFT) - 1

#: Per partition, the highest offset consumed (the partition's base when none).
Cursor = tuple[int, ...]


def offset(partition: int, n: int) -> int:
    """The offset of the ``n``-th event (1-based) of ``partition``."""
    return (partition << PARTITION_SHIFT) | n


def base(partition: int) -> int:
    """The offset just before a partition's first event."""
    return partition << PARTITION_SHIFT


def partition_of(value: int) -> int:
    return value >> PARTITION_SHIFT


def local(value: int) -> int:
    """The place of an offset within its partition (0 for a partition's base)."""
    return value & _LOCAL_MASK


def start(partitions: int) -> Cursor:
    """The cursor of a reader that has consumed nothing."""
    return tuple(base(p) for p in range(partitions))


def advance(cursor: Sequence[int], offsets: Iterable[int]) -> Cursor:
    """``cursor`` moved past ``offsets`` (in any order, any partitions)."""
    out = list(cursor)
    for o in offsets:
        p = partition_of(o)
        if o > out[p]:
            out[p] = o
    return tuple(out)


def covers(cursor: Sequence[int], value: int) -> bool:
    """Whether a reader at ``cursor`` has consumed the event at offset ``value``."""
    p = partition_of(value)
    return p < len(cursor) and value <= cursor[p]


def behind(cursor: Sequence[int], ends: Sequence[int]) -> int:
    """How many offsets lie between ``cursor`` and the log's ``ends`` (events not yet consumed, counting
    erased ones)."""
    return sum(max(0, local(e) - local(c)) for c, e in zip(cursor, ends, strict=True))


def total(cursor: Sequence[int]) -> int:
    """Offsets consumed in all: with one partition, the highest offset consumed."""
    return sum(local(c) for c in cursor)


def as_cursor(value: Any, partitions: int | None = None) -> Cursor:
    """A cursor from what a file or a version's metadata holds: a list of offsets, or one offset (a
    one-partition cursor); padded with partition bases up to ``partitions``."""
    if value is None:
        values: list[int] = []
    elif isinstance(value, int | float | str):
        values = [int(value)]
    else:
        values = [int(v) for v in value]
    if partitions is not None:
        if len(values) > partitions:
            raise ValueError(f"a cursor over {len(values)} partitions does not fit a log of {partitions}")
        values += [base(p) for p in range(len(values), partitions)]
    return tuple(values)


def describe(cursor: Sequence[int]) -> str:
    """A cursor for people: ``offset 12`` with one partition, else each partition's position.

    >>> describe((12,)), describe((3, offset(1, 5)))
    ('offset 12', 'offsets 3, 5 (partitions 0-1)')
    """
    if len(cursor) == 1:
        return f"offset {local(cursor[0])}"
    return f"offsets {', '.join(str(local(c)) for c in cursor)} (partitions 0-{len(cursor) - 1})"


def to_json(cursor: Sequence[int]) -> int | list[int]:
    """How a cursor is written in metadata: one offset for a one-partition log, else the list
    (:func:`as_cursor` reads both)."""
    return int(cursor[0]) if len(cursor) == 1 else [int(c) for c in cursor]


def ranges(offsets: Iterable[int]) -> list[list[int]]:
    """Per partition, ``[lowest, highest]`` of ``offsets``, in partition order."""
    bounds: dict[int, list[int]] = {}
    for o in offsets:
        b = bounds.setdefault(partition_of(o), [o, o])
        b[0], b[1] = min(b[0], o), max(b[1], o)
    return [bounds[p] for p in sorted(bounds)]
