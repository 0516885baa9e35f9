"""What a cold start of ``account-agents`` costs as the history grows: a process that
starts without the partitions' state (a new machine, a deployment, every process
restarted) restores each table from its changelog, reading every row the broker still
holds. Faust makes the changelog topics compacted, but Kafka never compacts a topic's
newest segment (a week or 1 GB of rows by default), so without more the restore reads
every row written since the agents began; with ``ADL_CHANGELOG_SEGMENT_MS`` (default
60 s) the rows older than that are compacted to each key's last.

For each ``--fills`` count, in one run on one Apache Kafka broker, the same backlog
(fills between ``--accounts`` accounts, a mark every 500 fills, 4 partitions) on fresh
topics twice: changelog topics with the broker's defaults (``ADL_CHANGELOG_SEGMENT_MS=0``,
the agents before 2026-12-07) and with ``--segment-ms``. Each time: one agents process
drains the backlog, then lives on ``--live-s`` more with 8 fills and a mark a second (a
live venue: the changelog's segments roll and the broker's cleaner runs as it would), is
stopped, and a new process is started with one new account's fill behind the
backlog; timed from its start to that account's ``account_risk`` output being
readable (the restore of every table, then the first event). Printed beside it: the
changelog rows written (offsets) and those the broker still holds (read back).

Usage: python benchmarks/bench_agents_startup.py [--fills 50000,200000]
       [--accounts N] [--segment-ms 60000] [--live-s 100]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from bench_agents import agents_process, applied, with_marks
from bench_pipeline import fill_events, produce

from streams.agents.app import INTERNAL
from streams.agents.changelog import changelog_rows
from streams.brokers import apache
from streams.brokers.base import free_port
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import ensure_topics

PROBE = "probe-account"


async def probe_output(settings: Settings, since: dict[TopicPartition, int]) -> None:
    """Wait for the probe account's ``account_risk`` message after ``since``."""
    consumer = AIOKafkaConsumer(**settings.client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            if any(r.key == PROBE.encode() for rs in batches.values() for r in rs):
                return
    finally:
        await consumer.stop()


async def end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**settings.client_options())
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


def live_second(ts: int, second: int, accounts: int) -> list[dict[str, object]]:
    """A second of a live venue: a trade between two accounts per partition (so each
    account changelog partition is written to: its segment rolls), then a mark."""
    events: list[dict[str, object]] = []
    for n in range(8):
        account = f"a{(second * 8 + n) * 7919 % accounts}"
        side = ("buy", "sell")[n % 2]
        events.append({"type": "fill", "fill_id": f"live{second}-{n}", "ts": ts,
                       "account": account, "symbol": "BTCUSDT", "side": side,
                       "qty": "0.01", "price": "60000"})  # fmt: skip
    return [*events, {"type": "mark", "ts": ts, "symbol": "BTCUSDT", "mark_price": "60000"}]


async def one_history(
    bootstrap: str, fills: int, accounts: int, segment_ms: int, live_s: int
) -> tuple[float, int, int, float]:
    """(first pass s, changelog rows written, rows held, cold start s)."""
    settings = Settings(bootstrap=bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:5]}.",
                        partitions=4, changelog_segment_ms=segment_ms)  # fmt: skip
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics, INTERNAL)
    events = with_marks(fill_events(fills, accounts=accounts), every=500)
    events = [e for e in events if e["type"] != "insurance_fund"]
    marks = sum(e["type"] == "mark" for e in events)
    expected = len(events) - marks + marks * settings.partitions
    await produce(settings, events)
    last_ts = max(int(str(e["ts"])) for e in events)
    port = free_port()
    began = time.perf_counter()
    agents = agents_process(settings, port)
    try:
        while applied(port) < expected:
            if time.perf_counter() - began > 3600:
                raise SystemExit(f"stalled at {applied(port):,.0f} of {expected:,} events")
            await asyncio.sleep(0.5)
        first_s = time.perf_counter() - began
        for second in range(live_s):  # a live venue: trades and a mark every second
            await produce(settings, live_second(last_ts + 1 + second, second, accounts))
            await asyncio.sleep(1)
        last_ts += live_s + 1
    finally:
        agents.terminate()
        agents.wait(timeout=120)
    written, held = await changelog_rows(settings)
    since = await end_offsets(settings, topics.name("account_risk"))
    await produce(settings, [
        {"type": "balance", "event_id": "probe-deposit", "ts": last_ts, "account": PROBE,
         "amount": "1000", "reason": "deposit"},
        {"type": "fill", "fill_id": "probe-fill", "ts": last_ts, "account": PROBE,
         "symbol": "BTCUSDT", "side": "buy", "qty": "0.01", "price": "60000"},
        {"type": "mark", "ts": last_ts + 1, "symbol": "BTCUSDT", "mark_price": "60000"},
    ])  # fmt: skip
    began = time.perf_counter()
    agents = agents_process(settings, free_port())
    try:
        await asyncio.wait_for(probe_output(settings, since), timeout=3600)
        cold_s = time.perf_counter() - began
    finally:
        agents.terminate()
        agents.wait(timeout=120)
    return first_s, written, held, cold_s


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-agents-startup-"))
    with apache.ApacheKafka(work / "broker", partitions=4) as broker:
        for fills in args.fills:
            accounts = args.accounts or max(100, fills // 20)
            cold = {}
            for segment_ms in (0, args.segment_ms):
                first_s, written, held, cold[segment_ms] = await one_history(
                    broker.bootstrap, fills, accounts, segment_ms, args.live_s
                )
                label = "broker defaults" if not segment_ms else f"segment.ms {segment_ms:,}"
                print(f"{fills:,} fills, {accounts:,} accounts, changelogs {label}: first pass "
                      f"{first_s:.1f} s; changelog rows written {written:,}, held {held:,}; "
                      f"cold start to the first output {cold[segment_ms]:.1f} s",
                      flush=True)  # fmt: skip
            print(f"  -> cold start {cold[0] / cold[args.segment_ms]:.1f}x faster with "
                  f"segment.ms {args.segment_ms:,}", flush=True)  # fmt: skip
    print(f"broker in {work}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=lambda s: [int(x) for x in s.split(",")],
                        default=[50_000, 200_000])  # fmt: skip
    parser.add_argument("--accounts", type=int, default=0, help="default: fills / 20")
    parser.add_argument("--segment-ms", type=int, default=60_000)
    parser.add_argument("--live-s", type=int, default=100)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
