"""``simulate --bootstrap``: the generated events land on the input topics, each on its
topic with its key, as ``produce`` would send them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from streams.brokers import Broker
from streams.pipeline.topics import Topics


async def _read_all(bootstrap: str, topics: list[str]) -> list[tuple[str, bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        out = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            out += [(m.topic, m.key, m.value) for msgs in batch.values() for m in msgs]
        return out
    finally:
        await consumer.stop()


def test_simulate_produces_its_events_to_the_input_topics(kafka: Broker, tmp_path: Path):
    prefix = f"sim{uuid.uuid4().hex[:6]}"
    out = tmp_path / "scenario.jsonl"
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--bundled", "--accounts", "60",
         "--minutes", "3", "--crash-start-min", "1", "--crash-minutes", "1", "--quiet",
         "--out", str(out), "--bootstrap", kafka.bootstrap, "--topic-prefix", prefix],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    lines = out.read_bytes().splitlines()
    topics = Topics(prefix)
    got = asyncio.run(_read_all(kafka.bootstrap, topics.inputs))
    assert sorted(v for _, _, v in got) == sorted(lines)
    # each event on its own topic, keyed as the topic says (marks by symbol, fills by account)
    expected = Counter(topics.input_for(json.loads(line)) for line in lines)
    assert Counter((topic, key) for topic, key, _ in got) == expected
