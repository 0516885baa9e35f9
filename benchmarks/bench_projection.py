"""A fund projection of many symbols, asked again and again: this tree beside another.

A projection reads every symbol of the fund: each side's deficit at the mark, at every
shock of the ladder, and its ADL distance. The engine makes one at least every
``projection_interval_ms`` and at every stage change: in the preset's crash tens of them
a second of market time, most symbols unchanged between two of them. This builds one
fund of ``--symbols`` symbols (``bench_symbols.py``'s: copies of the bundled BTCUSDT,
``--accounts`` positions, 5% of them under water after a 40% fall of every mark), then
times ``Engine.projection``:

- ``same``: asked again with nothing changed in between (a stage change's projection a
  few events after the last one);
- ``one mark``: one symbol's mark moved between two (the rest as they were).

With ``--against DIR`` (an earlier checkout, e.g. ``git worktree add /tmp/before
37d3d4f``) the same runs there at the same time, each in its own process: the ratio is
the speed-up, and both must give the same projections (a sha of their reprs). ``--tree
DIR`` measures another tree as "this tree" (e.g. ``build/compiled``; two compiled trees
beside each other). Prints; asserts nothing. Usage:

    python benchmarks/bench_projection.py [--symbols 160] [--accounts 20000] [--against DIR]
        [--tree DIR]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import orjson
from bench_symbols import T0, instruments, lines, price_of
from beside import ROOT, run_beside

from streams.engine.decode import decode_line
from streams.engine.engine import Engine


def mark_line(ts_ms: int, symbol: str, price: float) -> bytes:
    return orjson.dumps(
        {"type": "mark", "ts": ts_ms, "symbol": symbol, "mark_price": f"{price:.4f}"}
    )


def measure(count: int, accounts: int, asks: int) -> dict[str, Any]:
    """In this process: the tree first on ``sys.path`` is the one measured."""
    table = instruments(count)
    symbols = frozenset(table)
    engine = Engine(table)
    setup, _ = lines(count, accounts, 0)
    names = sorted(table)
    # every mark 40% down: the longs past their bankruptcy prices (deficits on the curves)
    crash = [mark_line(T0 + 3, s, price_of(k) * 0.6) for k, s in enumerate(names)]
    for raw in [*setup, *crash]:
        engine.apply(decode_line(raw, symbols))
    # out of the collector's walks, as the long-running commands' state is (a full
    # collection of the setup's objects inside the timing would outweigh the projections)
    gc.collect()
    gc.freeze()
    fund = next(iter(engine.fund_symbols))
    digest = hashlib.sha256()
    ts = T0 + 10
    engine.projection(fund, ts)  # the first: every answer asked once
    began = time.perf_counter()
    for _ in range(asks):
        digest.update(repr(engine.projection(fund, ts)).encode())
    same_ms = (time.perf_counter() - began) / asks * 1e3
    moved_s = 0.0
    for k in range(asks):
        place = k % len(names)  # price_of is by the place in the sorted names
        sym = names[place]
        price = price_of(place) * (0.6 + 0.001 * (k + 1))
        engine.apply(decode_line(mark_line(ts + k, sym, price), symbols))
        began = time.perf_counter()
        projected = engine.projection(fund, ts + k)
        moved_s += time.perf_counter() - began
        digest.update(repr(projected).encode())
    return {"same_ms": same_ms, "moved_ms": moved_s / asks * 1e3, "sha": digest.hexdigest()[:16]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=160)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--asks", type=int, default=200)
    parser.add_argument("--against", type=Path, help="another checkout, run beside")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the tree measured (default: this)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.symbols, args.accounts, args.asks)))
        return
    argv = ["--symbols", str(args.symbols), "--accounts", str(args.accounts),
            "--asks", str(args.asks)]  # fmt: skip
    results = run_beside(__file__, argv, args.against, args.tree.resolve())
    print(f"{'tree':<10} {'same ms':>9} {'one mark ms':>12} {'sha':>17}")
    for name, r in results.items():
        print(f"{name:<10} {r['same_ms']:>9.2f} {r['moved_ms']:>12.2f} {r['sha']:>17}")
    if "against" in results:
        ours, theirs = results["this tree"], results["against"]
        same = "the same" if ours["sha"] == theirs["sha"] else "DIFFER"
        same_x, moved_x = theirs["same_ms"] / ours["same_ms"], theirs["moved_ms"] / ours["moved_ms"]
        print(f"speed-up: same {same_x:.2f}x, one mark {moved_x:.2f}x, projections {same}")


if __name__ == "__main__":
    main()
