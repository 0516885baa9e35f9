"""A stream buffer hands out its partitions' records in turn (``agents/buffers.py``), on
Faust's own stream, flow control and the ``KeepOnResume`` guard."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP

from streams.agents.acks import KeepOnResume
from streams.agents.buffers import InTurns, TurnsQueue, buffers_in_turns
from tests.unit.agents.test_acks import TOPIC, app, fetched

__all__ = ["app"]  # the fixture, shared with test_acks

GENERATION = 2
OWN, MOVED = 0, 1  # the survivor's own partition; the one it took over (a backlog)


@pytest.mark.parametrize("in_turns", [False, True])
def test_a_taken_over_backlog_does_not_go_ahead_of_the_own_partitions_next_records(
    app: faust.App, in_turns: bool
) -> None:
    """A takeover: the moved partition's backlog from its committed offset (100-104) was
    fetched before the recovery resumed the flow, which keeps it (``KeepOnResume``); the
    own partition's next records (7, 8) came after it. First in, first out, the own
    partition waits for the whole backlog (its first record 6th); in turns, the
    partitions alternate while both have records: 100, 7, 101, 8, then 102-104."""
    if in_turns:
        buffers_in_turns(app)
    KeepOnResume([TOPIC], lambda: GENERATION, lambda: {TP(TOPIC, OWN), TP(TOPIC, MOVED)}).install(
        app.flow_control
    )

    async def scenario() -> tuple[bool, list[tuple[int, int]]]:
        app.consumer_generation_id = GENERATION
        app.flow_control.resume()  # at the recovery's start
        stream = app.stream(app.channel())
        queue = stream.channel.queue
        for offset in range(100, 105):
            await queue.put(fetched(app, offset, GENERATION, MOVED))
        for offset in (7, 8):
            await queue.put(fetched(app, offset, GENERATION, OWN))
        app.flow_control.resume()  # the recovery completed: the guard keeps all seven
        delivered: list[tuple[int, int]] = []
        async for event in stream.noack().events():
            delivered.append((event.message.partition, event.message.offset))
            if len(delivered) == 7:
                break
        return isinstance(queue, TurnsQueue), delivered

    is_turns, delivered = asyncio.run(scenario())
    assert is_turns == in_turns
    if in_turns:
        expected = [(MOVED, 100), (OWN, 7), (MOVED, 101), (OWN, 8)]
        expected += [(MOVED, offset) for offset in (102, 103, 104)]
    else:
        expected = [(MOVED, offset) for offset in range(100, 105)] + [(OWN, 7), (OWN, 8)]
    assert delivered == expected


def test_each_partition_keeps_its_order_and_anything_else_is_one_turn(app: faust.App) -> None:
    """Three partitions and two items that are not events (a stream's outbox holds
    such): hand-out order by turns; iteration and length see every item; ``clear``
    empties; an empty buffer refuses ``popleft`` as a deque does."""
    a0, a1, b0, c0 = (fetched(app, o, GENERATION, p) for o, p in ((10, 0), (11, 0), (5, 1), (3, 2)))
    buffered = InTurns([a0, "x", b0, a1, "y", c0])
    assert len(buffered) == 6
    assert buffered
    assert list(buffered) == [a0, a1, "x", "y", b0, c0]  # each partition's in order
    taken = [buffered.popleft() for _ in range(6)]
    # turns in order of first arrival (0, None, 1, 2); one that had more goes last:
    # 0 -> [None, 1, 2, 0], None -> [1, 2, 0, None], 1 -> [2, 0, None], 2, 0, None
    assert taken == [a0, "x", b0, c0, a1, "y"]
    assert len(buffered) == 0
    assert not buffered
    with pytest.raises(IndexError):
        buffered.popleft()
    buffered.extend([a0, b0])
    buffered.clear()
    assert list(buffered) == []
    assert len(buffered) == 0
