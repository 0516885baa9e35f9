"""Stage A (Faust account agents) on a real broker: throughput beside its baseline, and
latency from a mark price to the liquidation it causes being readable.

N fills between accounts (with their deposits and a mark every 500 fills: marks are the
agents' clock) on the input topics; a bare aiokafka consumer reads and decodes (orjson)
the same topics; then ``adl-monitor account-agents`` (one worker process, Faust) drains
them: decode, mark fan-out to every partition, per-partition canonical order, engine,
outputs delivered, changelog rows written, manual acks. Its rate is taken from its own
``/metrics`` between the first and the last event applied (Faust's start-up and group
join excluded, printed apart).

Latency: with the agents running live and a background fill load on other accounts, a
mark that makes one account bankrupt (then one that makes it healthy again) is
produced; the time until its ``liquidations``/``bankruptcies`` message is readable is
measured (mark -> fan-out -> account partition -> output), p50/p99.

Scaling: ``--processes 1,2,3`` runs 1, 2 and 3 processes on the same kind of input (a
fresh backlog each) and prints each rate beside one process's.

``--warm on,off`` runs each count with and without warm copies (``agents/warm.py``: each
process keeps a shard of the partitions it reads as a standby up to date): what they cost.

Usage: python benchmarks/bench_agents.py [--fills 50000] [--partitions 4] [--flips 30]
       [--processes 1,2,3] [--warm on]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench_pipeline import bare_consumer_rate, fill_events, fill_load, print_latency, produce
from prometheus_client.parser import text_string_to_metric_families

from streams.agents.app import INTERNAL
from streams.brokers import Broker, apache, tansu
from streams.brokers.base import free_port
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import ensure_topics


def with_marks(events: list[dict[str, object]], every: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    marked = -1  # one mark per time at most: a second one at the same time is a copy
    for n, event in enumerate(events):
        out.append(event)
        ts = int(str(event["ts"]))
        if n % every == every - 1 and ts > marked:
            out.append({"type": "mark", "ts": ts, "symbol": "BTCUSDT", "mark_price": "60000"})
            marked = ts
    last = int(str(events[-1]["ts"])) + 1
    out.append({"type": "mark", "ts": last, "symbol": "BTCUSDT", "mark_price": "60000"})
    return out


def agents_process(
    settings: Settings, port: int, summary_interval_ms: int = 100, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``log``: the process's output there, at Faust's info level (else the bench's)."""
    env = {
        **os.environ,
        "ADL_BOOTSTRAP": settings.bootstrap,
        "ADL_TOPIC_PREFIX": settings.topic_prefix,
        "ADL_PARTITIONS": str(settings.partitions),
        "ADL_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
        "ADL_HEARTBEAT_INTERVAL_MS": str(settings.heartbeat_interval_ms),
        "ADL_WARM_COPIES": "1" if settings.warm_copies else "0",
        "ADL_CHANGELOG_SEGMENT_MS": str(settings.changelog_segment_ms),
    }
    return subprocess.Popen(  # noqa: S603 (our own command)
        [
            sys.executable,
            "-m",
            "streams.cli",
            "account-agents",
            "--metrics-port",
            str(port),
            "--summary-interval-ms",
            str(summary_interval_ms),
            *(["--loglevel", "info"] if log else []),
        ],
        env=env,
        stdout=None if log is None else log.open("ab"),
        stderr=subprocess.STDOUT if log else None,
    )


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A process's samples by (name, sorted labels); empty while it does not serve."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def applied(port: int) -> float:
    samples = metrics(port).items()
    return sum(v for (name, _), v in samples if name == "adl_agent_events_applied_total")


