"""Several producers writing one event file at once, as an exchange's services would: the
events split by input (account events; marks and books; the fund), each producer paced
by event time (``speedup`` x real time) with its own random send jitter, and the market
data producer running ``lag_ms`` behind the others. Run as its own process (a test's
worker must not share its event loop):

    python tests/integration/live_producers.py BOOTSTRAP PREFIX FILE SPEEDUP JITTER_MS LAG_MS \
        [SPREAD_MS]

``SPREAD_MS`` (event time) bounds how far apart the producers may drift: no producer
sends an event at ``t`` before every other producer has had all its events earlier than
``t - SPREAD_MS`` acknowledged by the broker. Pacing alone bounds it only in wall time,
and one stalled producer (a produce retry after a leader change took >100 ms of wall
time, 3 s of event time at 30x) would put the others seconds of event time ahead.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections import deque
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.pipeline.producer import route
from streams.pipeline.sequencer import event_time
from streams.pipeline.topics import Topics

GROUPS = {"fill": 0, "balance": 0, "position_config": 0, "isolated_margin": 0,
          "mark": 1, "depth": 1, "insurance_fund": 2}  # fmt: skip


class Writer:
    """One producer's events and how far its broker-acknowledged prefix reaches."""

    def __init__(self, producer: AIOKafkaProducer, lines: list[bytes]) -> None:
        self.producer = producer
        self.lines = lines
        self.ts = [_event_ts(line) for line in lines]
        self.next = 0  # index of the next line to send
        self.in_flight: deque[tuple[int, asyncio.Future[object]]] = deque()

    def acknowledged_below(self) -> float:
        """Every event of this writer earlier than this (event ms) is on the broker."""
        while self.in_flight and self.in_flight[0][1].done():
            self.in_flight.popleft()
        if self.in_flight:
            return self.in_flight[0][0]
        return self.ts[self.next] if self.next < len(self.lines) else math.inf


def _event_ts(line: bytes) -> int:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return -1
    return event_time(obj) if isinstance(obj, dict) else -1  # malformed lines go at once


async def produce(
    me: Writer, others: list[Writer], topics: Topics, t0_ms: int, speedup: float,
    jitter_s: float, lag_s: float, spread_ms: int, seed: int, began: float,
) -> None:  # fmt: skip
    rng = random.Random(seed)
    for n, line in enumerate(me.lines):
        ts = me.ts[n]
        event_s = (ts - t0_ms) / 1000 / speedup if ts >= 0 else 0.0
        due = began + event_s + lag_s + rng.uniform(0, jitter_s)
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        while any(other.acknowledged_below() < ts - spread_ms for other in others):
            await asyncio.sleep(0.001)
        topic, key = route(topics, line)
        me.in_flight.append((ts, await me.producer.send(topic, value=line, key=key)))
        me.next = n + 1
        await asyncio.sleep(0)  # a burst of one producer must not hold back the others


async def leaders_known(producer: AIOKafkaProducer, topics: list[str]) -> None:
    """Wait until every partition has a leader: a send to a topic made a moment ago
    otherwise fails and is retried, and the retry's wait is a stall."""
    while True:
        missing = False
        for topic in topics:
            partitions = await producer.partitions_for(topic)
            for p in partitions:
                leader = producer.client.cluster.leader_for_partition(TopicPartition(topic, p))
                missing |= leader is None or leader < 0
        if not missing:
            return
        await producer.client.force_metadata_update()
        await asyncio.sleep(0.1)


async def main(bootstrap: str, prefix: str, path: Path, speedup: float, jitter_ms: float,
               lag_ms: float, spread_ms: int) -> None:  # fmt: skip
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    groups: list[list[bytes]] = [[], [], []]
    for line in lines:
        try:
            kind = orjson.loads(line).get("type")
        except orjson.JSONDecodeError:
            kind = None
        groups[GROUPS.get(str(kind), 0)].append(line)
    t0 = min(orjson.loads(line)["ts"] for line in groups[2] + groups[1][:1])
    topics = Topics(prefix)
    producers = [AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
                 for _ in groups]  # fmt: skip
    for producer in producers:
        await producer.start()
    used = sorted({route(topics, line)[0] for line in lines})
    await asyncio.gather(*(leaders_known(producer, used) for producer in producers))
    writers = [Writer(producer, group) for producer, group in zip(producers, groups, strict=True)]
    began = time.monotonic()
    try:
        await asyncio.gather(*(
            produce(me, [w for w in writers if w is not me], topics, t0, speedup,
                    jitter_ms / 1000, lag_ms / 1000 if k == 1 else 0.0, spread_ms,
                    seed=k, began=began)
            for k, me in enumerate(writers)
        ))  # fmt: skip
    finally:
        for producer in producers:
            await producer.stop()


if __name__ == "__main__":
    bootstrap, prefix, file, speedup, jitter, lag = sys.argv[1:7]
    spread = int(sys.argv[7]) if len(sys.argv) > 7 else 2**62
    asyncio.run(main(bootstrap, prefix, Path(file), float(speedup), float(jitter), float(lag),
                     spread))  # fmt: skip
