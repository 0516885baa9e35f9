"""Margin formulas for linear (USDT-margined) perpetuals, over fixed-point integers.

Notation: signed size ``q`` (+ long, - short), mark ``M``, entry ``E``, and the equity
backing the position ``Q`` (the account's cross equity, or an isolated position's
margin plus its unrealized PnL), all at the engine's ``SCALE``.

Formulas (DESIGN.md section 8; Binance "How to Calculate Liquidation Price of USDⓈ-M
Futures Contracts"):

- unrealized PnL      = q * (M - E)                                   (floor)
- notional            = |q| * M                                        (ceil)
- maintenance margin  = notional * mmr - maintenance_amount, tier by notional (ceil);
                      the notional at the mark, or at the entry price where the
                      instrument's ``maintenance_base`` is "entry" (Bybit, BitMEX)
- bankruptcy price    B = M - Q / q      (other marks held fixed)
- liquidation price   P solves Q + q*(P - M) = MM_other + |q|*P*mmr - cum, i.e.
                      P = (q*M + MM_other - cum - Q) / (q - |q|*mmr)
                      using the tier that holds |q|*P (Binance's note on tiers);
                      on the entry value the position's MM is fixed:
                      P = M + (MM_other + MM - Q) / q

Fee to close (Bybit; the instrument's ``closing_fee_rate`` r, 0 elsewhere): the venue
counts the fee of closing at the mark, r x |q| x M, against the margin (its position
margin holds it), so the position's PnL here is net of it, and a position's equity
moves by q x f per unit of its price: its *slope* f = 1 - r for a long, 1 + r for a
short (x SCALE: ``Instrument.slope``) puts q x f in place of q in every price solved::

    net unrealized PnL = q * (M - E) - r * |q| * M                     (floor, fee ceil)
    bankruptcy price   B = M - Q / (q f)
    liquidation price  P = M + (MM_other + MM - Q) / (q f)        (entry value)
                       P = (q f M + MM_other - cum - Q) / (q f - |q| mmr)

Bybit's examples (tests/unit/engine/test_inverse.py): cross, 0.5 BTC, 10,000 BTCUSD
long at 8,000, taker 0.075%: B = 10,000 x 1.00075 / 1.75 = 5,718.57.

Rounding is conservative: equity down, requirements up, and a long's thresholds
rounded up (a short's down) so that a threshold is reached no later than exactly. Where
the instrument has a tick, the thresholds *reported* are put on it the same way
(``on_tick``); the index keeps the exact ones (a threshold a tick off the exact flip
would let a crossing pass unseen).
"""

from __future__ import annotations

from streams.engine.fixed import SCALE, div_ceil, div_floor, mul_ceil
from streams.engine.instruments import Instrument

SCALE_SQUARED = SCALE * SCALE


def unrealized_pnl(qty: int, entry_price: int, mark_price: int) -> int:
    """q * (M - E), rounded down."""
    return div_floor(qty * (mark_price - entry_price), SCALE)


def closing_fee(qty: int, price: int, rate: int) -> int:
    """r * |q| * P, the fee to close at ``price``, rounded up (it is a charge)."""
    return div_ceil(rate * abs(qty) * price, SCALE_SQUARED)


def notional(qty: int, price: int) -> int:
    """|q| * P, rounded up (it drives requirements)."""
    return div_ceil(abs(qty) * price, SCALE)


def maintenance_margin(instrument: Instrument, notional_value: int) -> int:
    """notional * mmr - maintenance_amount with the bracket holding ``notional_value``."""
    if notional_value <= 0:
        return 0
    tier = instrument.tier_for(notional_value)
    return max(0, mul_ceil(notional_value, tier.mmr) - tier.maintenance_amount)


def position_maintenance(instrument: Instrument, qty: int, entry_price: int, value: int) -> int:
    """The position's maintenance margin: on ``value`` (its notional at the mark), or on
    its entry value where the instrument's maintenance base is the entry."""
    if instrument.maintenance_base == "entry":
        value = notional(qty, entry_price)
    return maintenance_margin(instrument, value)


def bankruptcy_price(
    qty: int, mark_price: int, backing_equity: int, slope: int = SCALE
) -> int | None:
    """B = M - Q/(q f); ``None`` when no price can exhaust the backing equity (a long with
    B <= 0). ``slope``: f x SCALE (``Instrument.slope``; SCALE: no fee to close).

    A short's B may be zero or negative: it is bankrupt at any price."""
    return bankruptcy_price_scaled(qty, mark_price, backing_equity * SCALE, slope)


def bankruptcy_price_scaled(
    qty: int, mark_price: int, scaled_equity: int, slope: int = SCALE
) -> int | None:
    """``bankruptcy_price`` with Q * SCALE given: an account's cross positions share one Q
    (an account on 162 symbols prices 162 of them at each of its fills)."""
    if slope != SCALE:  # Q*S / (q f / S): the same floors
        scaled_equity *= SCALE
        qty *= slope
    if qty > 0:
        price = mark_price - scaled_equity // qty  # long: round B up (``div_floor``)
        return price if price > 0 else None
    if qty < 0:
        # short: round B down. B <= 0 is kept: under water by more than the position's
        # value, bankrupt at every price, and the deficit index needs the full distance.
        return mark_price + scaled_equity // -qty
    return None


