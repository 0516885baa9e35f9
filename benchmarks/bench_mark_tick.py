"""Mark tick and fund ladder: the indexed engine against a naive recompute, same positions.

For n open positions on one symbol (half long, half short, a fifth isolated, leverage
2-100x), it times

- a mark tick through ``Engine.apply`` (threshold index + fund stage check), against a
  naive tick that re-evaluates every account holding the symbol;
- a full fund projection (18-point shock ladder + ADL distance on both sides), against a
  naive ladder that sums every position's deficit at every shocked price.

Both run in the same process on the same positions, so the ratio is what to read; the
absolute figures depend on this shared machine. Usage:

    python benchmarks/bench_mark_tick.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from streams.cli import bundled
from streams.engine.account import AccountState, Position
from streams.engine.config import DEFAULT_SHOCKS, EngineConfig
from streams.engine.engine import Engine
from streams.engine.events import InsuranceFund, MarginMode, Mark
from streams.engine.fixed import SCALE, MoneyRaw, PriceRaw
from streams.engine.instruments import load_instruments
from streams.engine.risk import evaluate

SYMBOL = "BTCUSDT"
MARK = 60_000 * SCALE


def positions(n: int, seed: int = 1) -> list[AccountState]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        qty = int(rng.paretovariate(1.5) * 0.01 * SCALE) * (1 if i % 2 else -1)
        entry = int(MARK * (1 + rng.gauss(0, 0.02)))
        leverage = min(100.0, 2 * rng.paretovariate(1.1))
        value = abs(qty) * entry // SCALE
        margin = int(value / leverage)
        if rng.random() < 0.2:
            pos = Position(SYMBOL, qty, entry, MarginMode.ISOLATED, margin)
            wallet = margin
        else:
            pos = Position(SYMBOL, qty, entry, MarginMode.CROSS)
            wallet = margin
        out.append(AccountState(f"acct-{i:07d}", wallet_balance=wallet, positions=(pos,)))
    return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def bench(n: int, ticks: int, naive_ticks: int) -> dict[str, float]:
    instruments = load_instruments(bundled("instruments.toml"))
    config = EngineConfig(projection_interval_ms=10**12, rank_refresh_ms=10**12)
    engine = Engine(instruments, config)
    engine.apply(InsuranceFund(0, "USDT-M", MoneyRaw(50_000_000 * SCALE)))
    engine.apply(Mark(SYMBOL, 0, PriceRaw(MARK), None))
    states = positions(n)
    t0 = time.perf_counter()
    engine.restore(states)
    load_s = time.perf_counter() - t0
    rng = random.Random(2)
    price = MARK
    ts = 1

    def indexed_tick() -> None:
        nonlocal price, ts
        price = int(price * (1 + rng.gauss(0, 0.0005)))
        ts += 100
        engine.apply(Mark(SYMBOL, ts, PriceRaw(price), None))

    def naive_tick() -> None:
        nonlocal price
        price = int(price * (1 + rng.gauss(0, 0.0005)))
        marks = {SYMBOL: price}
        for state in states:
            evaluate(state, marks, instruments)

    longs = [
        (p.bankruptcy_price, p.qty)
        for r in engine.risks.values()
        for p in r.positions
        if p.bankruptcy_price is not None
    ]

    def naive_ladder() -> None:
        for shock in DEFAULT_SHOCKS:
            p = int(price * (1 + shock))
            sum(max(0, q * (b - p)) for b, q in longs) // SCALE

    reevaluations = engine.stats.reevaluations
    tick_s = timed(indexed_tick, ticks)
    touched = (engine.stats.reevaluations - reevaluations) / ticks
    naive_tick_s = timed(naive_tick, naive_ticks)
    ladder_s = timed(lambda: engine.projection("USDT-M", ts), 5)
    naive_ladder_s = timed(naive_ladder, 1 if n >= 1_000_000 else 3)
    return {
        "n": n,
        "load_s": load_s,
        "tick_us": tick_s * 1e6,
        "touched_per_tick": touched,
        "naive_tick_us": naive_tick_s * 1e6,
        "ladder_us": ladder_s * 1e6,
        "naive_ladder_us": naive_ladder_s * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--ticks", type=int, default=300)
    args = parser.parse_args()
    print(
        f"{'positions':>10} {'load s':>8} {'tick us':>9} {'touched':>8} {'naive us':>12}"
        f" {'ratio':>8} {'ladder us':>10} {'naive us':>12} {'ratio':>8}"
    )
    for n in args.sizes:
        r = bench(n, args.ticks, naive_ticks=1 if n >= 1_000_000 else 3)
        print(
            f"{n:>10,} {r['load_s']:>8.1f} {r['tick_us']:>9.0f} {r['touched_per_tick']:>8.1f}"
            f" {r['naive_tick_us']:>12,.0f} {r['naive_tick_us'] / r['tick_us']:>7.0f}x"
            f" {r['ladder_us']:>10,.0f} {r['naive_ladder_us']:>12,.0f}"
            f" {r['naive_ladder_us'] / r['ladder_us']:>7.0f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
