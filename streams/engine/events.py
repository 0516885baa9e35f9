"""Input events: immutable values, already validated and converted to fixed point.

``decode.py`` builds them from JSON objects; the reducer consumes them. Times are
milliseconds since the epoch, carried in the event (the engine has no clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.engine.fixed import MoneyRaw, PriceRaw, QtyRaw


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class FillKind(StrEnum):
    TRADE = "trade"
    LIQUIDATION = "liquidation"
    ADL = "adl"


class MarginMode(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"


class BalanceReason(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    FUNDING = "funding"
    TRANSFER = "transfer"
    FEE = "fee"
    REBATE = "rebate"


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str
    ts_ms: int
    account: str
    symbol: str
    side: Side
    qty: QtyRaw  # > 0
    price: PriceRaw  # > 0
    fee: MoneyRaw  # paid (+) or rebate (-), quote currency
    liquidity: str | None
    kind: FillKind

    def __init__(
        self,
        fill_id: str,
        ts_ms: int,
        account: str,
        symbol: str,
        side: Side,
        qty: QtyRaw,
        price: PriceRaw,
        fee: MoneyRaw,
        liquidity: str | None,
        kind: FillKind,
    ) -> None:  # written out: see signals.LadderPoint (one per fill)
        object.__setattr__(self, "fill_id", fill_id)
        object.__setattr__(self, "ts_ms", ts_ms)
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "qty", qty)
        object.__setattr__(self, "price", price)
        object.__setattr__(self, "fee", fee)
        object.__setattr__(self, "liquidity", liquidity)
        object.__setattr__(self, "kind", kind)

    @property
    def signed_qty(self) -> int:
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True, slots=True)
class Mark:
    symbol: str
    ts_ms: int
    mark_price: PriceRaw
    index_price: PriceRaw | None

    def __init__(
        self, symbol: str, ts_ms: int, mark_price: PriceRaw, index_price: PriceRaw | None
    ) -> None:  # written out: see signals.LadderPoint (one per mark)
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "ts_ms", ts_ms)
        object.__setattr__(self, "mark_price", mark_price)
        object.__setattr__(self, "index_price", index_price)


@dataclass(frozen=True, slots=True)
class Balance:
    event_id: str
    ts_ms: int
    account: str
    amount: MoneyRaw  # signed
    reason: BalanceReason
    currency: str | None = None  # the wallet's currency; None: USDT (``engine.inverse``)


@dataclass(frozen=True, slots=True)
class PositionConfig:
    ts_ms: int
    account: str
    symbol: str
    margin_mode: MarginMode
    leverage: int  # scaled rate (1x = SCALE)


@dataclass(frozen=True, slots=True)
class IsolatedMargin:
    event_id: str
    ts_ms: int
    account: str
    symbol: str
    amount: MoneyRaw  # signed: + adds margin to the position, - removes it


@dataclass(frozen=True, slots=True)
class InsuranceFund:
    ts_ms: int
    fund: str
    balance: MoneyRaw  # absolute snapshot
    # optional: the pool's cumulative PnL from one of its symbols, as the venue books it
    # (a drawdown rule's input, ``engine.drawdown``); both or neither
    symbol: str | None = None
    symbol_pnl: MoneyRaw | None = None


@dataclass(frozen=True, slots=True)
class Depth:
    ts_ms: int
    symbol: str
    bids: tuple[tuple[PriceRaw, QtyRaw], ...]  # best (highest) first
    asks: tuple[tuple[PriceRaw, QtyRaw], ...]  # best (lowest) first


Event = Fill | Mark | Balance | PositionConfig | IsolatedMargin | InsuranceFund | Depth
