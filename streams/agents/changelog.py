"""The changelog topics of the agents' tables: how they are compacted, and how many rows
a process that starts without a partition's state reads back.

Faust makes a table's changelog topic compacted (each key's older rows dropped), but
Kafka never compacts a topic's newest segment, which rolls only after a week or 1 GB by
default: a process that starts without the state (a new machine, a deployment, every
process restarted) read every row written since the agents began, and the rankings'
rows are written and deleted at every lit mark. The agents create their changelog
topics with ``segment.ms`` = ``ADL_CHANGELOG_SEGMENT_MS`` (60 s), so what a start reads is
the live rows, what their keys wrote in the last segment and what the broker's cleaner
has not reached yet (by default up to as many rows again: ``min.cleanable.dirty.ratio``
0.5), not the history (``benchmarks/bench_agents_startup.py``). Topics that exist are
used as they are: docs/streaming.md says how to set the same on them.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.pipeline.settings import Settings

# a deleted row's tombstone stays this long after its key's rows were compacted away
# (Kafka's default: a day, every tombstone of it read back by a start); a restore that
# took longer than this could miss a deletion (a restore takes seconds)
TOMBSTONE_MS = 15 * 60_000
CHANGELOG_SUFFIX = "-changelog"  # Faust's: {app id}-{table}-changelog


def changelog_configs(settings: Settings) -> dict[str, str]:
    """Kafka topic configs of the changelog topics the agents create (none with
    ``changelog_segment_ms`` 0: the broker's defaults)."""
    if not settings.changelog_segment_ms:
        return {}
    return {
        "segment.ms": str(settings.changelog_segment_ms),
        "delete.retention.ms": str(max(TOMBSTONE_MS, settings.changelog_segment_ms)),
    }


async def changelog_rows(settings: Settings) -> tuple[int, int]:
    """(rows ever written to the changelog topics under ``settings``' prefix: their end
    offsets, rows the broker holds: what a start without the state reads). Reads every
    row: for benchmarks and tests, not a live process."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        prefix = settings.topic_prefix
        names = [t for t in await admin.list_topics()
                 if t.startswith(prefix) and t.endswith(CHANGELOG_SUFFIX)]  # fmt: skip
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(**settings.client_options(), enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20)  # fmt: skip
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        held = 0
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            held += sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()
    return sum(ends.values()), held


async def long_segments(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """The changelog ``topics`` that exist with a ``segment.ms`` above
    ``changelog_segment_ms`` (made before it, or by hand: Faust changes no existing
    topic): topic -> their segment.ms."""
    wanted = settings.changelog_segment_ms
    if not wanted:
        return {}
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"segment.ms": None}) for t in topics]
        )
    finally:
        await admin.close()
    found = {}
    for response in responses:
        for error_code, _, _, topic, entries in response.resources:
            if error_code:  # not made yet (Faust makes it): with the configs above
                continue
            for name, value, *_ in entries:
                if name == "segment.ms" and int(value) > wanted:
                    found[topic] = int(value)
    return found


def long_segments_warning(settings: Settings, topic: str, segment_ms: int) -> str:
    """One line for the operator: what it costs, and the command that fixes it."""
    configs = ",".join(f"{k}={v}" for k, v in changelog_configs(settings).items())
    return (
        f"changelog topic {topic} rolls a segment every {segment_ms:,} ms "
        f"(ADL_CHANGELOG_SEGMENT_MS: {settings.changelog_segment_ms:,}); Kafka compacts no "
        f"topic's newest segment, so a process starting without the state reads up to that "
        f"long of its rows; to set it: kafka-configs.sh "
        f"--bootstrap-server {settings.bootstrap} --alter --entity-type topics "
        f"--entity-name {topic} --add-config {configs}"
    )
