"""Fixed-point arithmetic for money, prices and quantities.

Every ledger number inside the engine is an ``int`` counting units of ``10**-8``:
prices in quote currency (USDT), quantities in base units, money in quote currency.
Conversion happens once, at the boundary, from a decimal string (never from a float
multiplied by the scale). Every division names its rounding direction: requirements
and losses round up (``div_ceil``), equity and collateral round down (``div_floor``),
so the monitor errs towards warning.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import NewType

SCALE_DIGITS = 8
SCALE: int = 10**SCALE_DIGITS  # one unit is 1e-8 of a dollar, of a coin, or of a price tick

PriceRaw = NewType("PriceRaw", int)  # quote currency per base unit, scaled by SCALE
QtyRaw = NewType("QtyRaw", int)  # base units, scaled by SCALE; signed for positions
MoneyRaw = NewType("MoneyRaw", int)  # quote currency, scaled by SCALE
RateRaw = NewType("RateRaw", int)  # dimensionless ratio (0.005 = 0.5%), scaled by SCALE


class FixedPointError(ValueError):
    """A value cannot be represented exactly at the engine's scale."""


def div_floor(numerator: int, denominator: int) -> int:
    """Integer division rounded towards minus infinity."""
    return numerator // denominator


def div_ceil(numerator: int, denominator: int) -> int:
    """Integer division rounded towards plus infinity."""
    return -((-numerator) // denominator)


def mul_floor(a: int, b: int) -> int:
    """Product of two scaled values, rounded down to the scale."""
    return (a * b) // SCALE


def mul_ceil(a: int, b: int) -> int:
    """Product of two scaled values, rounded up to the scale."""
    return div_ceil(a * b, SCALE)


def to_raw(value: Decimal | str | int) -> int:
    """Exact conversion of a decimal value to scaled units; refuses to round."""
    try:
        dec = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation as exc:
        raise FixedPointError(f"not a decimal number: {value!r}") from exc
    if not dec.is_finite():
        raise FixedPointError(f"not a finite number: {value!r}")
    scaled = dec.scaleb(SCALE_DIGITS)
    if scaled != scaled.to_integral_value():
        raise FixedPointError(
            f"{value!r} has more than {SCALE_DIGITS} decimal places; the ledger is exact"
        )
    return int(scaled)


def to_decimal(raw: int) -> Decimal:
    """Scaled units back to an exact ``Decimal``."""
    return Decimal(raw).scaleb(-SCALE_DIGITS)


def to_str(raw: int) -> str:
    """Scaled units as a plain decimal string without exponent or trailing zeros."""
    sign = "-" if raw < 0 else ""
    whole, frac = divmod(abs(raw), SCALE)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{SCALE_DIGITS}d}".rstrip("0")


def to_float(raw: int) -> float:
    """Scaled units as a float: only for projections, sweeps and metrics."""
    return raw / SCALE
