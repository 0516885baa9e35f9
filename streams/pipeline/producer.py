"""Produce a JSONL event file to the input topics, as an exchange would: each event on
its topic, keyed by account, symbol or fund. Lines that are not JSON objects of a known
type still go out (to ``fills``), so the worker's dead-letter path sees them."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.pipeline.sequencer import event_time
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics


def route(topics: Topics, line: bytes) -> tuple[str, bytes | None]:
    topic, key, _ = route_timed(topics, line)
    return topic, key


def route_timed(topics: Topics, line: bytes) -> tuple[str, bytes | None, int]:
    """(topic, key, event time in ms: -1 where it has none) of one line."""
    try:
        obj = orjson.loads(line)
        if isinstance(obj, dict):
            return (*topics.input_for(obj), event_time(obj))
    except (orjson.JSONDecodeError, ValueError):
        pass
    return topics.name("fills"), None, -1


# A paced producer (a live feed) sends an event at ``t`` only once every event it sent
# before ``t - SPREAD_MS`` is acknowledged by the broker. Its partitions' batches go out
# apart (a full batch at once, another after ``linger_ms``; a busy machine stalls either),
# and a consumer merging them by event time takes a partition that looks caught up for
# one that has nothing earlier: on a loaded 2-core machine the demo's worker counted
# 100-400 events late with 5 s of allowed lateness. With this bound the partitions cannot
# drift further apart than 1 s of event time, under any allowed lateness above it.
SPREAD_MS = 1_000


class DeliverySpread:
    """One producer's sends in flight by event time: ``wait_before(t)`` returns once every
    send of an event earlier than ``t - spread_ms`` is delivered (sends in time order)."""

    def __init__(self, spread_ms: int = SPREAD_MS) -> None:
        self.spread_ms = spread_ms
        self._in_flight: deque[tuple[int, asyncio.Future[object]]] = deque()

    def __len__(self) -> int:
        return len(self._in_flight)

    async def wait_before(self, ts_ms: int) -> None:
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] < ts_ms - self.spread_ms:
            await in_flight.popleft()[1]  # a failed delivery raises here: nothing lost quietly

    def sent(self, ts_ms: int, delivery: asyncio.Future[object]) -> None:
        self._in_flight.append((ts_ms, delivery))


async def produce_file(
    settings: Settings,
    path: Path,
    rate_per_s: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send the file's lines; ``rate_per_s`` paces them (and bounds how far apart in
    event time its partitions may be delivered: ``SPREAD_MS``); ``on_sent`` hears the
    count. Unpaced (a backlog), lines go as fast as the producer takes them."""
    topics = Topics(settings.topic_prefix)
    producer = AIOKafkaProducer(**settings.client_options(), linger_ms=5, acks="all")
    await producer.start()
    sent = 0
    began = time.monotonic()
    spread = DeliverySpread() if rate_per_s else None
    try:
        with path.open("rb") as source:
            for line in source:
                if not line.strip():
                    continue
                topic, key, ts_ms = route_timed(topics, line)
                if spread is not None:
                    await spread.wait_before(ts_ms)
                delivery = await producer.send(topic, value=line.rstrip(b"\n"), key=key)
                if spread is not None:
                    spread.sent(ts_ms, delivery)
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
