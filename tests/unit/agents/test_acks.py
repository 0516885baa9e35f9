"""The ack guard against faust-streaming's own acknowledgements (``agents.acks``), on a
real Faust app and consumer (no broker: nothing here fetches). ``Consumer._new_offset``
is the offset Faust's commit would write for a partition."""

from __future__ import annotations

import asyncio
import contextlib

import faust
import faust.streams
import pytest
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.agents.acks import AckGuard, InOrder, SeekGate, flush_fully
from streams.agents.app import unmoved

TOPIC = "account_marks"
PARTITION = TP(TOPIC, 0)


@pytest.fixture
def app() -> faust.App:
    app = faust.App(
        "test-acks", broker="kafka://127.0.0.1:9", store="memory://",
        web_enabled=False, autodiscover=False,
    )  # fmt: skip
    app.topics.add(app.topic(TOPIC))
    # what the conductor does once an agent subscribes: acks count for the topic
    asyncio.run(app.topics._update_indices())
    return app


def message(offset: int) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, 0, offset, 0.0, 0, [], None, b"{}", None, tp=PARTITION)


def event(app: faust.App, offset: int) -> faust.Event:
    return faust.Event(app, None, b"{}", {}, message(offset))


def test_without_the_guard_skipped_events_are_committed(app: faust.App) -> None:
    """The hole itself: events a stream skipped after a rebalance (Faust acknowledges
    them) make the commit pass them though no agent handled them."""
    consumer = app.consumer
    for offset in range(10, 15):  # fetched in the old generation, skipped
        message(offset).ack(consumer)  # what ``Stream.__aiter__`` does for a skipped event
    assert consumer._new_offset(PARTITION) == 15


def test_skipped_events_stay_uncommitted_and_handled_ones_commit(app: faust.App) -> None:
    consumer = app.consumer
    guard = AckGuard([TOPIC], ordered=[TOPIC])
    guard.install(consumer)
    for offset in range(10, 15):
        assert message(offset).ack(consumer) is False
    assert guard.refused == 5
    assert consumer._new_offset(PARTITION) is None  # nothing to commit
    stream = app.stream(app.topic(TOPIC))
    again = {offset: event(app, offset) for offset in range(10, 14)}  # after the seek
    for delivered in again.values():
        guard.delivered(delivered)
    for offset in (11, 13):  # handled before 10 (10 waits in a shard's buffer)
        asyncio.run(guard.ack(stream, again[offset]))
    assert consumer._new_offset(PARTITION) is None
    asyncio.run(guard.ack(stream, again[10]))
    assert consumer._new_offset(PARTITION) == 12  # 12 still buffered
    asyncio.run(guard.ack(stream, again[12]))
    assert consumer._new_offset(PARTITION) == 14
    assert guard.refused == 5


def test_without_the_guard_an_event_after_a_buffered_one_is_committed_past_it(
    app: faust.App,
) -> None:
    """Faust's commit lets the first acknowledged run start one past the committed
    offset: 10 buffered, 11 acknowledged, the commit passes 10."""
    consumer = app.consumer
    consumer._committed_offset[PARTITION] = 10
    message(11).ack(consumer)
    assert consumer._new_offset(PARTITION) == 12


def test_acks_of_other_topics_pass(app: faust.App) -> None:
    consumer = app.consumer
    AckGuard(["fills"]).install(consumer)
    message(3).ack(consumer)
    assert consumer._new_offset(PARTITION) == 4


def test_offsets_never_delivered_are_not_committed(app: faust.App) -> None:
    """A kept partition after a rebalance: Faust's read offset went back to the
    committed 17 while its fetch goes on at 40; 18-39 were never delivered. The fetch
    loop takes the jump for a gap (as it would transaction markers: ``_add_gap`` when
    the offset read is more than one past the read offset) and gaps count as handled."""
    consumer = app.consumer
    consumer._committed_offset[PARTITION] = 17
    asyncio.run(consumer._add_gap(PARTITION, 18, 40))
    message(17).ack(consumer)
    message(40).ack(consumer)
    assert consumer._new_offset(PARTITION) == 41  # 18-39 committed unseen
    # guarded, the fetch loop finds no read offset for an agent's partition after a
    # seek: it neither drops what comes below it nor takes a jump for a gap
    AckGuard([TOPIC], ordered=[TOPIC]).install(consumer)
    consumer._read_offset[PARTITION] = 17  # what Faust's seek writes
    assert consumer._read_offset[PARTITION] is None
    consumer._read_offset[TP("other", 0)] = 17
    assert consumer._read_offset[TP("other", 0)] == 17


