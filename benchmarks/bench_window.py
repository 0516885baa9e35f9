"""The engine's speed over one window of a long events file, e.g. the crash of the preset.

A replay of the whole Hyperliquid preset (3.1M events) takes hours where the engine is
slow; what matters is how it keeps up in the crash. This applies the first ``--skip``
lines untimed (the opening: deposits and positions), then times the next ``--count``
lines through ``Engine.apply`` (decode included, no output files), and prints events/s
beside the parse-only rate of the same lines and the window's span of market time.

With ``--against DIR`` the same is run by another checkout (e.g. ``git worktree add
/tmp/before 639f97b``) at the same time, each in its own process on its own core: both
see the same machine, and the ratio is the speed-up. Both must give the same number of
signals (count and a sha of their reprs, printed). ``--tree DIR`` measures another
tree as "this tree" (e.g. ``build/compiled``, the engine compiled by ``make compiled``;
with ``--compare-collector``: that tree beside itself). Usage:

    adl-monitor simulate --preset hyperliquid-2025-10-10 --out hl.jsonl
    python benchmarks/bench_window.py --events hl.jsonl --instruments hl.instruments.toml \\
        --skip 1290000 --count 40000 [--against /tmp/before]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from pathlib import Path
from typing import Any

import orjson
from beside import ROOT, run_beside, run_each


def _collections(freeze_survivors: bool) -> Any:
    """The process's full collections, counted, set as the tree's own long-running
    commands set them (``None``: a tree from before 2026-12-06); ``freeze_survivors``
    off: the collector as Python sets it (``--compare-collector``)."""
    try:
        from streams.pipeline import memory
    except ImportError:
        return None
    if freeze_survivors and hasattr(memory, "long_running_collections"):
        try:  # as ``replay`` sets it: every collection's survivors frozen (``freeze_young``)
            return memory.long_running_collections(freeze_young=True)
        except TypeError:
            return memory.long_running_collections()  # a tree from 2026-12-07 on
    collections = memory.process_collections()
    collections.freeze_survivors = freeze_survivors
    return collections


def run_window(
    events: Path, instruments: Path, skip: int, count: int, freeze_survivors: bool = True
) -> dict[str, Any]:
    """In this process: the tree first on ``sys.path`` is the one measured."""
    from streams.engine.decode import decode_line
    from streams.engine.engine import Engine
    from streams.engine.instruments import load_instruments

    collections = _collections(freeze_survivors)

    loaded = load_instruments(instruments)
    symbols = frozenset(loaded)
    engine = Engine(loaded)
    t0 = time.perf_counter()
    with events.open("rb") as source:
        for line in itertools.islice(source, skip):
            engine.apply(decode_line(line, symbols))
        skip_s = time.perf_counter() - t0
        window = list(itertools.islice(source, count))
    t1 = time.perf_counter()
    for line in window:
        orjson.loads(line)
    parse_s = time.perf_counter() - t1
    first_ts = orjson.loads(window[0])["ts"]
    signals: list[object] = []
    if collections is not None:  # the window's alone: the opening's left out
        count_before, total_before = collections.count, collections.total_s
        collections.take_longest()
    t2 = time.perf_counter()
    for line in window:
        signals.extend(engine.apply(decode_line(line, symbols)))
    window_s = time.perf_counter() - t2
    full = None
    if collections is not None:
        full = (
            collections.count - count_before,
            collections.take_longest(),
            collections.total_s - total_before,
        )
    digest = hashlib.sha256()  # after the clock: the signals themselves, not their count
    for signal in signals:
        digest.update(repr(signal).encode())
    return {
        "skip_s": skip_s,
        "window_s": window_s,
        "parse_s": parse_s,
        "events": len(window),
        "signals": len(signals),
        "sha": digest.hexdigest()[:16],
        "market_s": (engine.last_ts_ms - first_ts) / 1000,
        # of the whole run; the O(positions that moved) ones since a10d51d (None before)
        "reevaluations": engine.stats.reevaluations,
        "moved": getattr(engine.stats, "moved_reevaluations", None),
        "full_collections": full,  # (count, longest s, total s) in the window
    }


def row(name: str, result: dict[str, Any]) -> str:
    rate = result["events"] / result["window_s"]
    realtime = result["market_s"] / result["window_s"]
    return (
        f"{name:<10} {result['skip_s']:>9.1f} {result['events']:>8,.0f} {result['market_s']:>9.2f}"
        f" {result['window_s']:>9.2f} {rate:>9,.0f} {realtime:>9.3f}x"
        f" {result['events'] / result['parse_s']:>11,.0f} {result['signals']:>9,.0f}"
        f" {result['sha']:>16} {result['reevaluations']:>14,} {result['moved'] or 0:>11,}"
        f" {_full(result.get('full_collections'))}"
    )


def _full(full: Any) -> str:
    if full is None:
        return f"{'n/a':>26}"
    count, longest, total = full
    return f"{count:>5} {longest:>9.2f} s {total:>7.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--instruments", type=Path, required=True)
    parser.add_argument("--skip", type=int, default=0, help="lines applied untimed first")
    parser.add_argument("--count", type=int, default=40_000, help="lines timed")
    parser.add_argument("--against", type=Path, help="another checkout, run beside")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the tree measured (default: this)")
    parser.add_argument(
        "--compare-collector",
        action="store_true",
        help="this tree beside itself: the collector as its long-running commands set it "
        "(young collections far apart, full ones' survivors frozen), and as Python does",
    )
    parser.add_argument("--collector", choices=("freeze", "default"), default="freeze",
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        freeze = args.collector == "freeze"
        print(json.dumps(run_window(args.events, args.instruments, args.skip, args.count, freeze)))
        return
    argv = ["--events", str(args.events), "--instruments", str(args.instruments),
            "--skip", str(args.skip), "--count", str(args.count)]  # fmt: skip
    if args.compare_collector:
        results = _beside_itself(argv, args.tree.resolve())
    else:
        results = run_beside(__file__, argv, args.against, args.tree.resolve())
    print(
        f"{'tree':<10} {'skip s':>9} {'events':>8} {'market s':>9} {'window s':>9}"
        f" {'events/s':>9} {'real time':>10} {'parse ev/s':>11} {'signals':>9}"
        f" {'signals sha':>16} {'re-evaluated':>14} {'of them O(1)':>11}"
        f" {'full collections, longest, all':>26}"
    )
    for name, result in results.items():
        print(row(name, result))
    if "against" in results:
        ours, theirs = results["this tree"], results["against"]
        print(f"speed-up over the window: {theirs['window_s'] / ours['window_s']:.2f}x")
        if ours["sha"] != theirs["sha"]:
            mine, other = (f"{r['signals']} ({r['sha']})" for r in (ours, theirs))
            print(f"signals differ: {mine} vs {other}")


def _beside_itself(argv: list[str], tree: Path) -> dict[str, dict[str, Any]]:
    """The tree twice at the same time: "this tree" with the collector as the
    long-running commands set it, "against" with Python's collector as it is."""
    return run_each(
        __file__,
        {
            "this tree": (tree, [*argv, "--collector", "freeze"]),
            "against": (tree, [*argv, "--collector", "default"]),
        },
    )


if __name__ == "__main__":
    main()
