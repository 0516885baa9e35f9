"""How long a worker snapshot holds the worker's loop: made in the loop (pickled,
compressed and signed there) against made by a forked child, on the same state, in one
run.

The state is an engine after the first ``--count`` events of a file (``--events``, e.g.
the Hyperliquid preset's opening) or of a scenario made here (``--accounts``). Made in
the loop, the loop is held for the whole encoding. Forked, twice: with the loop idle, a
task ticking every 5 ms measures the longest the loop went without running it, from the
fork to the last record read back (what the fork itself costs the loop); then with the
loop applying the file's next events meanwhile, 500 a turn as the worker does
(``--busy``): how many it applied while the child worked. Both snapshots must decode to
the same state (same signals for the events that follow). Prints the figures, and with
``--json`` one JSON object.

Usage: python benchmarks/bench_snapshot.py [--accounts 50000 --minutes 12]
       [--events FILE --instruments FILE] [--count N] [--busy 20000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from streams.engine.decode import decode_line
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError
from streams.engine.instruments import load_instruments
from streams.pipeline import snapshots
from streams.pipeline.snapshot_fork import SnapshotFork
from streams.pipeline.snapshots import Snapshot

KEY = "bench"
TICK_S = 0.005


def apply_lines(engine: Engine, lines: list[bytes], symbols: frozenset[str]) -> int:
    """``lines`` applied; how many signals they gave."""
    signals = 0
    for line in lines:
        try:
            signals += len(engine.apply(decode_line(line, symbols)))
        except AdlMonitorError:
            continue
    return signals


async def forked(
    snapshot: Snapshot, busy: list[bytes], symbols: frozenset[str]
) -> tuple[SnapshotFork, float, int]:
    """A forked snapshot while the loop applies ``busy`` (500 events a turn, as the
    worker does); the fork, the longest gap between ticks, events applied meanwhile."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(TICK_S * 2)
    fork = SnapshotFork.start(snapshot, KEY, os.urandom(16))
    applied = 0
    for at in range(0, len(busy), 500):
        if fork.done.is_set():
            break
        apply_lines(snapshot.engine, busy[at : at + 500], symbols)
        applied += len(busy[at : at + 500])
        await asyncio.sleep(0)
    await fork.done.wait()
    done.set()
    await ticking
    return fork, max(gaps[1:], default=0.0), applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--minutes", type=int, default=12)
    parser.add_argument("--events", type=Path, help="an events file instead of a scenario")
    parser.add_argument("--instruments", type=Path, help="its instruments (with --events)")
    parser.add_argument("--count", type=int, help="events applied before the snapshot")
    parser.add_argument("--busy", type=int, default=20_000, help="events applied meanwhile")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    events, instruments = args.events, args.instruments
    if events is None:
        work = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
        events, instruments = work / "scenario.jsonl", None
        subprocess.run(  # noqa: S603  (this interpreter, this project's command)
            [sys.executable, "-m", "streams.cli", "simulate", "--accounts", str(args.accounts),
             "--minutes", str(args.minutes), "--out", str(events), "--quiet"],
            check=True,
        )  # fmt: skip
    if instruments is None:
        from streams.cli import bundled

        instruments = Path(bundled("instruments.toml"))
    loaded = load_instruments(instruments)
    symbols = frozenset(loaded)
    with events.open("rb") as src:
        lines = list(itertools.islice(src, args.count))
        busy = list(itertools.islice(src, args.busy))
    engine = Engine(loaded)
    began = time.perf_counter()
    apply_lines(engine, lines, symbols)
    built_s = time.perf_counter() - began
    accounts = len(engine.accounts)
    snapshot = Snapshot(engine, len(lines), engine.last_ts_ms)

    began = time.perf_counter()
    in_loop = snapshots.encode(snapshot, KEY, os.urandom(16))
    in_loop_s = time.perf_counter() - began
    size_mb = sum(len(v) for _, v in in_loop) / 1e6
    parent_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    idle, longest_gap_s, _ = asyncio.run(forked(snapshot, [], symbols))
    fork, _, applied = asyncio.run(forked(snapshot, busy, symbols))
    records = fork.records()
    # the same state: the events applied meanwhile give the same signals from both
    check = busy[:applied] or busy[:2000]
    states = [snapshots.decode(r, KEY) for r in (in_loop, records)]
    same = len({apply_lines(s.engine, check, symbols) for s in states if s is not None}) == 1

    result: dict[str, Any] = {
        "events": len(lines),
        "accounts": accounts,
        "built_s": round(built_s, 1),
        "snapshot_mb": round(size_mb, 1),
        "in_loop_held_s": round(in_loop_s, 3),
        "forked_held_s": round(idle.held_s, 4),
        "forked_longest_gap_s": round(longest_gap_s, 4),
        "forked_made_s": round(fork.made_s, 2),
        "events_applied_meanwhile": applied,
        "parent_max_rss_mb": round(parent_rss_mb),
        "child_max_rss_mb": round(fork.child_max_rss_mb),
        "ratio": round(in_loop_s / max(longest_gap_s, idle.held_s, 1e-6), 1),
        "same_state": same,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"state: {len(lines):,} events applied in {built_s:.1f} s, {accounts:,} accounts; "
          f"snapshot {size_mb:.1f} MB")  # fmt: skip
    print(f"made in the loop: the loop held {in_loop_s:.2f} s")
    print(f"made by a forked child, the loop idle: the fork held it {idle.held_s * 1000:.1f} "
          f"ms, the longest gap between 5 ms ticks {longest_gap_s * 1000:.1f} ms; the child "
          f"took {idle.made_s:.2f} s")  # fmt: skip
    print(f"made by a forked child, the loop busy: it applied {applied:,} events while the "
          f"child took {fork.made_s:.2f} s; peak RSS parent {parent_rss_mb:,.0f} MB, child "
          f"{fork.child_max_rss_mb:,.0f} MB (mostly pages shared with the parent)")  # fmt: skip
    print(f"the loop held {result['ratio']}x less; the same state from both: {same}")
    if not same:
        raise SystemExit("the two snapshots differ")


if __name__ == "__main__":
    main()
