"""What the worker holds in memory through a backlog, with the inputs ahead of the
watermark paused (``ADL_MAX_BUFFERED_EVENTS``) beside without, in one run.

An events file is produced twice to fresh topics (two prefixes) on Apache Kafka; the
worker reads each as a whole backlog (``worker --exit-when-idle``), once with the cap
given and once with it out of reach. Printed for each: its time, peak RSS (the
kernel's, of the process) and the most decoded events it held for the watermark
(``buffered_peak`` of its final stats).

Usage: python benchmarks/bench_backlog.py --events FILE [--instruments FILE]
       [--count N] [--cap 200000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import uuid
from pathlib import Path

import orjson
from bench_startup import produced, timed_worker

from streams.brokers import apache
from streams.pipeline.settings import Settings

UNBOUNDED = 999_999_999  # the most the setting takes (nine digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--instruments", type=Path)
    parser.add_argument("--count", type=int, help="only the file's first N lines")
    parser.add_argument("--cap", type=int, default=Settings().max_buffered_events)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backlog-"))
    events = args.events
    if args.count:
        events = work / "events.jsonl"
        with args.events.open("rb") as source, events.open("wb") as out:
            out.writelines(itertools.islice(source, args.count))
    count = sum(1 for _ in events.open("rb"))
    with apache.ApacheKafka(work / "broker", partitions=4) as broker:
        runs = {"capped": args.cap, "unbounded": UNBOUNDED}
        prefixes = {name: f"b{uuid.uuid4().hex[:6]}." for name in runs}
        for prefix in prefixes.values():
            produced(Settings(bootstrap=broker.bootstrap, topic_prefix=prefix), events)
        print(f"{count:,} events produced twice")
        for name, cap in runs.items():
            env = {**os.environ, "ADL_BOOTSTRAP": broker.bootstrap, "ADL_PARTITIONS": "4",
                   "ADL_TOPIC_PREFIX": prefixes[name],
                   "ADL_MAX_BUFFERED_EVENTS": str(cap)}  # fmt: skip
            env.pop("ADL_SNAPSHOT_KEY", None)
            if args.instruments is not None:
                env["ADL_INSTRUMENTS"] = str(args.instruments)
            seconds, log, rss_mb = timed_worker(env, work / f"{name}.log")
            stats = orjson.loads(log[log.rindex(b"\n{") :])  # its final stats
            print(f"{name} (cap {cap:,}): {seconds:.1f} s, {count / seconds:,.0f} events/s, "
                  f"peak RSS {rss_mb:,} MB, at most {stats['buffered_peak']:,} events held "
                  f"for the watermark, inputs paused {stats['held_ahead']} times")  # fmt: skip
    print(f"logs in {work}")


if __name__ == "__main__":
    main()
