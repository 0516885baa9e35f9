"""The account agents' inputs on a real broker and Faust's own buffer: records the Kafka
client handed over and Faust dropped are read again (docs/streaming.md, hole 11); what
it fetched is handed out a partition at a time in turn (``take_turns``)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.agents.app import FETCH_PARTITION_BYTES, AccountAgents, fetch_position
from streams.brokers import Broker
from streams.pipeline.settings import Settings
from tests.helpers import bundled_instruments


def test_records_faust_dropped_at_a_resume_are_read_again(kafka: Broker) -> None:
    """Faust's flow control empties every stream buffer when it resumes (its recovery
    resumes it after the inputs' fetch began) while the Kafka client has read on past
    what it handed over. On a real broker and Faust's own buffer: balances[0] holds
    offsets 0-2 written in one transaction (its commit marker at 3), fetched, put in
    the buffer, and gone when the flow resumes, the client at 4 with 0 due. With no
    later record nothing shows a gap (the stall of a restarted process's balances[0]
    for 3.5 minutes, 2026-12-06). The check seeks it back to 0 at its second look
    with nothing delivered (not at its first: records may be on their way in) and the
    client hands 0-2 over again. Then 3 is due and the client, past the marker, at 4:
    sought back once (a marker looks like dropped records), never again for 3.
    fills[0], fetched to 2 with 0 and 1 still buffered, is not sought; nothing is
    while the flow is stopped (a rebalance), nor after Faust's conductor waited for the
    producer's buffer to ebb (it holds the records it hands in meanwhile: under load
    ~900 fills were sought back needlessly) until two looks without one. The desk's
    buffer, busy with a backlog, holds nothing up (each partition is judged by its own
    topic's buffers)."""
    prefix = f"fetch-{uuid.uuid4().hex[:8]}-"

    async def scenario() -> None:
        settings = Settings(bootstrap=kafka.bootstrap, topic_prefix=prefix)
        agents = AccountAgents(settings, bundled_instruments())
        app, consumer = agents.app, agents.app.consumer
        name = agents.topics.name
        fills, balances = TP(name("fills"), 0), TP(name("balances"), 0)
        await written(kafka.bootstrap, fills, balances)
        app.topics.add(agents.account_inputs)  # what the conductor does once the agents
        app.topics.add(agents.desk_inputs)  # subscribe
        await app.topics._update_indices()
        client = consumer._thread._create_worker_consumer(app.transport)
        await client.start()
        consumer._thread._consumer = client
        try:
            client.assign([fills, balances])
            consumer.assignment = lambda: {fills, balances}  # type: ignore[method-assign]
            agents.tables_ready = True  # out of the recovery, committed offsets read
            agents.seek_gate.sought = agents.seek_gate.generation()
            fetched = await fetch_to(client, {fills: 2, balances: 4})
            assert fetched[balances] == [0, 1, 2]
            queue = agents.account_inputs.queue
            for offset in fetched[balances]:
                queue.force_put_nowait(event(app, balances, offset))
            app.flow_control.resume()
            assert queue.qsize() == 0  # the hole: dropped, the client past them
            for offset in fetched[fills]:
                queue.force_put_nowait(event(app, fills, offset))
            desk = agents.desk_inputs.queue  # busy with a backlog of its own inputs
            fund = TP(name("insurance_fund"), 0)
            for offset in range(desk.pressure_drop_size + 1):
                desk.force_put_nowait(event(app, fund, offset))

            consumer.flow_active = False
            for _ in range(3):
                await agents._check_fetch()
            assert fetch_position(consumer, balances) == 4
            consumer.flow_active = True

            await agents._check_fetch()
            assert fetch_position(consumer, balances) == 4
            await held_by_the_producer(app)
            await agents._check_fetch()  # a wait since the last look: not judged
            await agents._check_fetch()
            assert fetch_position(consumer, balances) == 4
            await agents._check_fetch()
            assert (fetch_position(consumer, balances), fetch_position(consumer, fills)) == (0, 2)
            assert agents.stats.passed_sought == 1
            again = await fetch_to(client, {balances: 4})
            assert again[balances] == [0, 1, 2]
            for offset in again[balances]:
                assert agents.in_order.verdict(balances, offset, None) == (True, None, None)

            for _ in range(2):
                await agents._check_fetch()
            assert agents.stats.passed_sought == 2  # 3 due, the client at 4: a probe
            assert (await fetch_to(client, {balances: 4}))[balances] == []
            for _ in range(3):
                await agents._check_fetch()
            assert fetch_position(consumer, balances) == 4
            assert agents.stats.passed_sought == 2
        finally:
            await client.stop()

    asyncio.run(scenario())


def test_records_the_client_still_holds_are_not_sought_over(kafka: Broker) -> None:
    """A seek of a partition whose fetched records aiokafka still holds raced its
    hand-out: 17 ms after the check sought ``risk_summaries[0]``, aiokafka's
    ``fetched_records`` raised ``KeyError`` and a failover test's process died
    (2026-12-06). On a real broker: balances[0] holds 0-9, one fetch; the client hands
    over 0-2 (Faust dropped them: nothing buffered) and holds the rest, its position
    at 3 with 0 due. Five looks later it has sought nothing and hands over 3-9;
    once it holds none, the gap it read past is sought back to 0 at the second look
    (the net of hole 11 still works)."""
    prefix = f"pending-{uuid.uuid4().hex[:8]}-"

    async def scenario() -> None:
        settings = Settings(bootstrap=kafka.bootstrap, topic_prefix=prefix)
        agents = AccountAgents(settings, bundled_instruments())
        app, consumer = agents.app, agents.app.consumer
        balances = TP(agents.topics.name("balances"), 0)
        await created(kafka.bootstrap, TopicPartition(*balances))
        await produced(kafka.bootstrap, TopicPartition(*balances), 10)
        app.topics.add(agents.account_inputs)
        await app.topics._update_indices()
        client = consumer._thread._create_worker_consumer(app.transport)
        await client.start()
        consumer._thread._consumer = client
        try:
            client.assign([balances])
            consumer.assignment = lambda: {balances}  # type: ignore[method-assign]
            agents.tables_ready = True
            agents.seek_gate.sought = agents.seek_gate.generation()
            app.flow_control.resume()
            consumer.flow_active = True
            for _ in range(200):  # until the fetcher, reading on its own, holds them
                if balances in client._fetcher._records:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("balances[0] was never fetched")
            first = await client.getmany(TopicPartition(*balances), max_records=3)
            assert [r.offset for r in first[TopicPartition(*balances)]] == [0, 1, 2]
            assert fetch_position(consumer, balances) == 3
            assert balances in client._fetcher._records  # 3 on, fetched, still held
            for _ in range(5):
                await agents._check_fetch()
            assert agents.stats.passed_sought == 0
            assert fetch_position(consumer, balances) == 3
            assert (await fetch_to(client, {balances: 10}))[balances] == list(range(3, 10))
            await agents._check_fetch()
            assert agents.stats.passed_sought == 0  # the first look with none held
            await agents._check_fetch()
            assert agents.stats.passed_sought == 1
            assert fetch_position(consumer, balances) == 0
        finally:
            await client.stop()

    asyncio.run(scenario())


def test_each_batch_begins_with_the_next_partition_in_turn(kafka: Broker) -> None:
    """aiokafka hands out a partition's whole fetch before a later fetch's records: the
    desk's summaries waited behind the account partitions' backlog (~40 s). On a real
    broker: fills[0] holds 3,000 records, fetched at once and handed out 100 a batch;
    then 10 summaries arrive. A plain aiokafka client hands out all 3,000 fills
    before the first summary; the client Faust makes for the agents, at most 200 (the
    batch under way and the next: then the summaries' turn), with most of the fills
    still to come."""
    prefix = f"turns-{uuid.uuid4().hex[:8]}-"

    async def scenario() -> None:
        settings = Settings(bootstrap=kafka.bootstrap, topic_prefix=prefix)
        agents = AccountAgents(settings, bundled_instruments())
        name = agents.topics.name
        fills = TopicPartition(name("fills"), 0)
        summaries = TopicPartition(name("risk_summaries"), 0)
        await created(kafka.bootstrap, fills, summaries)
        await produced(kafka.bootstrap, fills, 3000)
        plain = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=FETCH_PARTITION_BYTES,
        )
        ours = agents.app.consumer._thread._create_worker_consumer(agents.app.transport)
        plain_before, _ = await fills_before_summaries(plain, fills, summaries, kafka.bootstrap)
        ours_before, fills_then = await fills_before_summaries(
            ours, fills, summaries, kafka.bootstrap
        )
        assert plain_before == 3000
        assert ours_before <= 200
        assert fills_then < 3000

    asyncio.run(scenario())


