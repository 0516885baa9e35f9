"""The edges a rebuild can break, each pinned by a hand calculation: a notional exactly at a
bracket's upper edge, both sides of one trade sharing the venue's trade id, notional
rounding, health exactly at maintenance, and the shock ladder's own deficit at the mark."""

import pytest

from streams.engine.engine import Engine
from streams.engine.errors import ConfigError
from streams.engine.fund import index_curve, ladder
from streams.engine.index import DeficitIndex
from streams.engine.instruments import parse_instruments
from streams.engine.margin import maintenance_margin, notional
from streams.engine.risk import DEFAULT_WARNING_RATIO, Health, health_of
from tests.helpers import bundled_instruments, deposit, fill, raw

BTC = bundled_instruments()["BTCUSDT"]
U = raw("1")  # one dollar


def test_a_notional_exactly_at_a_brackets_edge_belongs_to_that_bracket():
    # Binance BTCUSDT: bracket 1 holds notionals up to and including 50,000 (mmr 0.4%),
    # bracket 2 starts above it (0.5%, cum 50); 250,000 is bracket 2's last notional
    assert BTC.tier_for(raw("50000")).mmr == raw("0.004")
    assert BTC.tier_for(raw("50000") + 1).mmr == raw("0.005")
    assert BTC.tier_for(raw("250000")).mmr == raw("0.005")
    assert BTC.tier_for(raw("250000") + 1).mmr == raw("0.01")
    # and the requirement there: 50,000 * 0.4% - 0 = 200; 250,000 * 0.5% - 50 = 1,200
    assert maintenance_margin(BTC, raw("50000")) == raw("200")
    assert maintenance_margin(BTC, raw("250000")) == raw("1200")


def _tiers(second_amount: str) -> dict[str, object]:
    return {
        "symbols": {
            "XUSDT": {
                "tiers": [
                    {"max_notional": "1000", "mmr": "0.01", "maintenance_amount": "0"},
                    {"max_notional": "5000", "mmr": "0.02", "maintenance_amount": second_amount},
                ]
            }
        }
    }


def test_a_bracket_table_that_jumps_at_an_edge_is_refused():
    # continuous: cum_2 = 1,000 * (2% - 1%) + 0 = 10; anything else makes the requirement
    # jump at 1,000 (a liquidation price could then fall between two brackets)
    assert parse_instruments(_tiers("10"))["XUSDT"].tiers[1].maintenance_amount == raw("10")
    with pytest.raises(ConfigError, match=r"XUSDT.tiers\[1\].*10"):
        parse_instruments(_tiers("0"))
    with pytest.raises(ConfigError, match=r"XUSDT.tiers\[1\]"):
        parse_instruments(_tiers("12"))


def test_both_sides_of_one_trade_share_the_venue_trade_id_and_both_apply():
    # Binance gives both sides of a trade one tradeId: A buys 1 BTC from B, both fills f-1
    engine = Engine(bundled_instruments())
    for event in (
        deposit("d1", "A", "100000"),
        deposit("d2", "B", "100000"),
        fill("f-1", "A", "buy", "1", "20000"),
        fill("f-1", "B", "sell", "1", "20000"),
    ):
        engine.apply(event)
    assert engine.accounts["A"].position("BTCUSDT").qty == raw("1")
    assert engine.accounts["B"].position("BTCUSDT").qty == raw("-1")
    # the venue re-sending A's side is a duplicate and changes nothing
    engine.apply(fill("f-1", "A", "buy", "1", "20000"))
    assert engine.accounts["A"].position("BTCUSDT").qty == raw("1")
    assert engine.stats.duplicates == 1


def test_notional_rounds_up_for_longs_and_shorts():
    # 0.00000001 BTC (one raw unit) at 1.5 = 0.000000015: between two raw units, rounded up
    assert notional(1, raw("1.5")) == 2
    assert notional(-1, raw("1.5")) == 2
    # 3 raw units at 0.33333333 = 0.9999999900000...e-8: rounded up to one raw unit
    assert notional(3, raw("0.33333333")) == 1
    assert notional(raw("2"), raw("100")) == raw("200")  # exact stays exact


def test_health_at_exactly_maintenance_is_liquidatable():
    # equity 100 = maintenance 100: liquidatable (the venues liquidate at equity <= MM)
    assert health_of(100 * U, 100 * U, DEFAULT_WARNING_RATIO) is Health.LIQUIDATABLE
    # one raw unit above: 100 / 100.00000001 >= 70%: warning, not liquidatable
    assert health_of(100 * U + 1, 100 * U, DEFAULT_WARNING_RATIO) is Health.WARNING
    # equity 0 is not bankrupt (nothing is lost yet); -1 raw unit is
    assert health_of(0, 100 * U, DEFAULT_WARNING_RATIO) is Health.LIQUIDATABLE
    assert health_of(-1, 100 * U, DEFAULT_WARNING_RATIO) is Health.BANKRUPT


def test_ladder_replaces_the_symbols_deficit_at_the_mark_instead_of_adding_to_it():
    # a long of 1 bankrupt at 105 with the mark at 100 already owes 5; 2 more lost on other
    # symbols, so loss now = 7. At -10% (p = 90) that long owes 15: 7 - 5 + 15 = 17, not 22.
    # At +10% (p = 110) it owes nothing: 7 - 5 + 0 = 2.
    longs, shorts = DeficitIndex(True), DeficitIndex(False)
    longs.put("a", 105 * U, 1 * U)
    points = ladder(
        7 * U, index_curve(longs, 100 * U), index_curve(shorts, 100 * U), (-0.1, 0.0, 0.1)
    )
    assert points == [(-0.1, 17 * U), (0.0, 7 * U), (0.1, 2 * U)]
