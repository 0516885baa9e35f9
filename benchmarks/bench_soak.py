"""Soak: the worker on Apache Kafka for a long run at a steady mixed load; its memory
(RSS) printed every minute, with how far it is behind. A monitor that runs for months
must not grow with the number of events it has seen (fill ids are kept only for the
dedupe window: ``engine.dedupe``).

The load, at ``--rate`` events/s of wall time (event time = wall time): fills between
``--accounts`` accounts on BTC/ETH/SOL (both sides of each trade, each account's
position a bounded random walk), a mark per symbol every 100 ms (a random walk held
within +-6% of its start: high-leverage accounts cross their thresholds and come back),
a deposit now and then, the insurance fund every 10 s. The worker runs as its own
process (``adl-monitor worker`` with its metrics port), as deployed.

Prints a line per minute (events sent, RSS, lag, late events) and at the end the RSS change from the
end of the warm-up to the end of the run. A benchmark: it asserts nothing.

Usage: python benchmarks/bench_soak.py [--minutes 30] [--rate 1000] [--warmup-min 16]
       [--allowed-lateness-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.brokers import apache
from streams.brokers.base import free_port
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import ensure_topics

SYMBOLS = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0}
QTY = {"BTCUSDT": 0.001, "ETHUSDT": 0.02, "SOLUSDT": 0.5}  # ~$60 a fill
BAND = 0.06  # marks stay within +-6% of their start


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(port: int, family: str) -> float:
    """The sum of a metric family's samples on the worker's /metrics (NaN: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return float("nan")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{family}{{", f"{family} "))
    )


class Load:
    """The steady mixed load; ``next_second`` gives one second's events at ``now_ms``."""

    def __init__(self, accounts: int, rate: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.accounts = accounts
        self.rate = rate
        self.marks = dict(SYMBOLS)
        self.fills = 0
        self.deposits = 0

    def opening(self, now_ms: int) -> list[dict[str, object]]:
        events: list[dict[str, object]] = [
            {"type": "insurance_fund", "ts": now_ms, "fund": "USDT-M", "balance": "1000000"}
        ]
        for i in range(self.accounts):
            # one account in ten trades on a thin wallet: it crosses its thresholds
            wallet = "300" if i % 10 == 0 else "100000"
            events.append({"type": "balance", "event_id": f"open-{i}", "ts": now_ms,
                           "account": f"s{i}", "amount": wallet, "reason": "deposit"})  # fmt: skip
        return events

    def next_second(self, now_ms: int) -> list[dict[str, object]]:
        rng = self.rng
        events: list[dict[str, object]] = []
        for tick in range(10):  # a mark per symbol every 100 ms
            for sym, start in SYMBOLS.items():
                step = self.marks[sym] * rng.gauss(0, 0.0008)
                pulled = self.marks[sym] + step + (start - self.marks[sym]) * 0.001
                self.marks[sym] = min(start * (1 + BAND), max(start * (1 - BAND), pulled))
                events.append({"type": "mark", "ts": now_ms + tick * 100, "symbol": sym,
                               "mark_price": f"{self.marks[sym]:.2f}"})  # fmt: skip
        trades = max(0, (self.rate - len(events) - 2) // 2)
        for k in range(trades):
            buyer, seller = rng.sample(range(self.accounts), 2)
            sym = rng.choice(list(SYMBOLS))
            price = f"{self.marks[sym]:.2f}"
            ts = now_ms + k * 1000 // max(1, trades)
            self.fills += 1
            for acct, side in ((buyer, "buy"), (seller, "sell")):
                events.append({"type": "fill", "fill_id": f"f{self.fills}", "ts": ts,
                               "account": f"s{acct}", "symbol": sym, "side": side,
                               "qty": f"{QTY[sym]}", "price": price})  # fmt: skip
        self.deposits += 1
        events.append({"type": "balance", "event_id": f"dep-{self.deposits}", "ts": now_ms,
                       "account": f"s{rng.randrange(self.accounts)}", "amount": "50",
                       "reason": "deposit"})  # fmt: skip
        if (now_ms // 1000) % 10 == 0:
            events.append({"type": "insurance_fund", "ts": now_ms, "fund": "USDT-M",
                           "balance": "1000000"})  # fmt: skip
        return events


async def send_all(
    producer: AIOKafkaProducer, topics: Topics, events: list[dict[str, object]]
) -> None:
    for event in events:
        topic, key = topics.input_for(event)
        await producer.send(topic, orjson.dumps(event), key=key)


async def soak(broker: apache.ApacheKafka, minutes: float, rate: int, accounts: int,
               warmup_min: int, lateness_ms: int) -> None:  # fmt: skip
    settings = Settings(bootstrap=broker.bootstrap, topic_prefix=f"s{uuid.uuid4().hex[:5]}.",
                        partitions=4)  # fmt: skip
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics)
    port = free_port()
    env = {**os.environ, "ADL_BOOTSTRAP": settings.bootstrap,
           "ADL_TOPIC_PREFIX": settings.topic_prefix, "ADL_PARTITIONS": "4",
           "ADL_ALLOWED_LATENESS_MS": str(lateness_ms)}  # fmt: skip
    log = Path(tempfile.mkdtemp(prefix="adl-soak-")) / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(  # noqa: S603  # our own argv
            [sys.executable, "-m", "streams.cli", "worker", "--metrics-port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    producer = AIOKafkaProducer(**settings.client_options(), linger_ms=20, acks="all")
    await producer.start()
    load = Load(accounts, rate)
    sent = 0
    samples: list[float] = []
    try:
        began = time.time()
        opening = load.opening(int(began * 1000))
        await send_all(producer, topics, opening)
        sent += len(opening)
        print(f"worker pid {worker.pid}, log {log}; {accounts:,} accounts, {rate:,} events/s "
              f"for {minutes:g} min", flush=True)  # fmt: skip
        second = 0
        while second < minutes * 60:
            second += 1
            events = load.next_second(int((began + second) * 1000))
            await send_all(producer, topics, events)
            sent += len(events)
            delay = began + second - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited ({worker.returncode}): see {log}")
            if second % 60 == 0:
                samples.append(rss_mb(worker.pid))
                rss, behind = samples[-1], scrape(port, "adl_consumer_lag_messages")
                late = scrape(port, "adl_late_events_total")
                print(f"minute {second // 60:3d}: {sent:>10,} events sent | worker RSS "
                      f"{rss:7.1f} MB | lag {behind:,.0f} messages | late {late:,.0f}",
                      flush=True)  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()
        worker.terminate()
        worker.wait(timeout=60)
    if len(samples) > warmup_min:
        start, end = samples[warmup_min - 1], samples[-1]
        print(f"RSS after the {warmup_min}-minute warm-up {start:.1f} MB, at the end {end:.1f} MB: "
              f"{(end - start) / start * 100:+.1f}% over {len(samples) - warmup_min} minutes; "
              f"max {max(samples[warmup_min - 1:]):.1f} MB", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--accounts", type=int, default=2000)
    # the dedupe window (15 minutes of event time by default) fills up first
    parser.add_argument("--warmup-min", type=int, default=16)
    # the load writes each second's events at once, time-stamped through that second:
    # its producers are up to 1 s apart in event time
    parser.add_argument("--allowed-lateness-ms", type=int, default=1000)
    args = parser.parse_args()
    if not apache.available():
        raise SystemExit("the soak needs Apache Kafka (Java 17+ and Maven)")
    workdir = Path(tempfile.mkdtemp(prefix="adl-soak-broker-"))
    with apache.ApacheKafka(workdir) as broker:
        asyncio.run(soak(broker, args.minutes, args.rate, args.accounts, args.warmup_min,
                         args.allowed_lateness_ms))  # fmt: skip


if __name__ == "__main__":
    main()
