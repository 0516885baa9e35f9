"""Produce a JSONL event file to the input topics, as an exchange would: each event on
its topic, keyed by account, symbol or fund. Lines that are not JSON objects of a known
type still go out (to ``fills``), so the worker's dead-letter path sees them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics


def route(topics: Topics, line: bytes) -> tuple[str, bytes | None]:
    try:
        obj = orjson.loads(line)
        if isinstance(obj, dict):
            return topics.input_for(obj)
    except (orjson.JSONDecodeError, ValueError):
        pass
    return topics.name("fills"), None


async def produce_file(
    settings: Settings,
    path: Path,
    rate_per_s: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send the file's lines; ``rate_per_s`` paces them; ``on_sent`` hears the count."""
    topics = Topics(settings.topic_prefix)
    producer = AIOKafkaProducer(**settings.client_options(), linger_ms=5, acks="all")
    await producer.start()
    sent = 0
    began = time.monotonic()
    try:
        with path.open("rb") as source:
            for line in source:
                if not line.strip():
                    continue
                topic, key = route(topics, line)
                await producer.send(topic, value=line.rstrip(b"\n"), key=key)
                sent += 1
                if on_sent is not None:
                    on_sent(sent)
                if rate_per_s:
                    ahead = sent / rate_per_s - (time.monotonic() - began)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return sent
