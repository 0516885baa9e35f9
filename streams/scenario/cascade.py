"""A small, seeded liquidation-cascade scenario: the bundled example for ``replay``.

Every trade is between two accounts (open interest stays zero-sum); leverage is
heavy-tailed (Pareto); a quarter of positions are isolated. Prices crash (BTC -15%,
ETH -25%, SOL -35% over seven minutes) and rebound partially; the order book thins as
the crash deepens; the insurance fund pays out as it goes. A few malformed lines and a
duplicate fill show the dead-letter path. Run ``python -m streams.scenario.cascade``
to regenerate ``streams/data/cascade.jsonl`` (same seed, same bytes).
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import orjson

from streams.pipeline.sequencer import canonical_key

START_PRICES = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "SOLUSDT": 150.0}
CRASH_DEPTH = {"BTCUSDT": 0.15, "ETHUSDT": 0.25, "SOLUSDT": 0.35}
PRICE_DP = {"BTCUSDT": 1, "ETHUSDT": 2, "SOLUSDT": 3}
QTY_DP = {"BTCUSDT": 4, "ETHUSDT": 3, "SOLUSDT": 2}
FUND = "USDT-M"


@dataclass(frozen=True, slots=True)
class CascadeSpec:
    seed: int = 7
    accounts: int = 400
    start_ms: int = 1_760_054_400_000  # 2025-10-10 00:00 UTC
    minutes: int = 20
    crash_start_min: float = 5.0
    crash_minutes: float = 7.0
    rebound: float = 0.4  # share of the fall recovered by the end
    mark_interval_ms: int = 1_000
    fund_balance: float = 150_000.0


def _fmt(value: float, dp: int) -> str:
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-dp), ROUND_HALF_EVEN))


def price_path(spec: CascadeSpec, symbol: str, t_min: float) -> float:
    """Start price times a smooth fall, then a partial rebound; no noise (seeded elsewhere)."""
    depth = CRASH_DEPTH[symbol]
    start = START_PRICES[symbol]
    x = (t_min - spec.crash_start_min) / spec.crash_minutes
    if x <= 0:
        return start
    fall = depth * (0.5 - 0.5 * math.cos(math.pi * min(x, 1.0)))
    if x > 1:
        y = min(
            1.0,
            (x - 1)
            * spec.crash_minutes
            / (spec.minutes - spec.crash_start_min - spec.crash_minutes),
        )
        fall *= 1 - spec.rebound * y
    return start * (1 - fall)


def _events(spec: CascadeSpec) -> Iterator[dict[str, Any]]:
    rng = random.Random(spec.seed)
    t = spec.start_ms
    yield {"type": "insurance_fund", "ts": t, "fund": FUND, "balance": _fmt(spec.fund_balance, 2)}
    names = [f"acct-{i:05d}" for i in range(spec.accounts)]
    wallets = {}
    for i, name in enumerate(names):
        wallet = round(min(250_000.0, 500 * rng.paretovariate(1.3)), 2)
        wallets[name] = wallet
        yield {
            "type": "balance",
            "event_id": f"dep-{i}",
            "ts": t,
            "account": name,
            "amount": _fmt(wallet, 2),
            "reason": "deposit",
        }
        if rng.random() < 0.25:
            symbol = rng.choice(list(START_PRICES))
            max_leverage = min(100, max(2, round(2 * rng.paretovariate(1.1))))
            yield {
                "type": "position_config",
                "ts": t,
                "account": name,
                "symbol": symbol,
                "margin_mode": "isolated",
                "leverage": max_leverage,
            }
    for symbol in START_PRICES:
        yield {
            "type": "mark",
            "ts": t,
            "symbol": symbol,
            "mark_price": _fmt(START_PRICES[symbol], PRICE_DP[symbol]),
        }
    # opening trades: each between a buyer and a seller, sized by the buyer's leverage
    fill_no = 0
    for _ in range(spec.accounts):
        buyer, seller = rng.sample(names, 2)
        symbol = rng.choices(list(START_PRICES), weights=(5, 3, 2))[0]
        price = START_PRICES[symbol] * (1 + rng.uniform(-0.003, 0.003))
        leverage = min(60.0, 1.5 * rng.paretovariate(1.2))
        notional = min(wallets[buyer], wallets[seller]) * leverage * rng.uniform(0.3, 0.9)
        qty = notional / price
        if float(_fmt(qty, QTY_DP[symbol])) <= 0:
            continue
        if rng.random() < 0.5:
            buyer, seller = seller, buyer
        t += rng.randint(1, 50)
        for account, side, liq in ((buyer, "buy", "taker"), (seller, "sell", "maker")):
            fill_no += 1
            fee = notional * (0.0005 if liq == "taker" else 0.0002)
            yield {
                "type": "fill",
                "fill_id": f"f-{fill_no}",
                "ts": t,
                "account": account,
                "symbol": symbol,
                "side": side,
                "qty": _fmt(qty, QTY_DP[symbol]),
                "price": _fmt(price, PRICE_DP[symbol]),
                "fee": _fmt(fee, 4),
                "liquidity": liq,
                "kind": "trade",
            }
    yield {
        "type": "fill",
        "fill_id": "f-1",
        "ts": t,
        "account": names[0],
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": "1",
        "price": "1",
        "fee": "0",
    }  # duplicate id: ignored
    yield {"type": "mark", "ts": t, "symbol": "BTCUSDT", "mark_price": "NaN"}  # bad
    yield {"type": "mark", "ts": t, "symbol": "DOGEUSDT", "mark_price": "0.2"}  # unknown
    yield {
        "type": "fill",
        "fill_id": "bad-qty",
        "ts": t,
        "account": names[1],
        "symbol": "ETHUSDT",
        "side": "sell",
        "qty": "-3",
        "price": "3000",
    }  # bad
    # the market: marks every interval, depth every 5 s, fund every 10 s
    steps = spec.minutes * 60_000 // spec.mark_interval_ms
    for step in range(1, steps + 1):
        ts = spec.start_ms + 60_000 + step * spec.mark_interval_ms
        t_min = step * spec.mark_interval_ms / 60_000
        stress = 0.0
        for symbol in START_PRICES:
            noise = 1 + rng.gauss(0, 0.0004)
            mark = price_path(spec, symbol, t_min) * noise
            stress = max(stress, 1 - price_path(spec, symbol, t_min) / START_PRICES[symbol])
            yield {
                "type": "mark",
                "ts": ts,
                "symbol": symbol,
                "mark_price": _fmt(mark, PRICE_DP[symbol]),
                "index_price": _fmt(mark * (1 + rng.gauss(0, 0.0002)), PRICE_DP[symbol]),
            }
            if step % 5 == 0:
                yield _depth(symbol, mark, ts, stress / CRASH_DEPTH[symbol], rng)
        if step % 10 == 0:
            paid = spec.fund_balance * 0.6 * min(1.0, stress / 0.35) ** 1.5
            yield {
                "type": "insurance_fund",
                "ts": ts,
                "fund": FUND,
                "balance": _fmt(spec.fund_balance - paid, 2),
            }


def _depth(symbol: str, mark: float, ts: int, stress: float, rng: random.Random) -> dict[str, Any]:
    """Ten levels a side, 5 bp apart in calm, 40 bp apart and 20x thinner at the bottom."""
    spacing = 0.0005 + 0.0035 * stress
    base_notional = 400_000 * (1 - 0.95 * stress)
    bids, asks = [], []
    for i in range(1, 11):
        size = base_notional * (0.5 + rng.random()) / mark
        bids.append([_fmt(mark * (1 - spacing * i), PRICE_DP[symbol]), _fmt(size, QTY_DP[symbol])])
        asks.append([_fmt(mark * (1 + spacing * i), PRICE_DP[symbol]), _fmt(size, QTY_DP[symbol])])
    return {"type": "depth", "ts": ts, "symbol": symbol, "bids": bids, "asks": asks}


def write(spec: CascadeSpec, path: Path) -> int:
    """Write the scenario in canonical order (``streams.pipeline.sequencer``), so that
    ``replay`` of the file and the streaming worker apply the events alike."""
    events = sorted(_events(spec), key=canonical_key)  # stable: ties keep generation order
    with path.open("wb") as out:
        for event in events:
            out.write(orjson.dumps(event) + b"\n")
    return len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent.parent / "data" / "cascade.jsonl"
    )
    parser.add_argument("--seed", type=int, default=CascadeSpec().seed)
    parser.add_argument("--accounts", type=int, default=CascadeSpec().accounts)
    args = parser.parse_args()
    n = write(CascadeSpec(seed=args.seed, accounts=args.accounts), args.out)
    print(f"wrote {n} events to {args.out}")


if __name__ == "__main__":
    main()
