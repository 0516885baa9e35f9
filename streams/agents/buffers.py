"""Faust's stream buffers, handed out a partition at a time in turn.

Faust gives each agent's stream one buffer (a ``FlowControlQueue`` per channel) that
every input partition the agent reads shares, first in, first out. After a takeover the
moved partitions' backlog, read from their committed offsets, filled it ahead of the
kept partitions' next records: with the records fetched before the recovery resumed its
flow kept (``acks.KeepOnResume``), the survivor's own partitions came back 3-5 s after
it was ready again (docs/streaming.md, hole 11). Here each partition's records stay in
order and the partitions take turns: every record handed out sends its partition behind
the others that have records waiting, so no partition's backlog holds another's next
record back by more than one record per partition (``TurnsQueue``). The fetch takes
turns too (``app.take_turns``); this does the same for what was already fetched.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from typing import Any

from mode.utils.queues import ThrowableQueue


def partition_of(item: Any) -> Any:
    """The partition a buffered item came from (a Faust event's message's ``tp``);
    ``None`` for anything else (one turn for all of them, in order)."""
    message = getattr(item, "message", None)
    return getattr(message, "tp", None)


class InTurns:
    """What ``asyncio.Queue`` keeps in ``_queue`` (a deque there): ``append``,
    ``popleft``, ``extend``, ``clear``, ``len``, iteration. ``popleft`` takes the oldest
    record of the partition whose turn it is and, if it has more, puts it last in turn;
    iteration gives every record, each partition's in order."""

    __slots__ = ("by_partition", "count")

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self.by_partition: OrderedDict[Any, deque[Any]] = OrderedDict()
        self.count = 0
        self.extend(items)

    def append(self, item: Any) -> None:
        tp = partition_of(item)
        waiting = self.by_partition.get(tp)
        if waiting is None:
            waiting = self.by_partition[tp] = deque()
        waiting.append(item)
        self.count += 1

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)

    def popleft(self) -> Any:
        by_partition = self.by_partition
        for tp, waiting in by_partition.items():  # the first in turn
            item = waiting.popleft()
            if waiting:
                by_partition.move_to_end(tp)
            else:
                del by_partition[tp]
            self.count -= 1
            return item
        raise IndexError("pop from an empty buffer")

    def clear(self) -> None:
        self.by_partition.clear()
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[Any]:
        for waiting in tuple(self.by_partition.values()):
            yield from tuple(waiting)


class TurnsQueue(ThrowableQueue[Any]):  # type: ignore[misc]  # mode is untyped
    """Faust's stream buffer (``ThrowableQueue``: flow control, buffer pressure, errors
    thrown to the reader) over ``InTurns`` instead of a deque."""

    def _init(self, maxsize: int) -> None:
        self._queue = InTurns()


def buffers_in_turns(app: Any) -> None:
    """Every buffer ``app`` makes from now on (its channels', its streams' outboxes: each
    made when first used) is a ``TurnsQueue``."""

    def flow_control_queue(maxsize: int | None = None, *, clear_on_resume: bool = False) -> Any:
        return TurnsQueue(
            maxsize=maxsize, flow_control=app.flow_control, clear_on_resume=clear_on_resume
        )

    app.FlowControlQueue = flow_control_queue
