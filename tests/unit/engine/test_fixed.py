from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.fixed import (
    SCALE,
    FixedPointError,
    div_ceil,
    div_floor,
    mul_ceil,
    mul_floor,
    ratio,
    to_decimal,
    to_float,
    to_raw,
    to_str,
)


def test_decimal_strings_convert_exactly():
    assert to_raw("0.1") == 10_000_000
    assert to_raw("-12.34567891") == -1_234_567_891
    assert to_raw("60000") == 60_000 * SCALE


def test_more_than_eight_decimals_is_refused_not_rounded():
    with pytest.raises(FixedPointError, match="more than 8 decimal places"):
        to_raw("0.000000001")


@pytest.mark.parametrize("bad", ["NaN", "inf", "-Infinity", "abc", ""])
def test_non_numbers_are_refused(bad):
    with pytest.raises(FixedPointError):
        to_raw(bad)


def test_rounding_directions_are_named():
    assert div_floor(-7, 2) == -4
    assert div_ceil(-7, 2) == -3
    assert div_ceil(7, 2) == 4
    # 1.5 * 0.00000001 = 1.5e-8 -> 1e-8 down, 2e-8 up
    assert mul_floor(to_raw("1.5"), 1) == 1
    assert mul_ceil(to_raw("1.5"), 1) == 2


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=8, allow_nan=False))
def test_round_trip_through_string(value: Decimal):
    raw = to_raw(value)
    assert to_decimal(raw) == value
    assert Decimal(to_str(raw)) == value


def reference_raw(text: str) -> int | None:
    """An independent reading of a decimal string: Python's Decimal at 200 digits of
    precision (no rounding at these lengths), the grammar checked character by character."""
    body = text[1:] if text.startswith("-") else text
    whole, dot, fraction = body.partition(".")
    plain = set(whole + fraction) <= set("0123456789") and (whole or fraction)
    if not plain or (dot and not fraction) or len(text) > 64:
        return None
    with localcontext() as ctx:
        ctx.prec = 200
        scaled = Decimal(text) * SCALE
    return int(scaled) if scaled == scaled.to_integral_value() else None


@given(st.text(alphabet="0123456789-.e+_ \u0660\u0661", max_size=70) | st.text(max_size=30))
def test_any_string_is_exact_or_refused(text: str):
    try:
        raw = to_raw(text)
    except FixedPointError:
        raw = None
    assert raw == reference_raw(text)


@given(st.decimals(allow_nan=True, allow_infinity=True))
def test_any_decimal_is_exact_or_refused(value: Decimal):
    try:
        raw = to_raw(value)
    except FixedPointError:
        return
    with localcontext() as ctx:
        ctx.prec = 200
        assert Decimal(raw) == value * SCALE


def test_ratio_rounds_once_above_2_53():
    # 37,088,017,594.93319391 quote (raw above 2**53, so not a double exactly): rounded to
    # a double first and then divided (what a compiled ``a / b`` of two ints did), the
    # last digit moves; the quotient rounded once (``Fraction``, exact) is ...9332
    raw = 3_708_801_759_493_319_391
    assert float(raw) / float(SCALE) == 37_088_017_594.93319  # two roundings
    assert float(Fraction(raw, SCALE)) == 37_088_017_594.9332  # one
    assert to_float(raw) == ratio(raw, SCALE) == 37_088_017_594.9332
    assert ratio(-raw, SCALE) == -37_088_017_594.9332


@given(st.integers(-(2**70), 2**70), st.integers(1, 2**64))
def test_ratio_is_the_correctly_rounded_quotient(numerator: int, denominator: int) -> None:
    assert ratio(numerator, denominator) == float(Fraction(numerator, denominator))
    assert ratio(numerator, -denominator) == float(Fraction(numerator, -denominator))
