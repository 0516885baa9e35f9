"""One block like Hyperliquid's at 21:16:04.83 UTC on 10 October 2025: 11,279
liquidations followed by 11,279 ADL fills at one timestamp (22,558 events).

Setup (not timed): ``--pairs`` pairs of accounts on BTCUSDT, each a 20x long against a
shorter-leveraged short of the same size, ``--bystanders`` healthy accounts on ETHUSDT
and SOLUSDT, a thin insurance fund. Then, timed through ``decode_line`` + ``Engine.apply``
as ``replay`` runs them:

1. the crash mark that puts every long past its bankruptcy price: the detections and
   the ADL decision (the ``triggered`` announcement with its plan);
2. the block: each bankrupt long closed by a liquidation fill and its counterparty short
   closed by an ADL fill, all at one timestamp.

Beside them, in the same run: orjson parsing the same lines (the floor). The issue's
target is the block applied and its decision made within 1 s. Prints; asserts nothing.

Usage: python benchmarks/bench_block.py [--pairs 11279] [--bystanders 20000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from streams.cli import bundled
from streams.engine.decode import decode_line
from streams.engine.engine import Engine
from streams.engine.instruments import load_instruments
from streams.engine.signals import AdlTriggered, BankruptcyDetected, LiquidationDetected

T0 = 1_760_130_964_000  # 21:16:04 UTC, 10 October 2025
INSTRUMENTS = load_instruments(bundled("instruments.toml"))


def line(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def setup_lines(pairs: int, bystanders: int) -> list[bytes]:
    out = [line({"type": "insurance_fund", "ts": T0, "fund": "USDT-M", "balance": "1000"})]
    for sym, price in (("BTCUSDT", "60000"), ("ETHUSDT", "3000"), ("SOLUSDT", "150")):
        out.append(line({"type": "mark", "ts": T0, "symbol": sym, "mark_price": price}))
    for i in range(pairs):
        for who, wallet in ((f"long-{i}", "300"), (f"short-{i}", "3000")):
            out.append(line({"type": "balance", "event_id": f"d-{who}", "ts": T0 + 1,
                             "account": who, "amount": wallet, "reason": "deposit"}))  # fmt: skip
        for who, side in ((f"long-{i}", "buy"), (f"short-{i}", "sell")):
            out.append(line({"type": "fill", "fill_id": f"o-{i}", "ts": T0 + 2, "account": who,
                             "symbol": "BTCUSDT", "side": side, "qty": "0.1",
                             "price": "60000"}))  # fmt: skip
    for j in range(bystanders):
        who = f"calm-{j}"
        sym, price, qty = (("ETHUSDT", "3000", "1"), ("SOLUSDT", "150", "10"))[j % 2]
        out.append(line({"type": "balance", "event_id": f"d-{who}", "ts": T0 + 1,
                         "account": who, "amount": "100000", "reason": "deposit"}))  # fmt: skip
        out.append(line({"type": "fill", "fill_id": f"c-{j}", "ts": T0 + 2, "account": who,
                         "symbol": sym, "side": "buy" if j % 4 < 2 else "sell", "qty": qty,
                         "price": price}))  # fmt: skip
    return out


def block_lines(pairs: int, price: str) -> list[bytes]:
    """Each long closed by the liquidation engine, then its short by ADL, at one time."""
    ts = T0 + 830
    out = [
        line({"type": "fill", "fill_id": f"liq-{i}", "ts": ts, "account": f"long-{i}",
              "symbol": "BTCUSDT", "side": "sell", "qty": "0.1", "price": price,
              "kind": "liquidation"})
        for i in range(pairs)
    ]  # fmt: skip
    out += [
        line({"type": "fill", "fill_id": f"adl-{i}", "ts": ts, "account": f"short-{i}",
              "symbol": "BTCUSDT", "side": "buy", "qty": "0.1", "price": price,
              "kind": "adl"})
        for i in range(pairs)
    ]  # fmt: skip
    return out


def apply_all(engine: Engine, lines: list[bytes]) -> tuple[float, list[Any]]:
    signals: list[Any] = []
    started = time.perf_counter()
    for raw in lines:
        signals.extend(engine.apply(decode_line(raw, INSTRUMENTS)))
    return time.perf_counter() - started, signals


def parse_s(lines: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in lines:
        orjson.loads(raw)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=11_279)
    parser.add_argument("--bystanders", type=int, default=20_000)
    args = parser.parse_args()
    engine = Engine(INSTRUMENTS)
    setup_s, _ = apply_all(engine, setup_lines(args.pairs, args.bystanders))
    positions = 2 * args.pairs + args.bystanders
    print(f"setup: {positions:,} open positions in {setup_s:.1f} s (not part of the figure)")
    # 20x longs from 60,000 go bankrupt below ~57,000: a mark at 56,000 takes them all
    crash = [line({"type": "mark", "ts": T0 + 800, "symbol": "BTCUSDT", "mark_price": "56000"})]
    tick_s, signals = apply_all(engine, crash)
    bankrupt = sum(isinstance(s, BankruptcyDetected) for s in signals)
    liquidatable = sum(isinstance(s, LiquidationDetected) for s in signals)
    decided = [s for s in signals if isinstance(s, AdlTriggered) and s.stage.value == "triggered"]
    plan = len(decided[0].plan) if decided else 0
    print(f"crash mark: {tick_s * 1000:,.0f} ms for {liquidatable:,} liquidations and "
          f"{bankrupt:,} bankruptcies detected, ADL decision {'made' if decided else 'NOT made'}"
          f" (plan of {plan:,} steps)")  # fmt: skip
    block = block_lines(args.pairs, "56000")
    block_s, block_signals = apply_all(engine, block)
    floor = parse_s(block)
    total = tick_s + block_s
    print(f"block: {len(block):,} events at one timestamp applied in {block_s:.2f} s "
          f"({len(block) / block_s:,.0f} events/s; {len(block_signals):,} signals) | orjson "
          f"parse alone {floor * 1000:.0f} ms ({len(block) / floor:,.0f} lines/s, "
          f"{block_s / floor:,.0f}x)")  # fmt: skip
    print(f"decision + block: {total:.2f} s (target: <= 1 s)")


if __name__ == "__main__":
    main()