async def created(bootstrap: str, *tps: TopicPartition) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(tp.topic, 1, 1) for tp in tps])
    finally:
        await admin.close()


async def produced(bootstrap: str, tp: TopicPartition, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(tp.topic, b"x" * 100, partition=tp.partition)
                for _ in range(count)]  # fmt: skip
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def fills_before_summaries(
    client: Any, fills: TopicPartition, summaries: TopicPartition, bootstrap: str
) -> tuple[int, int]:
    """(fills handed out before the first summary, fills handed out by the end of that
    batch): the client reads both from their start, 100 records a batch; the summaries
    are written after its first batch and waited for until fetched."""
    await client.start()
    try:
        client.assign([fills, summaries])
        client.seek(fills, 0)
        client.seek(summaries, await client.position(summaries))
        fills_out = len((await client.getmany(fills, summaries, timeout_ms=10_000,
                                              max_records=100)).get(fills, []))  # fmt: skip
        end = await client.position(summaries)
        await produced(bootstrap, summaries, 10)
        for _ in range(200):  # until the summaries' fetch landed
            if summaries in client._fetcher._records:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the summaries were never fetched")
        while True:
            batch = await client.getmany(fills, summaries, timeout_ms=1000, max_records=100)
            if summaries in batch:
                assert batch[summaries][0].offset == end
                return fills_out, fills_out + len(batch.get(fills, []))
            assert batch, "nothing handed out"
            fills_out += len(batch[fills])
    finally:
        await client.stop()


