"""Stage A of the account agents without Kafka: each partition's ``Shard`` over an events
file, the way ``account-agents`` applies it, and how much of that its summaries cost.

The accounts are split over ``--partitions`` by crc32 of the account (any fixed split
does); each shard gets its accounts' fills, balances and position settings and every
mark (its clock), pushes them in file order, and applies them in canonical order with
a fund summary per ``--interval-ms`` of event time (what the desk merges). Decoding is
done before the clock starts; pushing, applying, summarising and the outputs' wire
form are timed. Prints events/s over all partitions, the summaries taken and the share
of the time they took, and a sha256 of every output (stream and payload, in order);
and the changelog rows of the rankings kept for their lights (``agents.ranking_rows``,
encoded as ``account-agents`` writes them, inside the timed run): how many, their bytes,
their share of the time.

With ``--against DIR`` another checkout (``git worktree add /tmp/before <commit>``) runs
the same beside this one, each in its own process: the ratio is the speed-up, and the
two shas must match (same outputs). Usage:

    python benchmarks/bench_shards.py [--events FILE --instruments FILE] [--count N]
        [--partitions 3] [--interval-ms 100] [--against /tmp/before]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
from beside import run_beside

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_EVENTS = ROOT / "streams" / "data" / "cascade.jsonl"
BUNDLED_INSTRUMENTS = ROOT / "streams" / "data" / "instruments.toml"


Feed = list[tuple[Any, dict[str, Any], Any]]  # (event, its object, Source) in file order


def shard_feeds(
    events: Path, instruments: Path, count: int | None, partitions: int
) -> tuple[dict[str, Any], list[Feed]]:
    """The instruments, and each partition's decoded inputs: its accounts' fills,
    balances and position settings and every mark, with their input offsets."""
    from streams.agents.shard import ACCOUNT_TOPICS, CLOCK_TOPIC, Source
    from streams.engine.decode import decode_event
    from streams.engine.errors import AdlMonitorError
    from streams.engine.instruments import load_instruments
    from streams.pipeline.topics import TYPE_TO_INPUT

    loaded = load_instruments(instruments)
    names = frozenset(loaded)
    feeds: list[Feed] = [[] for _ in range(partitions)]
    offsets: dict[tuple[str, int], int] = {}
    with events.open("rb") as source:
        for line in itertools.islice(source, count):
            try:
                obj = orjson.loads(line)
                event = decode_event(obj, names, obj["type"])
            except (AdlMonitorError, ValueError, KeyError):
                continue  # dead letters are the fan-out's and intake's, not a shard's
            topic = TYPE_TO_INPUT[obj["type"]].name
            if topic == "mark_prices":
                targets, topic = list(range(partitions)), CLOCK_TOPIC
            elif topic in ACCOUNT_TOPICS:
                targets = [zlib.crc32(obj["account"].encode()) % partitions]
            else:
                continue  # the fund and the books go to the desk
            for p in targets:
                offset = offsets[(topic, p)] = offsets.get((topic, p), -1) + 1
                feeds[p].append((event, obj, Source(topic, p, offset)))
    return loaded, feeds


class _Tally:
    """One run's outputs (a sha of all of them) and, while ``timing``, its counts and
    times: summaries and the kept rankings' rows."""

    def __init__(self, ranking_rows: Any) -> None:
        self.ranking_rows = ranking_rows  # None: a tree from before 2026-12-05
        self.digest = hashlib.sha256()
        self.timing = True
        self.outputs = self.summaries = self.rows = self.rows_bytes = 0
        self.summary_s = self.rows_s = 0.0

    def output(self, out: Any, stream: bool = True) -> None:
        if stream:
            self.digest.update(out.stream.encode())
        self.digest.update(orjson.dumps(out.payload, option=orjson.OPT_SORT_KEYS))
        self.outputs += 1

    def summarised(self, seconds: float) -> None:
        if self.timing:
            self.summary_s += seconds
            self.summaries += 1

    def write_rows(self, shard: Any) -> None:
        if self.ranking_rows is None:
            return
        t = time.perf_counter()
        for sym, ranking, kept in shard.ranking_changes():
            if kept:
                written = self.ranking_rows(shard.partition, sym, ranking)
                if self.timing:
                    self.rows += len(written)
                    self.rows_bytes += sum(len(value) for _, value in written)
        if self.timing:
            self.rows_s += time.perf_counter() - t

    def drain(self, shard: Any, flush: bool) -> None:
        for item in shard.release([], flush=flush):
            for out in shard.apply(item).outputs:
                self.output(out)
            self.write_rows(shard)


