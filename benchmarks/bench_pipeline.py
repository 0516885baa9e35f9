"""Pipeline throughput and latency on a real broker, each beside its baseline.

1. Throughput: N fills (and the deposits they need) on the input topics; a bare aiokafka
   consumer reads and decodes (orjson) the same topics from the start; then the worker
   drains them end to end (decode, canonical merge, engine, transactional outputs).
   Prints both rates and the ratio.
2. Latency: with the worker running live and a background fill load, a mark price that
   flips a symbol into (or out of) ADL is produced; the time until the resulting
   ``adl_triggers`` message is readable (read_committed) is measured, p50/p99.

Usage: python benchmarks/bench_pipeline.py [--fills 100000] [--flips 40]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.brokers import Broker, apache, tansu
from streams.cli import bundled
from streams.engine.instruments import load_instruments
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import Worker, ensure_topics

INSTRUMENTS = load_instruments(bundled("instruments.toml"))


def fill_events(n: int, accounts: int, seed: int = 3) -> list[dict[str, object]]:
    rng = random.Random(seed)
    events: list[dict[str, object]] = [
        {"type": "insurance_fund", "ts": 0, "fund": "USDT-M", "balance": "10000000"}
    ]
    events += [
        {"type": "balance", "event_id": f"d{i}", "ts": 0, "account": f"a{i}",
         "amount": "100000", "reason": "deposit"}
        for i in range(accounts)
    ]  # fmt: skip
    for i in range(n // 2):
        buyer, seller = rng.sample(range(accounts), 2)
        price = f"{60000 + rng.randint(-300, 300)}.5"
        for acct, side in ((buyer, "buy"), (seller, "sell")):
            events.append({"type": "fill", "fill_id": f"f{i}{side[0]}", "ts": 1 + i,
                           "account": f"a{acct}", "symbol": "BTCUSDT", "side": side,
                           "qty": "0.01", "price": price})  # fmt: skip
    return events


async def produce(settings: Settings, events: list[dict[str, object]]) -> None:
    topics = Topics(settings.topic_prefix)
    producer = AIOKafkaProducer(**settings.client_options(), linger_ms=20, acks="all")
    await producer.start()
    try:
        for e in events:
            topic, key = topics.input_for(e)
            await producer.send(topic, orjson.dumps(e), key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def fill_load(
    producer: AIOKafkaProducer,
    topics: Topics,
    rate: float,
    stop: asyncio.Event,
    clock: Callable[[], int],
) -> None:
    """Background fills between 50 accounts on ETHUSDT at ``rate`` per second, at the
    event time ``clock()`` gives, until ``stop``."""
    n = 0
    while not stop.is_set():
        n += 1
        account = f"bg{n % 50}"
        fill = {"type": "fill", "fill_id": f"bg{n}", "ts": clock(), "account": account,
                "symbol": "ETHUSDT", "side": "buy" if n % 2 else "sell", "qty": "0.1",
                "price": "3000"}  # fmt: skip
        await producer.send(topics.name("fills"), orjson.dumps(fill), key=account.encode())
        await asyncio.sleep(1 / rate)


def print_latency(output: str, samples_s: list[float], background_rate: float) -> None:
    ms = sorted(s * 1000 for s in samples_s)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"latency mark -> {output} readable: p50 {statistics.median(ms):.1f} ms, "
          f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} flips, background "
          f"{background_rate:.0f} fills/s", flush=True)  # fmt: skip


async def bare_consumer_rate(settings: Settings, expected: int) -> float:
    topics = Topics(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        *topics.inputs, **settings.client_options(), group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5000,
    )  # fmt: skip
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for messages in batch.values():
                for m in messages:
                    orjson.loads(m.value)
                    seen += 1
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - started)


async def throughput(broker: Broker, fills: int) -> None:
    settings = Settings(bootstrap=broker.bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:5]}.",
                        partitions=4, idle_flush_ms=200,
                        transactions=isinstance(broker, apache.ApacheKafka))  # fmt: skip
    await ensure_topics(settings, Topics(settings.topic_prefix))
    events = fill_events(fills, accounts=max(100, fills // 20))
    await produce(settings, events)
    raw_rate = await bare_consumer_rate(settings, len(events))
    started = time.perf_counter()
    stats = await Worker(settings, INSTRUMENTS).run(stop_when_idle=True)
    elapsed = time.perf_counter() - started
    rate = stats.consumed / elapsed
    print(f"throughput: {stats.consumed:,} events ({fills:,} fills) | worker {rate:,.0f} ev/s "
          f"(incl. {settings.idle_flush_ms} ms idle flush) | bare consumer+orjson {raw_rate:,.0f} "
          f"ev/s | ratio {raw_rate / rate:.1f}x", flush=True)  # fmt: skip


async def latency(broker: Broker, flips: int, background_rate: float) -> None:
    settings = Settings(bootstrap=broker.bootstrap, topic_prefix=f"l{uuid.uuid4().hex[:5]}.",
                        partitions=4, idle_flush_ms=50,
                        transactions=isinstance(broker, apache.ApacheKafka))  # fmt: skip
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics)
    setup = [
        {"type": "insurance_fund", "ts": 1, "fund": "USDT-M", "balance": "1000"},
        {"type": "balance", "event_id": "a", "ts": 1, "account": "A", "amount": "1000",
         "reason": "deposit"},
        {"type": "balance", "event_id": "b", "ts": 1, "account": "B", "amount": "100000",
         "reason": "deposit"},
        {"type": "fill", "fill_id": "1", "ts": 2, "account": "A", "symbol": "BTCUSDT",
         "side": "buy", "qty": "0.5", "price": "20000"},
        {"type": "fill", "fill_id": "2", "ts": 2, "account": "B", "symbol": "BTCUSDT",
         "side": "sell", "qty": "0.5", "price": "20000"},
    ]  # fmt: skip
    await produce(settings, setup)
    worker = Worker(settings, INSTRUMENTS)
    running = asyncio.create_task(worker.run())
    consumer = AIOKafkaConsumer(topics.name("adl_triggers"), **settings.client_options(),
                                group_id=None, auto_offset_reset="latest",
                                isolation_level="read_committed")  # fmt: skip
    await consumer.start()
    producer = AIOKafkaProducer(**settings.client_options(), linger_ms=0)
    await producer.start()
    stop_background = asyncio.Event()
    ts = 10
    load = asyncio.create_task(
        fill_load(producer, topics, background_rate, stop_background, lambda: ts)
    )
    samples = []
    await asyncio.sleep(2)
    for i in range(flips):
        ts += 1000
        price = "15000" if i % 2 == 0 else "20000"  # bankrupt beyond the fund / healthy
        mark = {"type": "mark", "ts": ts, "symbol": "BTCUSDT", "mark_price": price}
        sent = time.perf_counter()
        await producer.send_and_wait(topics.name("mark_prices"), orjson.dumps(mark), key=b"BTCUSDT")
        got = await asyncio.wait_for(consumer.getone(), 30)
        samples.append(time.perf_counter() - sent)
        assert orjson.loads(got.value)["symbol"] == "BTCUSDT"
    stop_background.set()
    await load
    worker.stop()
    await running
    await consumer.stop()
    await producer.stop()
    print_latency("adl_triggers", samples, background_rate)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--flips", type=int, default=40)
    parser.add_argument("--background-rate", type=float, default=500.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="adl-bench-"))
    broker: Broker = apache.ApacheKafka(workdir) if apache.available() else tansu.Tansu(workdir)
    with broker:
        print(f"broker: {type(broker).__name__} at {broker.bootstrap}", flush=True)
        await throughput(broker, args.fills)
        await latency(broker, args.flips, args.background_rate)


if __name__ == "__main__":
    asyncio.run(main())
