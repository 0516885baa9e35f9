"""The venue-profile interface and the formulas several venues share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from streams.engine.fixed import SCALE, div_ceil

LIGHTS = 5  # rank indicator lights: 5 = first in the ADL queue
MAX_EFFECTIVE_LEVERAGE = 1e9  # equity <= 0: leverage is unbounded; keep scores finite


Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RankInput:
    """What every venue's ranking formula needs, at one mark (floats: a projection).

    Each field is either one number (one position) or an array (one entry per position,
    the same length for all): the formulas are written once, in numpy, for both.
    """

    qty: Floats | float  # signed base units
    entry_price: Floats | float
    mark_price: Floats | float
    backing_equity: Floats | float  # equity that backs the position at this mark
    account_equity: Floats | float  # the whole account's equity (cross + isolated)
    isolated: npt.NDArray[np.bool_] | bool = False

    @property
    def mark_value(self) -> Floats:
        return np.asarray(self.qty, dtype=np.float64) * self.mark_price

    @property
    def pnl_pct(self) -> Floats:
        """(mark value - entry value) / |entry value|."""
        entry_value = np.asarray(self.qty, dtype=np.float64) * self.entry_price
        return (self.mark_value - entry_value) / np.abs(entry_value)

    def effective_leverage(self, equity: Floats | float) -> Floats:
        """|mark value| / equity; for the backing equity this is |MV| / (MV - bankrupt value).
        Equity <= 0 (under water) counts as the largest leverage."""
        equity = np.asarray(equity, dtype=np.float64)
        value = np.abs(self.mark_value)
        leverage: Floats = np.full(np.broadcast(value, equity).shape, MAX_EFFECTIVE_LEVERAGE)
        np.divide(value, equity, out=leverage, where=equity > 0)
        capped: Floats = np.minimum(leverage, MAX_EFFECTIVE_LEVERAGE)
        return capped


def leveraged_pnl(pnl_pct: Floats, leverage: Floats) -> Floats:
    """BitMEX-family score: pnl% * leverage when in profit, pnl% / leverage otherwise."""
    score: Floats = np.where(pnl_pct > 0, pnl_pct * leverage, pnl_pct / leverage)
    return score


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

    @property
    def adl_on_negative_value(self) -> bool:
        """When ADL starts. False: when the insurance fund cannot cover the projected loss
        (the stage rule of ``engine.watch``). True: as soon as a position's backing value
        is below zero (an account's, cross; the position's, isolated), whatever the fund:
        the venue's vault takes liquidations, ADL covers what is left negative."""
        ...

    def rank_score(self, row: RankInput) -> Floats:
        """Higher scores are deleveraged first (one score per entry of ``row``)."""
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