def run_shards(
    events: Path,
    instruments: Path,
    count: int | None,
    partitions: int,
    interval_ms: int,
    timed_from_ts: int | None = None,
) -> dict[str, Any]:
    """In this process: the tree first on ``sys.path`` is the one measured. With
    ``timed_from_ts``, each partition's events before that event time are applied first,
    untimed (an opening), and only the rest are timed, their events, summaries and rows
    counted (the outputs and their sha: all)."""
    from streams.agents.shard import Shard

    ranking_rows: Any = None  # a tree from before 2026-12-05 has none
    with contextlib.suppress(ImportError):  # the rows of the rankings kept for their lights
        from streams.agents.ranking_rows import ranking_rows

    loaded, feeds = shard_feeds(events, instruments, count, partitions)
    tally = _Tally(ranking_rows)
    elapsed = 0.0
    timed_events = 0
    for p, feed in enumerate(feeds):
        persist: dict[str, Any] = {} if ranking_rows is None else {"persist_rankings": True}
        shard: Shard[None] = Shard(p, loaded, summary_interval_ms=interval_ms, **persist)
        summarizer = shard.summarizer
        assert summarizer is not None
        take = summarizer.summary

        def timed(*args: Any, _take: Any = take) -> Any:
            t = time.perf_counter()
            try:
                return _take(*args)
            finally:
                tally.summarised(time.perf_counter() - t)

        summarizer.summary = timed  # type: ignore[method-assign,assignment]
        start = 0
        if timed_from_ts is not None:
            start = next((k for k, (_, obj, _) in enumerate(feed) if obj["ts"] >= timed_from_ts),
                         len(feed))  # fmt: skip
            tally.timing = False
            for event, obj, where in feed[:start]:
                shard.push(event, obj, where, None)
            tally.drain(shard, flush=False)  # what the clock released; the rest waits, as live
            tally.timing = True
        t0 = time.perf_counter()
        for event, obj, where in feed[start:]:
            shard.push(event, obj, where, None)
        tally.drain(shard, flush=True)
        for out in shard.summaries():
            tally.output(out, stream=False)
        tally.write_rows(shard)
        elapsed += time.perf_counter() - t0
        timed_events += len(feed) - start
    return {
        "events": timed_events,
        "seconds": elapsed,
        "summaries": tally.summaries,
        "summary_s": tally.summary_s,
        "outputs": tally.outputs,
        "sha": tally.digest.hexdigest()[:16],
        "ranking_rows": tally.rows,
        "ranking_rows_bytes": tally.rows_bytes,
        "ranking_rows_s": tally.rows_s,
    }


def feed_arguments(description: str | None, partitions: int) -> argparse.ArgumentParser:
    """The options of a benchmark over shards fed from an events file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--events", type=Path, default=BUNDLED_EVENTS)
    parser.add_argument("--instruments", type=Path, default=BUNDLED_INSTRUMENTS)
    parser.add_argument("--count", type=int, help="only the file's first lines")
    parser.add_argument("--partitions", type=int, default=partitions)
    parser.add_argument("--interval-ms", type=int, default=100)
    return parser


def main() -> None:
    parser = feed_arguments(__doc__, partitions=3)
    parser.add_argument("--against", type=Path, help="another checkout, run beside")
    parser.add_argument(
        "--timed-from-ts", type=int, help="apply events before this event time (ms) untimed"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.events, args.instruments = args.events.resolve(), args.instruments.resolve()
    if args.json:
        result = run_shards(
            args.events,
            args.instruments,
            args.count,
            args.partitions,
            args.interval_ms,
            args.timed_from_ts,
        )
        print(json.dumps(result))
        return
    argv = ["--events", str(args.events), "--instruments", str(args.instruments),
            "--partitions", str(args.partitions),
            "--interval-ms", str(args.interval_ms)]  # fmt: skip
    if args.count is not None:
        argv += ["--count", str(args.count)]
    if args.timed_from_ts is not None:
        argv += ["--timed-from-ts", str(args.timed_from_ts)]
    results = run_beside(__file__, argv, args.against)
    print(
        f"{'tree':<10} {'events':>8} {'seconds':>8} {'events/s':>9} {'summaries':>9}"
        f" {'in them':>8} {'outputs':>8}  sha"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {r['events']:>8,} {r['seconds']:>8.2f} {r['events'] / r['seconds']:>9,.0f}"
            f" {r['summaries']:>9,} {r['summary_s'] / r['seconds']:>8.0%} {r['outputs']:>8,}"
            f"  {r['sha']}"
        )
    for name, r in results.items():
        if r.get("ranking_rows"):
            print(
                f"{name}: kept rankings' changelog rows {r['ranking_rows']:,}, "
                f"{r['ranking_rows_bytes'] / 1e6:,.1f} MB, encoded in "
                f"{r['ranking_rows_s']:.2f} s ({r['ranking_rows_s'] / r['seconds']:.1%} of the run)"
            )
    if "against" in results:
        ours, theirs = results["this tree"], results["against"]
        print(f"speed-up: {theirs['seconds'] / ours['seconds']:.2f}x")
        if ours["sha"] != theirs["sha"]:
            print("outputs differ")


if __name__ == "__main__":
    main()
