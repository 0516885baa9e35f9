"""Stage A (Faust account agents) throughput on a real broker, beside its baseline.

N fills between accounts (with their deposits and a mark every 500 fills: marks are the
agents' clock) on the input topics; a bare aiokafka consumer reads and decodes (orjson)
the same topics; then ``adl-monitor account-agents`` (one worker process, Faust) drains
them: decode, mark fan-out to every partition, per-partition canonical order, engine,
outputs delivered, changelog rows written, manual acks. Its rate is taken from its own
``/metrics`` between the first and the last event applied (Faust's start-up and group
join excluded, printed apart).

Usage: python benchmarks/bench_agents.py [--fills 50000] [--partitions 4]
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
from pathlib import Path

from bench_pipeline import bare_consumer_rate, fill_events, produce
from prometheus_client.parser import text_string_to_metric_families

from streams.agents.app import CLOCK_SPEC
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


def applied(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "adl_agent_events_applied_total"
    )


async def throughput(bootstrap: str, fills: int, partitions: int) -> None:
    settings = Settings(bootstrap=bootstrap, topic_prefix=f"f{uuid.uuid4().hex[:5]}.",
                        partitions=partitions)  # fmt: skip
    await ensure_topics(settings, Topics(settings.topic_prefix), (CLOCK_SPEC,))
    events = with_marks(fill_events(fills, accounts=max(100, fills // 20)), every=500)
    events = [e for e in events if e["type"] != "insurance_fund"]  # stage B's
    marks = sum(e["type"] == "mark" for e in events)
    await produce(settings, events)
    raw_rate = await bare_consumer_rate(settings, len(events))
    # each mark is applied once per partition
    expected = len(events) - marks + marks * partitions
    port = free_port()
    env = {
        **os.environ,
        "ADL_BOOTSTRAP": settings.bootstrap,
        "ADL_TOPIC_PREFIX": settings.topic_prefix,
        "ADL_PARTITIONS": str(partitions),
    }
    started = time.perf_counter()
    worker = subprocess.Popen(  # noqa: S603 (our own command)
        [sys.executable, "-m", "streams.cli", "account-agents", "--metrics-port", str(port)],
        env=env,
    )
    try:
        first = None
        while (done := applied(port)) < expected:
            if first is None and done > 0:
                first = time.perf_counter()
            if time.perf_counter() - started > 900:
                raise SystemExit(f"stalled at {done:,.0f} of {expected:,} events")
            await asyncio.sleep(0.2)
        finished = time.perf_counter()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    first = first or finished
    rate = expected / (finished - first)
    print(f"account-agents: {expected:,} events applied ({fills:,} fills, {marks} marks x "
          f"{partitions} partitions) | start-up to first event {first - started:.1f} s | "
          f"{rate:,.0f} ev/s | bare consumer+orjson {raw_rate:,.0f} ev/s | ratio "
          f"{raw_rate / rate:.1f}x", flush=True)  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fills", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", help="a running broker (default: start one)")
    args = parser.parse_args()
    if args.bootstrap:
        await throughput(args.bootstrap, args.fills, args.partitions)
        return
    workdir = Path(tempfile.mkdtemp(prefix="adl-bench-"))
    broker: Broker = apache.ApacheKafka(workdir) if apache.available() else tansu.Tansu(workdir)
    with broker:
        print(f"broker: {type(broker).__name__} at {broker.bootstrap}", flush=True)
        await throughput(broker.bootstrap, args.fills, args.partitions)


if __name__ == "__main__":
    asyncio.run(main())
