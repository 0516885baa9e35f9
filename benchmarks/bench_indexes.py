"""The engine's per-symbol indexes, each beside its baseline in the same process.

- ADL distance (``fund.adl_distance``) over a ``DeficitIndex`` of n positions: this tree
  asks the index once where the deficit crosses the fund (``budget_edge``) and bisects on
  prices; the baseline asks ``deficit_at`` at every bisection step (any curve's way, the
  engine's before). The mark moves between calls, as between a replay's projections.
- ``ThresholdIndex`` under a replay-like load (puts that move a position's zone ends, a
  tick of 0.02% crossing them): this tree against ``--against DIR``'s (an earlier
  checkout, e.g. ``git worktree add /tmp/before 5eb3d0e``: one sorted list of ends).

Same answers are checked, times printed; the ratio is what to read (shared machine).
Usage: python benchmarks/bench_indexes.py [--sizes 10000 100000] [--against DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from streams.engine import index as this_index
from streams.engine.fixed import SCALE
from streams.engine.fund import adl_distance, index_curve

MARK = 60_000 * SCALE


def _deficits(n: int, is_long: bool, rng: random.Random) -> this_index.DeficitIndex:
    index = this_index.DeficitIndex(is_long=is_long)
    for k in range(n):
        lev = rng.uniform(2, 100)
        price = MARK * (1 - 1 / lev) if is_long else MARK * (1 + 1 / lev)
        index.put(f"a{k}", int(price), rng.randint(1, 10**7))
    return index


def bench_distance(n: int, calls: int) -> None:
    rng = random.Random(n)
    fund = 10**6 * SCALE
    for is_long in (True, False):
        index = _deficits(n, is_long, rng)
        timings: dict[str, float] = {}
        answers: dict[str, list[float | None]] = {}
        for label in ("edge", "every step", "edge", "every step"):  # twice, interleaved
            started = time.perf_counter()
            got = []
            for j in range(calls):
                curve = index_curve(index, MARK + j * 10**6)
                asked = curve if label == "edge" else (lambda m, c=curve: c(m))
                got.append(adl_distance(0, fund, asked, is_long))
            timings[label] = min(
                timings.get(label, float("inf")), (time.perf_counter() - started) / calls
            )
            answers[label] = got
        assert answers["edge"] == answers["every step"], "the two searches disagree"
        print(
            f"{n:>10,} {'long' if is_long else 'short':>6} "
            f"{timings['edge'] * 1e6:>10.1f} {timings['every step'] * 1e6:>12.1f} "
            f"{timings['every step'] / timings['edge']:>8.1f}x"
        )


def _load(tree: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "earlier_index", tree / "streams" / "engine" / "index.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _threshold_load(module: Any, n: int, ticks: int) -> tuple[float, list[int]]:
    """n positions put, then per tick: 5% of them re-put (a fill or a band moving) and
    one tick of 0.02% asked; returns (seconds, crossed counts)."""
    rng = random.Random(7)
    index = module.ThresholdIndex()
    tol = 1000
    for k in range(n):
        liq = int(MARK * rng.uniform(0.5, 1.5))
        index.put(f"a{k}", (liq, liq - 10**9), tol, MARK)
    mark = MARK
    crossed = []
    started = time.perf_counter()
    for _ in range(ticks):
        for k in rng.sample(range(n), n // 20):
            liq = int(MARK * rng.uniform(0.5, 1.5))
            index.put(f"a{k}", (liq, liq - 10**9), tol, mark)
        new = int(mark * (1 + rng.choice((-2e-4, 2e-4))))
        crossed.append(len(index.crossed(mark, new)))
        mark = new
    return time.perf_counter() - started, crossed


def bench_thresholds(n: int, ticks: int, against: Path) -> None:
    earlier = _load(against)
    best: dict[str, float] = {}
    answers: dict[str, list[int]] = {}
    for label, module in (("this", this_index), ("earlier", earlier)) * 2:
        seconds, crossed = _threshold_load(module, n, ticks)
        best[label] = min(best.get(label, float("inf")), seconds)
        answers[label] = crossed
    assert answers["this"] == answers["earlier"], "the two indexes cross different keys"
    per_tick = {k: v / ticks * 1e3 for k, v in best.items()}
    print(
        f"{n:>10,} {per_tick['this']:>10.2f} {per_tick['earlier']:>12.2f} "
        f"{best['earlier'] / best['this']:>8.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument("--against", type=Path, help="an earlier checkout's tree")
    args = parser.parse_args()
    print("ADL distance, one side (us per call)")
    print(f"{'positions':>10} {'side':>6} {'edge':>10} {'every step':>12} {'ratio':>9}")
    for n in args.sizes:
        bench_distance(n, args.calls)
    if args.against:
        print(f"\nThresholdIndex: 5% of positions re-put + one 0.02% tick (ms per tick), "
              f"against {args.against}")  # fmt: skip
        print(f"{'positions':>10} {'this':>10} {'earlier':>12} {'ratio':>9}")
        for n in args.sizes:
            bench_thresholds(n, args.ticks, args.against)


if __name__ == "__main__":
    main()
