"""The venue-profile interface and the formulas several venues share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from streams.engine.drawdown import DrawdownRule
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
    # the wallet under the backing equity: the account's cross wallet, or an isolated
    # position's margin (so backing - wallet is the unrealized PnL it holds); and the
    # maintenance it backs: the account's cross maintenance, or the position's own, at
    # this mark. Only Binance's formula reads them (None: not given)
    wallet: Floats | float | None = None
    maintenance: Floats | float | None = None

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


INT64_SAFE = 2**62  # below, sums of raw quantities stay exact in int64


def exact_int_dtype(largest: float) -> Any:
    """The dtype an integer computation stays exact in when no value passes ``largest``:
    int64 below ``INT64_SAFE``, else Python ints (object)."""
    return np.int64 if largest < INT64_SAFE else object


def queue_reaches(sizes: npt.NDArray[np.int64], by_quantity: bool) -> tuple[npt.NDArray[Any], int]:
    """Each position's reach in a queue (``sizes`` in queue order: |qty|, raw units) and
    the queue's total, for ``VenueProfile.light``: places 1..n of n, or cumulative
    quantities of the total (int64 while exact, else Python ints)."""
    if not by_quantity:
        return np.arange(1, len(sizes) + 1, dtype=np.int64), len(sizes)
    # past int64 at 1e8 raw per unit: ~4.6e10 coins of a meme token on a side
    reach = np.cumsum(sizes.astype(exact_int_dtype(float(sizes.sum(dtype=np.float64)))))
    return reach, int(reach[-1]) if len(reach) else 0


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

    @property
    def drawdown_rule(self) -> DrawdownRule | None:
        """A second trigger beside the fund's exhaustion, when the venue has one: ADL
        for a symbol whose loss draws its pool down past a ratio (Bybit's "contract PnL
        drawdown ADL", ``engine.drawdown``). An instruments file's ``[funds.NAME]`` table
        may state its parameters per pool."""
        ...

    @property
    def maintenance_base(self) -> str:
        """What the maintenance margin rate applies to: "mark" (|q| x mark price, the
        liquidation-price convention of Binance, OKX and Hyperliquid) or "entry" (|q| x
        entry price: Bybit's and BitMEX's published liquidation prices). An instruments
        file may state another per symbol."""
        ...

    @property
    def reads_maintenance(self) -> bool:
        """Whether ``rank_score`` reads ``RankInput.maintenance`` (a ranking then works
        out each position's backed maintenance at the current marks)."""
        ...

    def rank_score(self, row: RankInput) -> Floats:
        """Higher scores are deleveraged first (one score per entry of ``row``)."""
        ...

    @property
    def light_by_quantity(self) -> bool:
        """What a light measures a place in the queue by: False, positions (each counts
        1); True, quantity (each counts its size, raw units)."""
        ...

    def light(self, reach: int, total: int) -> int:
        """Rank light (1..5, 5 = first in the queue) of a position whose ``reach`` (the
        weight of the queue from its top through this position, inclusive: positions
        or quantity, ``light_by_quantity``) is out of ``total``. Elementwise on arrays."""
        ...

    def venue_indicator(self, light: int) -> int | None:
        """What the venue shows its trader for ``light`` (its own scale; ``None``: the
        venue publishes no indicator)."""
        ...

    def adl_price(self, bankruptcy_price: int, mark_price: int) -> int:
        """Price at which the deleveraged counterparties are closed."""
        ...


class QuintileLights:
    """Lights by quintile of positions within symbol and side: the first 20% of the
    queue's positions -> 5 lights, ..., the last 20% -> 1; the venue shows 1..5 lit::

        light = 5 - floor(5 * (place - 1) / count)     (place: 1 = first in the queue)
    """

    light_by_quantity = False

    def light(self, reach: int, total: int) -> int:
        return LIGHTS - (LIGHTS * (reach - 1)) // max(total, 1)

    def venue_indicator(self, light: int) -> int | None:
        return light


class CumulativeQuantityLights(QuintileLights):
    """Lights by the queue's cumulative quantity (BitMEX, "Auto-Deleveraging Examples":
    the percentile of a position is the quantity from the top of the queue through it,
    as a share of the side's, rounded up to 20%; 20% -> 5 lights, ..., 100% -> 1)::

        light = 6 - ceil(5 * reach / total)     (reach, total: quantities)
    """

    light_by_quantity = True

    def light(self, reach: int, total: int) -> int:
        return LIGHTS + 1 - -(-LIGHTS * reach // max(total, 1))


class AtBankruptcyPrice:
    """Counterparties are closed at the bankrupt position's bankruptcy price."""

    def adl_price(self, bankruptcy_price: int, mark_price: int) -> int:
        return bankruptcy_price


def adl_fee(qty: int, price: int, rate: int) -> int:
    """Fee on an ADL close: |qty| * price * rate, rounded up."""
    return div_ceil(abs(qty) * price * rate, SCALE * SCALE)
