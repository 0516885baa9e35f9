"""The agents' changelog topics on a real broker: a topic made before
``ADL_CHANGELOG_SEGMENT_MS`` (with the broker's week-long segments) is found at start-up
and named with the command that fixes it; one made with the agents' configs is not."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.agents.changelog import changelog_configs, long_segments, long_segments_warning
from streams.brokers import Broker
from streams.pipeline.settings import Settings

WEEK_MS = 7 * 24 * 3_600_000  # Kafka's default segment.ms (log.roll.hours = 168)


async def made(settings: Settings, topics: dict[str, dict[str, str]]) -> None:
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs=configs) for name, configs in topics.items()]
        )
    finally:
        await admin.close()


def test_a_changelog_made_with_the_brokers_segments_is_found(kafka: Broker) -> None:
    settings = Settings(bootstrap=kafka.bootstrap, topic_prefix=f"l{uuid.uuid4().hex[:6]}.")
    old, new, missing = (f"{settings.topic_prefix}{n}-changelog" for n in ("old", "new", "none"))
    asyncio.run(made(settings, {old: {"cleanup.policy": "compact"},
                                new: {"cleanup.policy": "compact",
                                      **changelog_configs(settings)}}))  # fmt: skip

    found = asyncio.run(long_segments(settings, [old, new, missing]))

    assert found == {old: WEEK_MS}  # the one not made yet: Faust makes it with the configs
    line = long_segments_warning(settings, old, found[old])
    assert f"--entity-name {old} --add-config segment.ms=60000,delete.retention.ms=900000" in line
    # the check is off with the setting
    off = Settings(bootstrap=kafka.bootstrap, changelog_segment_ms=0)
    assert asyncio.run(long_segments(off, [old])) == {}