def test_events_a_stream_skips_are_not_acknowledged(
    app: faust.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream delivers an event fetched in generation 1 while generation 2 is current:
    it skips it, and Faust's pure-Python iterator acknowledges it."""
    guard = AckGuard([TOPIC], ordered=[TOPIC])
    guard.install(app.consumer)
    monkeypatch.setattr(faust.streams, "_CStreamIterator", None)  # the pure-Python one

    async def scenario() -> int:
        app.consumer_generation_id = 2
        app.flow_control.resume()
        stream = app.stream(app.channel())
        stale, current = event(app, 10), event(app, 11)
        stale.message.generation_id, current.message.generation_id = 1, 2
        await stream.channel.queue.put(stale)
        await stream.channel.queue.put(current)
        async for delivered in stream.noack().events():
            return int(delivered.message.offset)
        raise AssertionError("nothing delivered")

    assert asyncio.run(scenario()) == 11
    assert guard.refused == 1
    assert app.consumer._new_offset(PARTITION) is None


@pytest.mark.parametrize("fixed", [False, True])
def test_the_flush_before_a_commit_drains_the_buffer(app: faust.App, fixed: bool) -> None:
    """Changelog rows wait in the producer buffer; each takes 0.25 s to hand over (a busy
    loop, a slow broker). Faust's flush gives up after 0.1 s without a send."""

    async def scenario() -> int:
        buffer = ProducerBuffer()
        buffer.app = app
        sent = []

        async def slow_send(fut: int) -> None:
            await asyncio.sleep(0.25)
            sent.append(fut)

        buffer._send_pending = slow_send  # type: ignore[method-assign,assignment]
        if fixed:
            flush_fully(buffer)
        await buffer.start()
        for n in range(3):
            buffer.put(n)  # type: ignore[arg-type]
        await buffer.flush()
        handed_over = len(sent)
        with contextlib.suppress(RuntimeError):  # stopping flushes, refused with rows left
            await buffer.stop()
        return handed_over

    assert asyncio.run(scenario()) == (3 if fixed else 0)


def test_a_partition_is_delivered_in_order_from_its_committed_offset() -> None:
    """Committed 100; Faust delivers 140, 141 (fetched before a rebalance), then the
    re-read from 100; later 105 is skipped by the fetch (Faust's read offset and fetch
    position apart) and comes with the re-read."""
    order = InOrder()
    assert order.verdict(PARTITION, 140, 100) == (False, 100, None)  # seek back to 100
    assert order.verdict(PARTITION, 141, 100) == (False, None, None)  # fetched before
    assert order.verdict(PARTITION, 100, 100) == (True, None, None)  # the re-read
    assert order.verdict(PARTITION, 101, 100) == (True, None, None)
    assert order.verdict(PARTITION, 101, 100) == (False, None, None)  # delivered twice
    assert order.verdict(PARTITION, 103, 100) == (False, 102, None)
    assert order.verdict(PARTITION, 102, 100) == (True, None, None)
    assert order.verdict(PARTITION, 103, 100) == (True, None, None)
    assert order.seeks == 2
    order.forget([PARTITION])  # revoked, assigned again
    assert order.verdict(PARTITION, 300, 300) == (True, None, None)


def test_a_partition_never_committed_is_delivered_from_its_start() -> None:
    """Nothing committed yet (Faust says ``None``, for 0 too): a shard had applied fills
    0-77 and buffered 78-121 when a rebalance gave its partition back; 122, fetched
    before the rebalance, comes first. Taken for the start, the re-read of 0-121 was
    dropped as copies and 78-121 never applied (the every-role soak test's lost fills)."""
    order = InOrder()
    fills = TP("fills", 2)
    assert order.verdict(fills, 122, None) == (False, 0, None)  # sought back to the start
    assert order.verdict(fills, 123, None) == (False, None, None)  # fetched before
    for offset in range(124):  # the re-read: 0-77 recognised by the shard, 78-123 applied
        assert order.verdict(fills, offset, None) == (True, None, None)
    # the log's start deleted (retention): the re-read from 0 begins at 500
    balances = TP("balances", 2)
    assert order.verdict(balances, 500, None) == (False, 0, None)
    assert order.verdict(balances, 500, None) == (True, None, (0, 500))


@pytest.mark.parametrize("gated", [False, True])
def test_a_delivery_waits_for_its_assignments_committed_offsets(
    app: faust.App, gated: bool
) -> None:
    """Faust's recovery resumes the fetch, then seeks to the committed offsets
    (``perform_seek``, which fills the map ``InOrder`` is given them from). Committed:
    5,000, the coordinator answering after 0.3 s; the fetch delivers 5,000 at once.
    Without the gate ``InOrder`` found nothing committed and sought back to 0 (the
    survivor of a kill re-read every input of 200,000 accounts); with it, 5,000 is due."""
    consumer = app.consumer
    gate = SeekGate(lambda: 1)

    async def seek_to_committed() -> dict[TP, int]:
        await asyncio.sleep(0.3)
        return {PARTITION: 5000}

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    gate.install(consumer)

    async def scenario() -> tuple[bool, int | None]:
        seek = asyncio.ensure_future(consumer.perform_seek())
        await asyncio.sleep(0.01)  # the fetch already resumed: 5,000 delivered now
        passed = await gate.passed(lambda: True) if gated else True
        committed = consumer._committed_offset.get(PARTITION)
        await seek
        return passed, committed

    passed, committed = asyncio.run(scenario())
    assert passed
    verdict = InOrder().verdict(PARTITION, 5000, committed)
    assert verdict == ((True, None, None) if gated else (False, 0, None))
    assert gate.held == (1 if gated else 0)


def test_a_seek_of_an_earlier_generation_opens_nothing(app: faust.App) -> None:
    """Faust seeks too when it fetches while the flow is stopped (mid-rebalance): that
    seek read the last generation's assignment. The next generation's deliveries wait
    for its own seek; one whose partition goes meanwhile is not delivered."""
    consumer = app.consumer
    generation = [4]
    gate = SeekGate(lambda: generation[0])

    async def seek_to_committed() -> dict[TP, int]:
        return {}

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    gate.install(consumer)
    assigned = {PARTITION}

    async def scenario() -> tuple[bool, bool, bool]:
        await consumer.perform_seek()  # generation 4's
        first = await gate.passed(lambda: True)
        generation[0] = 5  # assigned again, its seek not done yet
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, assigned.clear)  # then revoked
        second = await gate.passed(lambda: PARTITION in assigned)
        assigned.add(PARTITION)
        loop.call_later(0.2, lambda: asyncio.ensure_future(consumer.perform_seek()))
        third = await gate.passed(lambda: PARTITION in assigned)
        return first, second, third

    assert asyncio.run(scenario()) == (True, False, True)
    assert gate.held == 2


