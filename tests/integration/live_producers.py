"""Several producers writing one event file at once, as an exchange's services would: the
events split by input (account events; marks and books; the fund), each producer paced
by event time (``speedup`` x real time) with its own random send jitter, and the market
data producer running ``lag_ms`` behind the others. Run as its own process (a test's
worker must not share its event loop):

    python tests/integration/live_producers.py BOOTSTRAP PREFIX FILE SPEEDUP JITTER_MS LAG_MS
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.pipeline.producer import route
from streams.pipeline.topics import Topics

GROUPS = {"fill": 0, "balance": 0, "position_config": 0, "isolated_margin": 0,
          "mark": 1, "depth": 1, "insurance_fund": 2}  # fmt: skip


async def produce(
    producer: AIOKafkaProducer, topics: Topics, lines: list[bytes], t0_ms: int,
    speedup: float, jitter_s: float, lag_s: float, seed: int, began: float,
) -> None:  # fmt: skip
    rng = random.Random(seed)
    for line in lines:
        ts = orjson.loads(line).get("ts")
        event_s = (ts - t0_ms) / 1000 / speedup if isinstance(ts, int) else 0.0
        due = began + event_s + lag_s + rng.uniform(0, jitter_s)
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        topic, key = route(topics, line)
        await producer.send(topic, value=line, key=key)
        await asyncio.sleep(0)  # a burst of one producer must not hold back the others


async def main(bootstrap: str, prefix: str, path: Path, speedup: float, jitter_ms: float,
               lag_ms: float) -> None:  # fmt: skip
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
    began = time.monotonic()
    try:
        await asyncio.gather(*(
            produce(producer, topics, group, t0, speedup, jitter_ms / 1000,
                    lag_ms / 1000 if k == 1 else 0.0, seed=k, began=began)
            for k, (producer, group) in enumerate(zip(producers, groups, strict=True))
        ))  # fmt: skip
    finally:
        for producer in producers:
            await producer.stop()


if __name__ == "__main__":
    bootstrap, prefix, file, speedup, jitter, lag = sys.argv[1:7]
    asyncio.run(main(bootstrap, prefix, Path(file), float(speedup), float(jitter), float(lag)))
