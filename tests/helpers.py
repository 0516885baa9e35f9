"""Builders shared by the tests. Numbers are written as decimal strings, as a venue would."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from streams.engine.decode import decode_event
from streams.engine.events import Event
from streams.engine.fixed import SCALE, to_raw
from streams.engine.instruments import Instrument, load_instruments
from streams.engine.instruments import parse_instruments as _parse

BUNDLED = "streams/data/instruments.toml"


def bundled_instruments() -> dict[str, Instrument]:
    return load_instruments(BUNDLED)


def raw(value: str | int) -> int:
    return to_raw(str(value))


def one_tier(
    mmr: str = "0.01", profile: str = "bybit", symbol: str = "XUSDT"
) -> dict[str, Instrument]:
    """A single-bracket instrument, for hand calculations."""
    return _parse(
        {
            "symbols": {
                symbol: {
                    "fund": "F",
                    "profile": profile,
                    "tiers": [
                        {
                            "max_notional": "1000000000",
                            "mmr": mmr,
                            "maintenance_amount": "0",
                            "max_leverage": 100,
                        }
                    ],
                }
            }
        }
    )


def ceil_raw(value: Fraction) -> int:
    """Exact value rounded up to the engine's 1e-8 grid."""
    scaled = value * SCALE
    return -((-scaled.numerator) // scaled.denominator)


def floor_raw(value: Fraction) -> int:
    scaled = value * SCALE
    return scaled.numerator // scaled.denominator


def F(value: str | int) -> Fraction:  # reads like a unit in formulas
    return Fraction(Decimal(str(value)))


def ev(event_type: str, **fields: Any) -> Event:
    return decode_event({"type": event_type, **fields})


def fill(
    fid: str,
    account: str,
    side: str,
    qty: str,
    price: str,
    symbol: str = "BTCUSDT",
    ts: int = 1,
    fee: str = "0",
    kind: str = "trade",
) -> Event:
    return ev(
        "fill",
        fill_id=fid,
        ts=ts,
        account=account,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=fee,
        kind=kind,
    )


def mark(symbol: str, price: str, ts: int) -> Event:
    return ev("mark", symbol=symbol, mark_price=price, ts=ts)


def deposit(eid: str, account: str, amount: str, ts: int = 0) -> Event:
    return ev("balance", event_id=eid, ts=ts, account=account, amount=amount, reason="deposit")


def isolated(account: str, symbol: str, leverage: str, ts: int = 0) -> Event:
    return ev(
        "position_config",
        ts=ts,
        account=account,
        symbol=symbol,
        margin_mode="isolated",
        leverage=leverage,
    )


def fund(balance: str, ts: int = 0, name: str = "USDT-M") -> Event:
    return ev("insurance_fund", ts=ts, fund=name, balance=balance)
