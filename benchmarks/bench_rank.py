"""Ranking one symbol's ADL queue: ``QueueTable.rank`` against the bare numpy floor.

For n open positions on one symbol (half long, half short, a fifth isolated, a quarter
of the accounts holding up to four positions on other symbols), it times

- ``QueueTable.rank``: equity carried to the mark (own and other symbols' moves), the
  venue's scores, one ``lexsort`` per side, the lights and their alerts;
- the floor beside it, in the same process on the same columns: numpy scores, one
  ``lexsort`` over (account, size, score) and a ``bincount`` of the lights; what any
  full ranking costs at least;
- the same table ranked by Bybit's formula (PnL% x leverage), which does not read the
  maintenance: Binance's over it is the cost of working out every backed position's
  bracket at the current marks (``engine.tier_columns``);
- lights given later (the partitioned path: ranked without lights, lit by ``light_at``
  once the desk's boundaries come): both sides' ``light_at`` alone. Run with another
  tree first on the path (``PYTHONPATH=/tmp/before python benchmarks/bench_rank.py``) for
  its figures beside these.

The ratio is what to read (this machine is shared). Usage:

    python benchmarks/bench_rank.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from functools import partial

import numpy as np
from bench_mark_tick import timed

from streams.cli import bundled
from streams.engine.fixed import SCALE
from streams.engine.instruments import load_instruments
from streams.engine.profiles import PROFILES, RankInput, queue_reaches
from streams.engine.queue import OtherPosition, QueueTable
from streams.engine.risk import Health, PositionRisk
from streams.engine.tier_columns import TierColumns

MARK = 60_000 * SCALE
BTC = load_instruments(bundled("instruments.toml"))["BTCUSDT"]
SYMBOLS = 160  # the Hyperliquid-scale universe: other positions point anywhere in it
TIERS = TierColumns([BTC] * SYMBOLS)  # BTC's ten brackets on every symbol


def table(n: int, seed: int = 1) -> QueueTable:
    rng = random.Random(seed)
    queue = QueueTable()
    for i in range(n):
        qty = max(1, int(rng.paretovariate(1.5) * 0.01 * SCALE)) * (1 if i % 2 else -1)
        entry = int(MARK * (1 + rng.gauss(0, 0.02)))
        backing = int(abs(qty) * entry // SCALE / min(100.0, 2 * rng.paretovariate(1.1)))
        maintenance = abs(qty) * entry // SCALE // 200  # 0.5% of the entry value
        pos = PositionRisk("BTCUSDT", qty, entry, MARK, 0, 0, maintenance, backing, None,
                           rng.random() < 0.2, Health.HEALTHY, BTC, 0, 0)  # fmt: skip
        others = [
            OtherPosition(rng.randrange(SYMBOLS), rng.uniform(-5, 5), MARK, rng.random() < 0.9)
            for _ in range(rng.randrange(1, 5) if rng.random() < 0.25 else 0)
        ]
        queue.put(f"acct-{i:07d}", pos, backing, others)
    return queue


def floor(n: int, seed: int = 2) -> Callable[[], object]:
    """numpy scores + lexsort + bincount over columns of n positions."""
    rng = np.random.default_rng(seed)
    qty = rng.pareto(1.5, n) * np.where(np.arange(n) % 2, 1.0, -1.0)
    entry = MARK / SCALE * (1 + rng.normal(0, 0.02, n))
    backing = np.abs(qty) * entry / 10
    names = np.array([f"acct-{i:07d}" for i in range(n)])
    abs_qty = (np.abs(qty) * SCALE).astype(np.int64)
    wallet = backing * 0.9
    maintenance = np.abs(qty) * (MARK / SCALE) * 0.004
    profile = PROFILES["binance"]

    def run() -> object:
        row = RankInput(qty, entry, MARK / SCALE, backing, backing, False, wallet, maintenance)
        scores = profile.rank_score(row)
        order = np.lexsort((names, -abs_qty, -scores))
        return np.bincount(5 - (5 * np.arange(n)) // n, minlength=6), order

    return run


def light_later(queue: QueueTable, rank: Callable[..., object]) -> Callable[[], object]:
    """Both sides of one ranking made without lights, lit by ``light_at``."""
    profile = PROFILES["binance"]
    rank(profile, light=False)
    rankings = [r for side in ("long", "short") if (r := queue.ranking(side)) is not None]

    def run() -> object:
        for ranking in rankings:
            reaches, total = queue_reaches(ranking.sizes, profile.light_by_quantity)
            queue.light_at(ranking, reaches, total, profile, symbol="BTCUSDT", ts_ms=0)
        return rankings

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    marks = np.full(SYMBOLS, MARK + MARK // 100, dtype=np.int64)  # every other symbol +1%
    print(f"{'positions':>10} {'rank ms':>9} {'floor ms':>9} {'ratio':>7} {'ns/position':>12}"
          f" {'bybit ms':>9} {'binance/bybit':>14} {'light later ms':>15}")  # fmt: skip
    mark = MARK - MARK // 50  # the symbol fell 2%
    for n in args.sizes:
        queue = table(n)
        at = partial(queue.rank, symbol="BTCUSDT", ts_ms=0, tiers=TIERS, symbol_index=0)
        rank_s = timed(partial(at, mark, PROFILES["binance"], True, marks), args.repeat)
        bybit_s = timed(partial(at, mark, PROFILES["bybit"], True, marks), args.repeat)
        floor_s = timed(floor(n), args.repeat)
        later_s = timed(light_later(queue, partial(at, mark, marks_by_index=marks)), args.repeat)
        print(
            f"{n:>10,} {rank_s * 1e3:>9.1f} {floor_s * 1e3:>9.1f} {rank_s / floor_s:>6.2f}x"
            f" {rank_s / n * 1e9:>12.0f} {bybit_s * 1e3:>9.1f} {rank_s / bybit_s:>13.2f}x"
            f" {later_s * 1e3:>15.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
