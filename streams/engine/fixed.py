"""Fixed-point arithmetic for money, prices and quantities.

Every ledger number inside the engine is an ``int`` counting units of ``10**-8``:
prices in quote currency (USDT), quantities in base units, money in quote currency.
Conversion happens once, at the boundary, from a decimal string (never from a float
multiplied by the scale). Every division names its rounding direction: requirements
and losses round up (``div_ceil``), equity and collateral round down (``div_floor``),
so the monitor errs towards warning.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Final, NewType

SCALE_DIGITS = 8
SCALE: int = 10**SCALE_DIGITS  # one unit is 1e-8 of a dollar, of a coin, or of a price tick

PriceRaw = NewType("PriceRaw", int)  # quote currency per base unit, scaled by SCALE
QtyRaw = NewType("QtyRaw", int)  # base units, scaled by SCALE; signed for positions
MoneyRaw = NewType("MoneyRaw", int)  # quote currency, scaled by SCALE
RateRaw = NewType("RateRaw", int)  # dimensionless ratio (0.005 = 0.5%), scaled by SCALE


class FixedPointError(ValueError):
    """A value cannot be represented exactly at the engine's scale."""


# The grammar of a decimal string: ASCII digits, an optional leading '-', an optional
# '.' with digits after it; no exponent, sign '+', '_', spaces or other scripts' digits
# (Python's int() and Decimal() take those). Digits past the 8th decimal must be zeros.
DECIMAL_STRING = re.compile(r"(-?)([0-9]*)(?:\.([0-9]+))?", re.ASCII)
MAX_DECIMAL_CHARS = 64  # longer strings are refused before they are parsed
_NOT_FINITE = frozenset({"nan", "snan", "inf", "infinity"})  # named in the error
# A Decimal (or float) of magnitude 10^30 or more is refused before it is scaled: no
# ledger value comes near (the decoder's bounds are far lower) and 1e999999 would
# otherwise be expanded to a million digits.
MAX_DECIMAL_EXPONENT = 30


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
    """Exact conversion of a decimal value to scaled units; refuses to round.

    A string must follow ``DECIMAL_STRING`` (at most ``MAX_DECIMAL_CHARS`` long) and is
    converted with integer arithmetic only; a ``Decimal`` is converted from its digits
    and exponent (never through a context that could round it)."""
    if isinstance(value, str):
        return _string_to_raw(value)
    if isinstance(value, bool):
        raise FixedPointError(f"not a decimal number: {value!r}")
    if isinstance(value, int):
        return value * SCALE
    if isinstance(value, Decimal):
        return _decimal_to_raw(value)
    raise FixedPointError(f"not a decimal number: {value!r}")


def _string_to_raw(text: str) -> int:
    if len(text) > MAX_DECIMAL_CHARS:
        raise FixedPointError(f"a decimal string of at most {MAX_DECIMAL_CHARS} characters, "
                              f"got {len(text)}: {text[:24]!r}...")  # fmt: skip
    # the common case without the regex: ASCII digits, at most 8 decimals ("123", "-0.5");
    # anything else (no digits, a lone '.', more decimals, other characters) is judged below
    whole, dot, fraction = text.partition(".")
    negative = whole[:1] == "-"
    if negative:
        whole = whole[1:]
    if (
        text.isascii()
        and (whole.isdigit() or (not whole and dot))
        and (fraction.isdigit() if dot else True)
        and len(fraction) <= SCALE_DIGITS
    ):
        raw = int(whole or "0") * SCALE + int(fraction.ljust(SCALE_DIGITS, "0"))
        return -raw if negative else raw
    match = DECIMAL_STRING.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        if text.lstrip("+-").lower() in _NOT_FINITE:
            raise FixedPointError(f"not a finite number: {text!r}")
        raise FixedPointError(f"not a plain decimal number (ASCII digits, '-', '.'): {text!r}")
    sign, whole, fraction = match.groups(default="")
    if len(fraction) > SCALE_DIGITS:
        if fraction[SCALE_DIGITS:].strip("0"):
            raise FixedPointError(
                f"{text!r} has more than {SCALE_DIGITS} decimal places; the ledger is exact"
            )
        fraction = fraction[:SCALE_DIGITS]
    raw = int(whole or "0") * SCALE + int(fraction.ljust(SCALE_DIGITS, "0"))
    return -raw if sign else raw


def _decimal_to_raw(value: Decimal) -> int:
    if not value.is_finite():
        raise FixedPointError(f"not a finite number: {value!r}")
    if value and value.adjusted() >= MAX_DECIMAL_EXPONENT:
        raise FixedPointError(f"magnitude 1e{MAX_DECIMAL_EXPONENT} or more: {value:.3e}")
    sign, digits, exponent = value.as_tuple()
    exponent = int(exponent)  # finite: an int ('n', 'N', 'F' only for NaN and infinity)
    if len(digits) > MAX_DECIMAL_CHARS:
        raise FixedPointError(f"more than {MAX_DECIMAL_CHARS} digits: {value:.3e}")
    coefficient = int("".join(map(str, digits)))
    shift = exponent + SCALE_DIGITS
    if shift >= 0:
        whole: int = coefficient * 10**shift
        return -whole if sign else whole
    # every digit past the 8th decimal (a short coefficient, a tiny exponent): 0 or refused
    raw, rest = (0, coefficient) if -shift > len(digits) else divmod(coefficient, 10**-shift)
    if rest:
        raise FixedPointError(
            f"{value!r} has more than {SCALE_DIGITS} decimal places; the ledger is exact"
        )
    return -raw if sign else raw


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


_EXACT_DOUBLE: Final = 2**53  # every int of at most this magnitude is a double exactly


def to_float(raw: int) -> float:
    """Scaled units as a float: only for projections, sweeps and metrics."""
    return ratio(raw, SCALE)


def ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator`` rounded once, as CPython divides two ints.

    Every int-by-int true division of the engine goes through here: compiled by mypyc
    (``tools/compile_engine.py``), ``a / b`` of two ints below 2**62 converts each to a
    double first, which rounds any above 2**53 (a wallet of 1e9 quote is 1e17 raw), and
    then divides: two roundings, and a wide account's rank score differed in its last
    digits from the interpreter's. Both within 2**53, each is an exact double and one
    division rounds once (the common case); else, typed ``Any``, the division is
    CPython's own."""
    if (
        -_EXACT_DOUBLE <= numerator <= _EXACT_DOUBLE
        and -_EXACT_DOUBLE <= denominator <= _EXACT_DOUBLE
    ):
        return numerator / denominator
    exact: Any = numerator
    return float(exact / denominator)