def test_offsets_without_events_are_found_and_recorded_as_a_gap() -> None:
    """An exchange writing in transactions: 100 and 101 are markers. 102 comes while 100
    is due; sought back to 100, the re-read begins at 102 again."""
    order = InOrder()
    assert order.verdict(PARTITION, 102, 100) == (False, 100, None)
    assert order.verdict(PARTITION, 103, 100) == (False, None, None)  # fetched before
    assert order.verdict(PARTITION, 102, 100) == (True, None, (100, 102))
    assert order.verdict(PARTITION, 103, 100) == (True, None, None)
    assert order.gaps == 1


def test_inputs_not_delivered_in_order_are_acknowledged_at_once(app: faust.App) -> None:
    """The fund desk's inputs: Faust's acknowledgements refused, the desk's own passed
    as it makes them."""
    consumer = app.consumer
    guard = AckGuard([TOPIC])
    guard.install(consumer)
    assert message(5).ack(consumer) is False
    stream = app.stream(app.topic(TOPIC))
    asyncio.run(guard.ack(stream, event(app, 5)))
    assert consumer._new_offset(PARTITION) == 6
    consumer._read_offset[PARTITION] = 5  # Faust keeps its read offsets for them
    assert consumer._read_offset[PARTITION] == 5


def test_a_shard_put_aside_is_taken_up_only_if_no_input_moved_past_it() -> None:
    """At a revocation a process keeps a partition's shard with the next offset due of
    each input; given the partition back, it takes the shard up only if no committed
    offset is past those (another owner applied and committed more meanwhile)."""
    fills, clock = TP("fills", 0), TP("account_marks", 0)
    due = {fills: 10, clock: 7}
    assert unmoved(due, {fills: 10, clock: 7})  # everything delivered was committed
    assert unmoved(due, {fills: 3, clock: 0})  # delivered again from there: recognised
    assert unmoved(due, {})  # nothing ever committed
    assert not unmoved(due, {fills: 11, clock: 7})  # offset 10 applied elsewhere
    assert not unmoved(due, {fills: 3, clock: 8})
