"""Canonical event-time order: how the worker merges its input topics, and the order in
which a ``replay`` file must be written to give the same result.

Order: event time, then event type (funds, balances, settings, margin moves, fills,
books, marks: the state a mark is judged against is in place before it), then the key
(account, symbol or fund), then the position in the source (file line, or Kafka offset:
one key's events of one type are in one partition, so their order is kept).

``Sequencer`` buffers events and releases them in that order once the watermark (the
least recent time among inputs that still have data to deliver) has passed them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

TYPE_RANK = {
    "insurance_fund": 0,
    "balance": 1,
    "position_config": 2,
    "isolated_margin": 3,
    "fill": 4,
    "depth": 5,
    "mark": 6,
}
KEY_FIELD = {"fill": "account", "balance": "account", "position_config": "account",
             "isolated_margin": "account", "mark": "symbol", "depth": "symbol",
             "insurance_fund": "fund"}  # fmt: skip

T = TypeVar("T")


def event_time(obj: Mapping[str, Any]) -> int:
    """A raw event's ``ts`` (ms); -1 where it has none (a malformed event sorts first)."""
    ts = obj.get("ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else -1


def canonical_key(obj: Mapping[str, Any]) -> tuple[int, int, str]:
    """(ts, type rank, key) of a raw event; malformed events sort by what they have."""
    kind = str(obj.get("type"))
    key = obj.get(KEY_FIELD.get(kind, ""), "")
    return (event_time(obj), TYPE_RANK.get(kind, len(TYPE_RANK)), str(key))


@dataclass(order=True, slots=True)
class _Item(Generic[T]):
    key: tuple[Any, ...]
    item: T = field(compare=False)


class Sequencer(Generic[T]):
    """A priority buffer released by watermark."""

    def __init__(self) -> None:
        self._heap: list[_Item[T]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def items(self) -> list[T]:
        """What is buffered, in no particular order."""
        return [entry.item for entry in self._heap]

    def push(self, key: tuple[Any, ...], item: T) -> None:
        heapq.heappush(self._heap, _Item(key, item))

    def release(self, watermark_ts: int | None) -> list[T]:
        """Items with event time < ``watermark_ts`` (all of them for ``None``), in order."""
        out = []
        while self._heap and (watermark_ts is None or self._heap[0].key[0] < watermark_ts):
            out.append(heapq.heappop(self._heap).item)
        return out

    def release_through(self, bound: tuple[Any, ...] | None) -> list[T]:
        """Items whose key is at most ``bound`` (all of them for ``None``), in order."""
        out = []
        while self._heap and (bound is None or self._heap[0].key <= bound):
            out.append(heapq.heappop(self._heap).item)
        return out


def clock_bound(
    clock_key: tuple[Any, ...] | None, last_ts: Mapping[str, int], pending: Iterable[str]
) -> tuple[Any, ...] | None:
    """How far a clock-driven consumer may release: up to the clock's last key, and
    before the last event time of each input that still has data to deliver (its next
    events may come at that time). ``None``: nothing yet (no clock, or an input with
    data that has shown nothing)."""
    if clock_key is None:
        return None
    bound = clock_key
    for where in pending:
        if where not in last_ts:
            return None
        bound = min(bound, (last_ts[where], -1))
    return bound
