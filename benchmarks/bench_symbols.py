"""Cost of one event as the number of symbols sharing one insurance fund grows.

Hyperliquid's 10 October 2025 cascade moved 162 assets, all backed by one vault: every
event of any of them is followed by a fund check of the whole fund. This runs the same
number of accounts, positions and events over ``--symbols`` symbols of one fund (copies
of the bundled BTCUSDT's tiers, each its own name and price), through ``decode_line`` +
``Engine.apply`` as ``replay`` runs them, and prints microseconds per event for each
count beside the first (the baseline, same run): a fund check that looks only at the
symbols that moved keeps the ratio near 1.

The events: every account deposits and opens one position on a random symbol (setup,
not timed); then, timed, a mix of fills on random accounts (70%) and marks of random
symbols moving a random +-0.5% (30%), with the fund snapshotted now and then.
Prints; asserts nothing.

Usage: python benchmarks/bench_symbols.py [--symbols 5 40 160] [--accounts 20000]
       [--events 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from typing import Any

import orjson

from streams.cli import bundled
from streams.engine.decode import decode_line
from streams.engine.engine import Engine
from streams.engine.instruments import Instrument, load_instruments

T0 = 1_760_130_900_000
BTC = load_instruments(bundled("instruments.toml"))["BTCUSDT"]


def instruments(count: int) -> dict[str, Instrument]:
    names = [f"S{k:03d}USDT" for k in range(count)]
    return {name: dataclasses.replace(BTC, symbol=name) for name in names}


def price_of(k: int) -> float:
    return 10.0 * (1 + k % 17)  # a spread of prices, small enough for any tier


def lines(count: int, accounts: int, events: int, seed: int = 3) -> tuple[list[bytes], list[bytes]]:
    rng = random.Random(seed)
    names = sorted(instruments(count))
    marks = {name: price_of(k) for k, name in enumerate(names)}
    setup: list[dict[str, Any]] = [
        {"type": "insurance_fund", "ts": T0, "fund": BTC.fund, "balance": "100000"}
    ]
    setup += [{"type": "mark", "ts": T0, "symbol": s, "mark_price": f"{p:.4f}"}
              for s, p in marks.items()]  # fmt: skip
    held: dict[int, str] = {}
    for i in range(accounts):
        sym = held[i] = names[rng.randrange(count)]
        setup.append({"type": "balance", "event_id": f"d{i}", "ts": T0 + 1, "account": f"a{i}",
                      "amount": "1000", "reason": "deposit"})  # fmt: skip
        setup.append({"type": "fill", "fill_id": f"o{i}", "ts": T0 + 2, "account": f"a{i}",
                      "symbol": sym, "side": "buy" if i % 2 else "sell",
                      "qty": f"{2000 / marks[sym]:.4f}", "price": f"{marks[sym]:.4f}"})  # fmt: skip
    timed: list[dict[str, Any]] = []
    for n in range(events):
        ts = T0 + 1_000 + n
        if n % 1000 == 0:
            timed.append({"type": "insurance_fund", "ts": ts, "fund": BTC.fund,
                          "balance": "100000"})  # fmt: skip
        if rng.random() < 0.7:
            i = rng.randrange(accounts)
            sym = held[i]
            side = rng.choice(("buy", "sell"))
            timed.append({"type": "fill", "fill_id": f"t{n}", "ts": ts, "account": f"a{i}",
                          "symbol": sym, "side": side, "qty": f"{20 / marks[sym]:.4f}",
                          "price": f"{marks[sym]:.4f}"})  # fmt: skip
        else:
            sym = names[rng.randrange(count)]
            marks[sym] *= 1 + rng.uniform(-0.005, 0.005)
            timed.append({"type": "mark", "ts": ts, "symbol": sym,
                          "mark_price": f"{marks[sym]:.4f}"})  # fmt: skip
    return [orjson.dumps(e) for e in setup], [orjson.dumps(e) for e in timed]


def run(count: int, accounts: int, events: int) -> float:
    """Microseconds per timed event."""
    table = instruments(count)
    symbols = frozenset(table)
    engine = Engine(table)
    setup, timed = lines(count, accounts, events)
    for raw in setup:
        engine.apply(decode_line(raw, symbols))
    began = time.perf_counter()
    for raw in timed:
        engine.apply(decode_line(raw, symbols))
    return (time.perf_counter() - began) / len(timed) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[5, 40, 160])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    base: float | None = None
    for count in args.symbols:
        us = run(count, args.accounts, args.events)
        base = base or us
        print(f"{count:4d} symbols of one fund: {us:8.1f} us/event ({1e6 / us:8,.0f} events/s), "
              f"{us / base:5.2f}x the {args.symbols[0]}-symbol run", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
