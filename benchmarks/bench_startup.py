"""What a restart of the worker costs, from its last snapshot or from the whole input
history, on Apache Kafka, in one run (the two beside each other).

A scenario (``adl-monitor simulate``) is produced to fresh topics; the worker runs over
it once with snapshots on (``ADL_SNAPSHOT_KEY``, one every ``--interval-s``) and exits
when idle; then it is started again twice on the same topics, each time until it is
caught up and exits: with the key (it reads the last snapshot and the input after it)
and without (it replays every input event, writing none of the outputs again). Each is
timed from the process's start to its exit, as a desk would wait for it.

Usage: python benchmarks/bench_startup.py [--accounts 10000] [--minutes 60]
       [--interval-s 10] [--events FILE --instruments FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from streams.brokers import apache
from streams.pipeline.producer import produce_file
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import ensure_topics

SNAPSHOT_LINE = re.compile(rb"snapshot at input sequence (\d+): ([\d.]+) MB in \d+ messages, "
                           rb"made in ([\d.]+) s")  # fmt: skip


class WorkerRun(NamedTuple):
    seconds: float  # from the worker's start to its exit (idle)
    log: bytes
    peak_rss_mb: int  # the kernel's, of the process


def timed_worker(env: dict[str, str], log: Path) -> WorkerRun:
    """One worker run to its exit when idle: its time, log and peak RSS."""
    began = time.perf_counter()
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--exit-when-idle"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - began
    text = log.read_bytes()
    if status != 0:
        raise SystemExit(f"the worker failed ({status}):\n{text[-3000:].decode()}")
    return WorkerRun(elapsed, text, usage.ru_maxrss // 1024)


def produced(settings: Settings, events: Path) -> None:
    """``settings``' topics made, ``events`` produced to them."""

    async def prepare() -> None:
        await ensure_topics(settings, Topics(settings.topic_prefix))
        await produce_file(settings, events)

    asyncio.run(prepare())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--interval-s", type=int, default=10)
    parser.add_argument("--events", type=Path, help="an events file instead of a scenario")
    parser.add_argument("--instruments", type=Path, help="its instruments (with --events)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    events, instruments = args.events, args.instruments
    if events is None:
        events = work / "scenario.jsonl"
        subprocess.run(  # noqa: S603  (this interpreter, this project's command)
            [sys.executable, "-m", "streams.cli", "simulate", "--accounts", str(args.accounts),
             "--minutes", str(args.minutes), "--out", str(events), "--quiet"],
            check=True,
        )  # fmt: skip
    count = sum(1 for _ in events.open("rb"))
    with apache.ApacheKafka(work / "broker", partitions=4) as broker:
        settings = Settings(bootstrap=broker.bootstrap, topic_prefix=f"s{uuid.uuid4().hex[:6]}.")
        began = time.perf_counter()
        produced(settings, events)
        print(f"{count:,} events produced in {time.perf_counter() - began:.1f} s")
        env = {**os.environ, "ADL_BOOTSTRAP": settings.bootstrap,
               "ADL_TOPIC_PREFIX": settings.topic_prefix, "ADL_PARTITIONS": "4"}  # fmt: skip
        env.pop("ADL_SNAPSHOT_KEY", None)
        if instruments is not None:
            env["ADL_INSTRUMENTS"] = str(instruments)
        keyed = {**env, "ADL_SNAPSHOT_KEY": "bench",
                 "ADL_SNAPSHOT_INTERVAL_S": str(args.interval_s)}  # fmt: skip
        first_s, log, _ = timed_worker(keyed, work / "first.log")
        taken = SNAPSHOT_LINE.findall(log)
        if not taken:
            raise SystemExit("no snapshot was written: a run shorter than --interval-s?")
        seq, size_mb, made_s = taken[-1]
        print(f"first run (snapshots every {args.interval_s} s): {first_s:.1f} s, "
              f"{count / first_s:,.0f} events/s; {len(taken)} snapshots, the last at input "
              f"sequence {int(seq):,}: {float(size_mb):.1f} MB, made in "
              f"{float(made_s):.2f} s")  # fmt: skip
        from_snapshot_s, _, snapshot_rss = timed_worker(keyed, work / "from-snapshot.log")
        from_history_s, _, history_rss = timed_worker(env, work / "from-history.log")
        print(f"restart from the last snapshot: {from_snapshot_s:.1f} s, "
              f"peak RSS {snapshot_rss:,} MB")  # fmt: skip
        print(f"restart from the whole history: {from_history_s:.1f} s, "
              f"peak RSS {history_rss:,} MB "
              f"(x{from_history_s / from_snapshot_s:.1f} the snapshot's)")  # fmt: skip
    print(f"logs in {work}")


if __name__ == "__main__":
    main()