def bankruptcy_reach(qty: int, mark_price: int, low: int, high: int, slope: int = SCALE) -> int:
    """The bound R with: the position's bankruptcy price at cross equity Q lies where the
    fund reads (a long's at or above ``low``, a short's at or below ``high``) iff
    ``Q * SCALE < R``. With ``bankruptcy_price_scaled``'s floor division:

    - long:  B = M - floor(Q*S/q) >= max(low, 1)  iff  Q*S < q * (M + 1 - max(low, 1))
             (B must also be > 0: below that it is no price and not indexed);
    - short: B = M + floor(Q*S/|q|) <= high        iff  Q*S < |q| * (high - M + 1).

    With a slope f (fee to close) q is q f / S, and for an integer Q*S, Q*S < X / S iff
    Q*S < ceil(X / S). One comparison per account then covers every position whose Q
    alone moved."""
    long = qty > 0
    reach = qty * (mark_price + 1 - max(low, 1)) if long else -qty * (high - mark_price + 1)
    return reach if slope == SCALE else div_ceil(reach * slope, SCALE)


def threshold_price(
    instrument: Instrument,
    qty: int,
    mark_price: int,
    backing_equity: int,
    other_maintenance: int = 0,
    equity_weight: int = SCALE,
    fixed_maintenance: int | None = None,
    slope: int = SCALE,
) -> int | None:
    """Price at which ``equity_weight * equity`` equals maintenance margin, other marks fixed.

    ``equity_weight`` = 1 (``SCALE``) gives the liquidation price; the warning ratio gives
    the price at which maintenance / equity reaches that ratio. Solves, with w the weight::

        w * (Q + q*(P - M)) = MM_other + |q|*P*mmr - cum
        P = (w*q*M + MM_other - cum - w*Q) / (w*q - |q|*mmr)

    Tries each bracket and keeps the price whose notional lies in that bracket, since the
    rate at the threshold price, not at the mark, is the one that applies.

    ``fixed_maintenance``: the position's own maintenance where it does not move with the
    price (on the entry value): then ``P = (w*q*M + MM_other + MM - w*Q) / (w*q)``.

    ``slope``: f x SCALE (fee to close): q f / SCALE in place of q where it moves the
    equity, every term times SCALE to stay in integers.
    """
    if qty == 0:
        return None
    abs_qty = abs(qty)
    w = equity_weight
    # the equity's q and the terms beside it, scaled alike: (1, 1) with no fee to close
    sloped, unit = (qty, 1) if slope == SCALE else (qty * slope, SCALE)
    # the parts that do not depend on the bracket, once (an evaluation asks this twice
    # per position, and an account on 162 symbols has 162 of them)
    base = w * (sloped * mark_price - backing_equity * SCALE * unit)
    other = other_maintenance * SCALE_SQUARED * unit
    long = qty > 0
    if fixed_maintenance is not None:
        numerator = base + other + fixed_maintenance * SCALE_SQUARED * unit
        # long: round up, short: round down -> reached no later than the exact price
        price = div_ceil(numerator, w * sloped) if long else div_floor(numerator, w * sloped)
        return price if price > 0 else None
    for tier in instrument.tiers:
        numerator = base + other - tier.maintenance_amount * SCALE_SQUARED * unit
        denominator = w * sloped - abs_qty * tier.mmr * unit
        if denominator == 0:
            continue
        # long: round up, short: round down -> reached no later than the exact price
        price = div_ceil(numerator, denominator) if long else div_floor(numerator, denominator)
        if price > 0 and instrument.tier_for(notional(qty, price)) is tier:
            return price
    return None


def liquidation_price(
    instrument: Instrument,
    qty: int,
    mark_price: int,
    backing_equity: int,
    other_maintenance: int = 0,
    fixed_maintenance: int | None = None,
    slope: int = SCALE,
) -> int | None:
    """Price at which backing equity equals maintenance margin, other marks fixed."""
    return threshold_price(
        instrument,
        qty,
        mark_price,
        backing_equity,
        other_maintenance,
        fixed_maintenance=fixed_maintenance,
        slope=slope,
    )


def on_tick(price: int | None, tick: int, long: bool) -> int | None:
    """``price`` on the tick grid (``tick`` 0: as it is): a long's threshold rounded up,
    a short's down, so that the price shown is reached no later than the exact one."""
    return None if price is None else tick_price(price, tick, long)


def tick_price(price: int, tick: int, long: bool) -> int:
    """``on_tick`` for a price that is one."""
    if tick <= 0:
        return price
    return div_ceil(price, tick) * tick if long else div_floor(price, tick) * tick