async def held_by_the_producer(app: faust.App) -> None:
    """What Faust's conductor does before it puts a record in a stream buffer while the
    producer's buffer is over its limit: it waits for it to ebb (Faust's own wait,
    which flushes; the flush's sends stand in for a producer not started here)."""
    buffer = app.producer.buffer
    limit, buffer.max_messages = buffer.max_messages, 0
    buffer.pending.put_nowait(None)  # one message waiting to be sent
    flushed: list[int | None] = []

    async def flush_atmost(max_messages: int | None) -> int:
        flushed.append(max_messages)
        await asyncio.sleep(0)
        return 0

    buffer.flush_atmost = flush_atmost  # type: ignore[method-assign]
    try:
        await buffer.wait_until_ebb()
    finally:
        del buffer.flush_atmost
        buffer.pending.get_nowait()
        buffer.max_messages = limit
    assert flushed == [0]  # Faust's wait ran (a buffer over its limit: a flush)


async def written(bootstrap: str, fills: TP, balances: TP) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(tp.topic, num_partitions=1, replication_factor=1) for tp in (fills, balances)]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=balances.topic)
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send(balances.topic, value=b"{}", key=b"b%d" % i, partition=0)
    finally:
        await producer.stop()
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await plain.start()
    try:
        for i in range(2):
            await plain.send_and_wait(fills.topic, value=b"{}", key=b"f%d" % i, partition=0)
    finally:
        await plain.stop()


async def fetch_to(client: Any, positions: dict[TP, int]) -> dict[TP, list[int]]:
    """What the client hands over until it stands at ``positions`` (20 s at most)."""
    fetched: dict[TP, list[int]] = {tp: [] for tp in positions}
    for _ in range(100):
        if all([await client.position(tp) >= at for tp, at in positions.items()]):
            return fetched
        asked = [TopicPartition(*tp) for tp in positions]
        for tp, records in (await client.getmany(*asked, timeout_ms=200)).items():
            fetched[TP(tp.topic, tp.partition)] += [r.offset for r in records]
    raise AssertionError(f"the client did not reach {positions}: {fetched}")


def event(app: faust.App, tp: TP, offset: int) -> faust.Event:
    message = ConsumerMessage(tp.topic, tp.partition, offset, 0.0, 0, [], None, b"{}", None, tp=tp)
    return faust.Event(app, None, b"{}", {}, message)
