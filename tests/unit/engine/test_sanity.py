"""Market-data sanity (engine.sanity): the bands at their edges, by hand."""

from __future__ import annotations

import pytest

from streams.engine.engine import Engine
from streams.engine.sanity import ImplausibleEvent
from streams.pipeline.metrics import dead_letter_reason
from tests.helpers import bundled_instruments, ev, fund, mark, raw

DAY_MS = 86_400_000


def fresh() -> Engine:
    engine = Engine(bundled_instruments())
    engine.apply(mark("BTCUSDT", "60000", ts=1_000))
    return engine


def test_a_mark_off_its_own_index_by_more_than_20_percent_is_refused() -> None:
    engine = fresh()
    # 60,000 against an index of 50,000: +20.0%, on the band: accepted
    engine.apply(ev("mark", symbol="BTCUSDT", ts=2_000, mark_price="60000", index_price="50000"))
    # 60,000.01: 1,000,001 / 5,000,000 > 20%: refused, the mark stays
    with pytest.raises(ImplausibleEvent, match="index price 50000"):
        engine.apply(
            ev("mark", symbol="BTCUSDT", ts=3_000, mark_price="60000.01", index_price="50000")
        )
    assert engine.marks["BTCUSDT"] == raw("60000")


def test_a_jump_is_held_until_a_second_mark_confirms_it() -> None:
    engine = fresh()
    # +50% exactly (90,000 from 60,000) is inside the band
    engine.apply(mark("BTCUSDT", "90000", ts=2_000))
    assert engine.marks["BTCUSDT"] == raw("90000")
    # 135,000.01 is +50.00001%: held (a dead letter), the mark stays 90,000
    with pytest.raises(ImplausibleEvent, match="held until 1 more mark"):
        engine.apply(mark("BTCUSDT", "135000.01", ts=3_000))
    assert engine.marks["BTCUSDT"] == raw("90000")
    # the next mark agrees with the held one (within 50% of it): the market moved
    engine.apply(mark("BTCUSDT", "140000", ts=4_000))
    assert engine.marks["BTCUSDT"] == raw("140000")


def test_a_fat_finger_is_not_confirmed_by_the_marks_after_it() -> None:
    engine = fresh()
    with pytest.raises(ImplausibleEvent):
        engine.apply(mark("BTCUSDT", "600000", ts=2_000))
    engine.apply(mark("BTCUSDT", "60010", ts=3_000))  # back in the band: applied, hold dropped
    with pytest.raises(ImplausibleEvent, match="held until 1 more"):  # counting starts over
        engine.apply(mark("BTCUSDT", "600000", ts=4_000))
    assert engine.marks["BTCUSDT"] == raw("60010")


def test_a_negative_fund_snapshot_is_refused() -> None:
    engine = fresh()
    engine.apply(fund("0", ts=2_000))
    with pytest.raises(ImplausibleEvent, match=r"insurance fund of -0\.00000001"):
        engine.apply(fund("-0.00000001", ts=3_000))


def test_an_event_a_day_ahead_of_the_stream_is_refused() -> None:
    engine = fresh()  # the stream's clock: 1,000 ms
    engine.apply(mark("ETHUSDT", "3000", ts=1_000 + DAY_MS))  # exactly a day: accepted
    with pytest.raises(ImplausibleEvent, match="ahead of the stream's clock"):
        engine.apply(mark("ETHUSDT", "3000", ts=1_000 + 2 * DAY_MS + 1))
    # a mark dated 2100 no longer makes every later mark stale
    with pytest.raises(ImplausibleEvent):
        engine.apply(mark("BTCUSDT", "60000", ts=4_102_444_800_000))
    engine.apply(mark("BTCUSDT", "60001", ts=5_000))
    assert engine.marks["BTCUSDT"] == raw("60001")


def test_the_first_event_sets_the_clock() -> None:
    engine = Engine(bundled_instruments())
    engine.apply(mark("BTCUSDT", "60000", ts=1_760_129_400_000))  # no clock yet: accepted


def test_implausible_dead_letters_have_their_own_reason() -> None:
    error = ImplausibleEvent("mark_price", "+900.0% from the last mark")
    assert dead_letter_reason(error.field, str(error)) == "implausible"
    assert dead_letter_reason("mark_price", "mark_price: not a plain decimal") == "invalid_field"
