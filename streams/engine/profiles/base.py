"""The venue-profile interface and the formulas several venues share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from streams.engine.fixed import SCALE, div_ceil

LIGHTS = 5  # rank indicator lights: 5 = first in the ADL queue
MAX_EFFECTIVE_LEVERAGE = 1e9  # equity <= 0: leverage is unbounded; keep scores finite


@dataclass(frozen=True, slots=True)
class RankInput:
    """What every venue's ranking formula needs, at one mark (floats: a projection)."""

    qty: float  # signed base units
    entry_price: float
    mark_price: float
    backing_equity: float  # equity that backs the position at this mark
    account_equity: float  # the whole account's equity (cross + isolated)
    isolated: bool = False

    @property
    def pnl_pct(self) -> float:
        """(mark value - entry value) / |entry value|."""
        entry_value = self.qty * self.entry_price
        return (self.qty * self.mark_price - entry_value) / abs(entry_value)

    def effective_leverage(self, equity: float) -> float:
        """|mark value| / equity; for the backing equity this is |MV| / (MV - bankrupt value)."""
        if equity <= 0:
            return MAX_EFFECTIVE_LEVERAGE
        return min(MAX_EFFECTIVE_LEVERAGE, abs(self.qty * self.mark_price) / equity)


def leveraged_pnl(pnl_pct: float, leverage: float) -> float:
    """BitMEX-family score: pnl% * leverage when in profit, pnl% / leverage otherwise."""
    return pnl_pct * leverage if pnl_pct > 0 else pnl_pct / leverage


class VenueProfile(Protocol):
    """A venue's ADL rules: ranking score, rank lights, execution price and fee."""

    @property
    def name(self) -> str:
        """Registry key, as written in the instruments file."""
        ...

    @property
    def adl_fee_rate(self) -> int:
        """Scaled fee rate charged to the deleveraged position."""
        ...

    def rank_score(self, row: RankInput) -> float:
        """Higher scores are deleveraged first."""
        ...

    def light(self, rank: int, count: int) -> int:
        """Rank light (1..5) of the position at 0-based ``rank`` among ``count``."""
        ...

    def adl_price(self, bankruptcy_price: int, mark_price: int) -> int:
        """Price at which the deleveraged counterparties are closed."""
        ...


class QuintileLights:
    """Lights by quintile within symbol and side: top 20% -> 5 lights, ..., last 20% -> 1."""

    def light(self, rank: int, count: int) -> int:
        return LIGHTS - (LIGHTS * rank) // max(count, 1)


class AtBankruptcyPrice:
    """Counterparties are closed at the bankrupt position's bankruptcy price."""

    def adl_price(self, bankruptcy_price: int, mark_price: int) -> int:
        return bankruptcy_price


def adl_fee(qty: int, price: int, rate: int) -> int:
    """Fee on an ADL close: |qty| * price * rate, rounded up."""
    return div_ceil(abs(qty) * price * rate, SCALE * SCALE)