async def throughput(
    bootstrap: str,
    fills: int,
    partitions: int,
    interval_ms: int,
    mark_every: int,
    processes: int = 1,
    warm: bool = True,
) -> float:
    """Events/s of ``processes`` agents processes draining the same backlog together
    (started at once; the group's first rebalances count in the time, as in a
    deployment that scales out under load)."""
    settings = Settings(bootstrap=bootstrap, topic_prefix=f"f{uuid.uuid4().hex[:5]}.",
                        partitions=partitions, warm_copies=warm)  # fmt: skip
    await ensure_topics(settings, Topics(settings.topic_prefix), INTERNAL)
    events = with_marks(fill_events(fills, accounts=max(100, fills // 20)), every=mark_every)
    events = [e for e in events if e["type"] != "insurance_fund"]  # the desk's, not counted
    marks = sum(e["type"] == "mark" for e in events)
    await produce(settings, events)
    raw_rate = await bare_consumer_rate(settings, len(events))
    # each mark is applied once per partition
    expected = len(events) - marks + marks * partitions
    ports = [free_port() for _ in range(processes)]
    started = time.perf_counter()
    workers = [agents_process(settings, port, interval_ms) for port in ports]
    try:
        first = None
        while (done := sum(applied(port) for port in ports)) < expected:
            if first is None and done > 0:
                first = time.perf_counter()
            if time.perf_counter() - started > 900:
                raise SystemExit(f"stalled at {done:,.0f} of {expected:,} events")
            await asyncio.sleep(0.2)
        finished = time.perf_counter()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    first = first or finished
    rate = expected / (finished - first)
    print(f"account-agents x{processes} (summary every {interval_ms:,} ms of event time, "
          f"warm copies {'on' if warm else 'off'}): "
          f"{expected:,} events applied ({fills:,} fills, {marks} marks x "
          f"{partitions} partitions) | start-up to first event {first - started:.1f} s | "
          f"{rate:,.0f} ev/s | bare consumer+orjson {raw_rate:,.0f} ev/s | ratio "
          f"{raw_rate / rate:.1f}x", flush=True)  # fmt: skip
    return rate


async def latency(bootstrap: str, partitions: int, flips: int, background_rate: float) -> None:
    settings = Settings(bootstrap=bootstrap, topic_prefix=f"g{uuid.uuid4().hex[:5]}.",
                        partitions=partitions)  # fmt: skip
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics, INTERNAL)
    setup = [  # A bankrupt at 15,000: 0.5 x 3,000 = 1,500 lost > the fund's 100: triggered
        {"type": "insurance_fund", "ts": 1, "fund": "USDT-M", "balance": "100"},
        {"type": "balance", "event_id": "a", "ts": 1, "account": "A", "amount": "1000",
         "reason": "deposit"},
        {"type": "fill", "fill_id": "1", "ts": 2, "account": "A", "symbol": "BTCUSDT",
         "side": "buy", "qty": "0.5", "price": "20000"},
        {"type": "mark", "ts": 3, "symbol": "BTCUSDT", "mark_price": "20000"},
    ]  # fmt: skip
    setup[1:1] = [  # the background traders are well funded: their fills raise no alarm
        {"type": "balance", "event_id": f"bg{n}", "ts": 1, "account": f"bg{n}",
         "amount": "1000000", "reason": "deposit"}
        for n in range(50)
    ]  # fmt: skip
    await produce(settings, setup)
    port = free_port()
    worker = agents_process(settings, port)
    consumer = AIOKafkaConsumer(topics.name("liquidations"), topics.name("adl_triggers"),
                                **settings.client_options(), group_id=None,
                                auto_offset_reset="latest")  # fmt: skip
    producer = AIOKafkaProducer(**settings.client_options(), linger_ms=0)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    ts = 10

    samples: dict[str, list[float]] = {"liquidations": [], "adl_triggers": []}
    try:
        while applied(port) < len(setup) - 1:  # up and caught up (the fund: the desk's)
            await asyncio.sleep(0.2)
        load = asyncio.create_task(fill_load(producer, topics, background_rate, stop, lambda: ts))
        await asyncio.sleep(2)
        for i in range(flips * 2):
            ts += 1000
            price = "15000" if i % 2 == 0 else "20000"  # bankrupt / healthy again
            mark = {"type": "mark", "ts": ts, "symbol": "BTCUSDT", "mark_price": price}
            sent = time.perf_counter()
            await producer.send_and_wait(
                topics.name("mark_prices"), orjson.dumps(mark), key=b"BTCUSDT"
            )
            if i % 2 == 0:  # A's liquidation and the trigger this very mark caused
                waiting = set(samples)
                while waiting:
                    message = await asyncio.wait_for(consumer.getone(), 60)
                    topic = topics.base(message.topic)
                    got = orjson.loads(message.value)
                    if topic in waiting and got["ts"] == ts and got.get("stage") != "cleared":
                        samples[topic].append(time.perf_counter() - sent)
                        waiting.discard(topic)
            await asyncio.sleep(0.2)
        stop.set()
        await load
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        await consumer.stop()
        await producer.stop()
    print_latency("liquidation", samples["liquidations"], background_rate)
    print_latency("ADL trigger (stage B)", samples["adl_triggers"], background_rate)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fills", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--flips", type=int, default=30)
    parser.add_argument("--background-rate", type=float, default=500.0)
    parser.add_argument("--mark-every", type=int, default=500, help="fills between marks")
    parser.add_argument("--bootstrap", help="a running broker (default: start one)")
    parser.add_argument(
        "--processes",
        default="1",
        help="agents process counts to run on the same input, comma list (e.g. 1,2,3: "
        "each beside the first's rate); the latency part runs only with 1",
    )
    parser.add_argument(
        "--summary-intervals",
        default="100,1000000000000",
        help="stage B summary intervals to run, comma list (a huge one: stage B idle)",
    )
    parser.add_argument(
        "--warm",
        default="on",
        help="warm copies (agents/warm.py) on, off or both (on,off: each count run twice)",
    )
    args = parser.parse_args()
    intervals = [int(v) for v in args.summary_intervals.split(",")]
    counts = [int(v) for v in args.processes.split(",")]

    async def run(bootstrap: str) -> None:
        for interval in intervals:
            rates = {}
            for n in counts:
                for warm in args.warm.split(","):
                    rates[(n, warm)] = await throughput(
                        bootstrap, args.fills, args.partitions, interval, args.mark_every, n,
                        warm == "on",
                    )  # fmt: skip
            if len(rates) > 1:
                base = next(iter(rates.values()))
                print("scaling: " + ", ".join(
                    f"{n} processes (warm copies {warm}) {rate:,.0f} ev/s "
                    f"({rate / base:.2f}x of the first)"
                    for (n, warm), rate in rates.items()
                ), flush=True)  # fmt: skip
        if counts == [1] and args.flips:
            await latency(bootstrap, args.partitions, args.flips, args.background_rate)

    await on_a_broker(run, args.bootstrap)


async def on_a_broker(run: Callable[[str], Awaitable[None]], bootstrap: str | None) -> None:
    """``run`` on the broker at ``bootstrap``, or on one started for it here (Apache
    Kafka when its jars can be had, else Tansu)."""
    if bootstrap:
        await run(bootstrap)
        return
    workdir = Path(tempfile.mkdtemp(prefix="adl-bench-"))
    broker: Broker = apache.ApacheKafka(workdir) if apache.available() else tansu.Tansu(workdir)
    with broker:
        print(f"broker: {type(broker).__name__} at {broker.bootstrap}", flush=True)
        await run(broker.bootstrap)


if __name__ == "__main__":
    asyncio.run(main())
