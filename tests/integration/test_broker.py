"""The broker the tests use is real: topics, keyed partitioning, transactions."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.brokers import Broker


async def _round_trip(bootstrap: str) -> tuple[list[bytes], list[bytes]]:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{topic}")
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(5):
                await producer.send(topic, value=b"committed-%d" % i, key=b"k%d" % (i % 2))
        await producer.begin_transaction()
        await producer.send(topic, value=b"aborted", key=b"k0")
        await producer.abort_transaction()
    finally:
        await producer.stop()

    async def read(isolation: str) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            isolation_level=isolation,
            group_id=None,
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=5000)
            for _ in range(10):
                more = await consumer.getmany(timeout_ms=300)
                if not more:
                    break
                for tp, msgs in more.items():
                    batches.setdefault(tp, []).extend(msgs)
            return sorted(m.value for msgs in batches.values() for m in msgs)
        finally:
            await consumer.stop()

    return await read("read_committed"), await read("read_uncommitted")


def test_transactions_hide_aborted_messages(kafka: Broker) -> None:
    committed, uncommitted = asyncio.run(_round_trip(kafka.bootstrap))
    assert committed == sorted(b"committed-%d" % i for i in range(5))
    assert b"aborted" in uncommitted
