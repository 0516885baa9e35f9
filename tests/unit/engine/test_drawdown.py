"""Bybit's pool-drawdown ADL rule (``engine.drawdown``), by hand and by the venue's example.

Bybit, v5 API "Get ADL Alert" (https://bybit-exchange.github.io/docs/v5/market/adl-alert):
"pnlRatio = (Symbol's current PnL - Symbol's 8h max PnL) / Insurance pool's 8h max
balance (maxBalance)"; trigger "balance > adlTriggerThreshold and pnlRatio <
insurancePnlRatio"; stop "pnlRatio > adlStopRatio". Example 1 (three symbols share a
pool whose 8 h initial balance is 1M USDT; A loses 350K; adlTriggerThreshold 1,
insurancePnlRatio -0.3): "pnlRatio = -35%" -> ADL for A, whose winners make up 50K so
that A's ratio stays at -30%. The ADL alert stream's example shows adl_sr -0.25 and
adl_tt 10000.

The engine cases use tests.helpers.one_bankruptcy_book: on XUSDT (MMR 1% of the mark's
notional), L deposits 24 and buys 3 at 100, so at a mark p < 92 L's deficit is
3 x (92 - p); L is liquidatable below 276 / 2.97 = 92.93; no book (closing it costs the
fund nothing beyond its deficit). Shorts A 2 @ 100 (deposit 50), B 1 @ 100 (1,000),
E 4 @ 90 (1,000); long C 4 @ 90.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.drawdown import BYBIT_DRAWDOWN, HOUR_MS, DrawdownRule, PoolDrawdown, RollingMax
from streams.engine.engine import Engine
from streams.engine.errors import ConfigError, InvalidEvent
from streams.engine.signals import AdlStage, AdlTriggered, Signal
from tests.helpers import fund, mark, one_bankruptcy_book, one_tier, raw


def stages(signals: list[Signal]) -> list[AdlTriggered]:
    return [s for s in signals if isinstance(s, AdlTriggered)]


# ---------------------------------------------------------------- the rule's arithmetic
def test_bybits_example_one_triggers_and_winners_make_up_50k() -> None:
    """X = 0 (A's PnL at its 8 h max), M = 1M: the budget is 0 - (-0.3) x 1M = 300K; a
    350K loss passes it by 50K (ratio -35% < -30%); ADL stops below 250K (-25%)."""
    rule = DrawdownRule(min_balance=raw("1"))  # the example's adlTriggerThreshold
    budget = rule.budget(0, raw("1000000"))
    assert budget == raw("300000")
    assert raw("350000") > budget
    assert raw("350000") - budget == raw("50000")
    assert rule.stop_edge(0, raw("1000000")) == raw("250000")
    assert rule.applies(raw("1000000"))
    assert not rule.applies(raw("1"))


def test_the_published_parameters_are_bybits() -> None:
    assert BYBIT_DRAWDOWN.trigger_ratio == raw("-0.3")  # i_pr
    assert BYBIT_DRAWDOWN.stop_ratio == raw("-0.25")  # adl_sr
    assert BYBIT_DRAWDOWN.min_balance == raw("10000")  # adl_tt
    assert BYBIT_DRAWDOWN.window_ms == 8 * 3_600_000


def test_the_edges_round_toward_the_rule() -> None:
    """M = 0.00000007 (7 raw): 0.3 x 7 = 2.1 raw -> a loss of 3 raw passes the budget
    (2), 2 does not; 0.25 x 7 = 1.75 raw -> ADL stops below a loss of 2 raw."""
    rule = DrawdownRule()
    assert rule.budget(0, 7) == 2
    assert rule.stop_edge(0, 7) == 2
    # with a drawdown of -1 raw already: 2.1 - 1 = 1.1 -> 1; 1.75 - 1 = 0.75 -> 1
    assert (rule.budget(-1, 7), rule.stop_edge(-1, 7)) == (1, 1)


def test_a_rolling_max_holds_the_value_in_force_at_the_windows_start() -> None:
    series = RollingMax(keep_ms=100)
    for ts, value in ((0, 100), (10, 50), (20, 80), (30, 60)):
        series.record(ts, value)
    assert series.max_since(5) == 100  # 100 held until 10
    assert series.max_since(10) == 80  # 50 from 10, then 80
    assert series.max_since(25) == 80  # 80 held until 30
    assert series.max_since(31) == 60
    assert series.last == 60
    series.record(200, 10)  # 60 held from 30 to 200: in force at 200 - 100
    assert series.max_since(100) == 60
    assert series.max_since(200) == 10


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(-50, 50)), min_size=1, max_size=30),
    st.integers(0, 40),
)
def test_a_rolling_max_equals_the_step_series_max(
    steps: list[tuple[int, int]], window: int
) -> None:
    """Against brute force: records at rising times (gaps 0-5), asked after each record
    for the largest value in force from ``now - window`` on (a value holds from its
    record until the next one; pruned by a longer ``keep_ms``)."""
    series = RollingMax(keep_ms=40)
    records: list[tuple[int, int]] = []
    now = 0
    for gap, value in steps:
        now += gap
        series.record(now, value)
        records.append((now, value))
        start = now - window
        in_force = [
            v
            for k, (since, v) in enumerate(records)
            if k + 1 == len(records) or records[k + 1][0] > start  # held past the start
        ]
        assert series.max_since(start) == max(in_force)


def test_a_pool_without_a_symbols_pnl_measures_its_own_drawdown() -> None:
    """Balance 100, then 80: X = 80 - 100 = -20, M = 100; past the window only 80."""
    pool = PoolDrawdown(keep_ms=HOUR_MS)
    pool.record(0, raw("100"), None, None)
    pool.record(1_000, raw("80"), None, None)
    assert pool.drawdown("XUSDT", 2_000, HOUR_MS) == (raw("-20"), raw("100"))
    assert pool.drawdown("XUSDT", HOUR_MS + 1_000, HOUR_MS) == (0, raw("80"))


# ---------------------------------------------------------------- in the engine
SMALL_POOL = {"drawdown_min_balance": "1"}  # as example 1: the rule in force above 1


def test_a_loss_of_a_third_of_the_pool_triggers_before_the_fund_runs_out() -> None:
    """Pool 20 (its max; no PnL of XUSDT stated: X = 0): budget 0.3 x 20 = 6, stop edge
    0.25 x 20 = 5. The fund rule would wait for a loss above 20."""
    engine = one_bankruptcy_book("20", fund_table=SMALL_POOL)
    # 92.5: L liquidatable, no deficit; a 5% fall (87.875) -> 3 x 4.125 = 12.375 > 6
    [imminent] = stages(engine.apply(mark("XUSDT", "92.5", 2_000)))
    assert imminent.stage is AdlStage.IMMINENT
    assert imminent.rule == "drawdown"
    # the smallest fall past the budget: a deficit above 6, below 90 = (92.5 - 90) / 92.5
    assert imminent.adl_distance_pct == pytest.approx(100 * 2.5 / 92.5, abs=1e-3)
    # 90: deficit 6 = the budget, ratio exactly -30%: not below it, so no ADL
    assert stages(engine.apply(mark("XUSDT", "90", 3_000))) == []
    # 89: deficit 9 > 6 -> ratio -45%: ADL; winners make up 9 - 6 = 3
    [trigger] = stages(engine.apply(mark("XUSDT", "89", 4_000)))
    assert trigger.stage is AdlStage.TRIGGERED
    assert trigger.rule == "drawdown"
    assert trigger.fund_balance > trigger.projected_loss  # the fund rule would not
    assert trigger.shortfall == raw("3")
    assert trigger.adl_distance_pct == 0.0
    # Bybit's ranking at 89: A 0.11 x 178 / 72 = 0.27, B 0.11 x 89 / 1,011 = 0.0097,
    # E (1/90) x 356 / 1,004 = 0.0039: A's 2 and B's 1, at L's bankruptcy price 92
    assert [(s.account, s.qty, s.price) for s in trigger.plan] == [
        ("A", raw("2"), raw("92")),
        ("B", raw("1"), raw("92")),
    ]
    assert trigger.second_opinion is not None
    assert trigger.second_opinion.deficit == raw("3")  # D: the loss past the budget
    # 90.2: deficit 5.4 >= the stop edge 5: still in ADL (no new bankruptcy: silent);
    # held between the edges, ADL finds all of the symbol's loss
    assert stages(engine.apply(mark("XUSDT", "90.2", 5_000))) == []
    held = engine.plan_now("XUSDT")
    assert held is not None
    assert held[1] is AdlStage.TRIGGERED
    assert held[0].shortfall == raw("5.4")
    # 90.5: deficit 4.5 < 5 -> stops; 6 / 4.5 < 1.5: imminent
    [stopped] = stages(engine.apply(mark("XUSDT", "90.5", 6_000)))
    assert stopped.stage is AdlStage.IMMINENT
    # 100: L holds 24 again; a 5% fall (95) leaves it 9
    [cleared] = stages(engine.apply(mark("XUSDT", "100", 7_000)))
    assert cleared.stage is AdlStage.CLEARED
    assert cleared.rule is None


@pytest.mark.parametrize(
    ("profile", "fund_table"),
    [("bybit", None), ("binance", None), ("bybit", {"drawdown": False})],
    ids=["under-bybits-minimum", "binance", "turned-off"],
)
def test_without_the_rule_in_force_the_fund_rule_waits(
    profile: str, fund_table: dict[str, Any] | None
) -> None:
    """A pool of 20 is under Bybit's 10,000 minimum; Binance has no such rule; a
    pool's table can turn it off: a deficit of 9 against 20 is covered."""
    engine = one_bankruptcy_book("20", profile, fund_table)
    for ts, price in ((2_000, "92.5"), (3_000, "90"), (4_000, "89")):
        assert all(
            s.stage is not AdlStage.TRIGGERED
            for s in stages(engine.apply(mark("XUSDT", price, ts)))
        )


def test_the_symbols_own_pnl_in_the_pool_sets_its_budget() -> None:
    """Pool 40 throughout (its own drawdown 0: budget 12); XUSDT's PnL in the pool fell
    from 10 to 4: X = -6, budget -6 + 0.3 x 40 = 6, so a deficit of 9 triggers."""
    engine = one_bankruptcy_book("40", fund_table=SMALL_POOL)
    engine.apply(fund("40", 0, "F", symbol="XUSDT", symbol_pnl="10"))
    engine.apply(fund("40", 1_000, "F", symbol="XUSDT", symbol_pnl="4"))
    [trigger] = [s for s in stages(engine.apply(mark("XUSDT", "89", 4_000))) if s.plan]
    assert trigger.stage is AdlStage.TRIGGERED
    assert trigger.shortfall == raw("3")


def test_the_projection_shows_the_pools_pnl_ratio_now_and_after_the_loss() -> None:
    """As above (X = 4 - 10 = -6, M = 40): Bybit's pnlRatio -6 / 40 = -0.15; at 89 L's
    deficit 9 (no book to close into: no other loss) would take it to (-6 - 9) / 40 =
    -0.375, below the -0.3 that triggers. Under Binance's rules (none): null."""
    engine = one_bankruptcy_book("40", fund_table=SMALL_POOL)
    engine.apply(fund("40", 0, "F", symbol="XUSDT", symbol_pnl="10"))
    engine.apply(fund("40", 1_000, "F", symbol="XUSDT", symbol_pnl="4"))
    engine.apply(mark("XUSDT", "89", 4_000))
    [symbol] = engine.projection("F", 4_000).symbols
    assert symbol.pool_pnl_ratio == pytest.approx(-0.15)
    assert symbol.pool_pnl_ratio_after_loss == pytest.approx(-0.375)
    binance = one_bankruptcy_book("40", "binance")
    binance.apply(mark("XUSDT", "89", 4_000))
    [other] = binance.projection("F", 4_000).symbols
    assert other.pool_pnl_ratio is None
    assert other.pool_pnl_ratio_after_loss is None


def test_a_pool_between_the_stop_and_the_trigger_ratio_is_imminent() -> None:
    """Pool 40; XUSDT's PnL in it 0, then -11.2: ratio -28%, at or below the stop ratio
    (-25%: where the venue's ADL, once started, goes on) with no loss at the mark:
    imminent. Back to -9 (-22.5%): cleared (a 5% fall from 100 leaves L 9)."""
    engine = one_bankruptcy_book("40", fund_table=SMALL_POOL)
    engine.apply(fund("40", 0, "F", symbol="XUSDT", symbol_pnl="0"))
    [armed] = stages(engine.apply(fund("40", 1_000, "F", symbol="XUSDT", symbol_pnl="-11.2")))
    assert armed.stage is AdlStage.IMMINENT
    assert armed.projected_loss == 0
    [cleared] = stages(engine.apply(fund("40", 2_000, "F", symbol="XUSDT", symbol_pnl="-9")))
    assert cleared.stage is AdlStage.CLEARED


def test_a_drawdown_leaves_the_window() -> None:
    """As above with a window of 0.001 h = 3.6 s: at 5,000 the window starts at 1,400,
    after the PnL of 10 gave way to 4: X = 0, budget 12 > 9 (imminent: 12 / 9 < 1.5)."""
    engine = one_bankruptcy_book("40", fund_table={**SMALL_POOL, "drawdown_window_hours": "0.001"})
    engine.apply(fund("40", 0, "F", symbol="XUSDT", symbol_pnl="10"))
    engine.apply(fund("40", 1_000, "F", symbol="XUSDT", symbol_pnl="4"))
    [late] = stages(engine.apply(mark("XUSDT", "89", 5_000)))
    assert late.stage is AdlStage.IMMINENT


def test_a_symbols_pnl_for_another_pool_is_refused_and_records_nothing() -> None:
    engine = one_bankruptcy_book("40", fund_table=SMALL_POOL)
    with pytest.raises(InvalidEvent, match="not in fund"):
        engine.apply(fund("1", 5, "F", symbol="YUSDT", symbol_pnl="-30"))
    assert engine.watch.funds["F"].balance == raw("40")


# ---------------------------------------------------------------- the instruments file
def test_a_pools_table_states_its_rule() -> None:
    table = {
        "drawdown_trigger_ratio": "-0.5",
        "drawdown_stop_ratio": "-0.4",
        "drawdown_min_balance": "100",
        "drawdown_window_hours": "24",
    }
    rule = one_tier(fund_table=table)["XUSDT"].drawdown_rule
    assert rule == DrawdownRule(raw("-0.5"), raw("-0.4"), raw("100"), 24 * HOUR_MS)
    assert one_tier()["XUSDT"].drawdown_rule == BYBIT_DRAWDOWN  # the profile's
    assert one_tier(profile="binance")["XUSDT"].drawdown_rule is None
    partial = one_tier(profile="binance", fund_table={"drawdown_min_balance": "5"})
    assert partial["XUSDT"].drawdown_rule == DrawdownRule(min_balance=raw("5"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"drawdown_trigger_ratio": "-0.2"}, "trigger < stop"),  # -0.2 > -0.25
        ({"drawdown_stop_ratio": "0.1"}, "trigger < stop <= 0"),
        ({"drawdown_window_hours": "0"}, "drawdown_window_hours > 0"),
        ({"drawdown": "yes"}, "true or false"),
        ({"drawdown_trigger": "-0.3"}, "unknown keys"),
    ],
)
def test_a_bad_pool_table_is_refused(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        one_tier(fund_table=table)


def test_a_pool_table_for_no_symbol_is_refused() -> None:
    from streams.engine.instruments import parse_instruments

    doc = {
        "symbols": {"X": {"fund": "F", "tiers": [{"max_notional": "1", "mmr": "0.01",
                                                    "maintenance_amount": "0"}]}},
        "funds": {"G": {"drawdown": False}},
    }  # fmt: skip
    with pytest.raises(ConfigError, match="hold no symbol"):
        parse_instruments(doc)


def test_engine_is_built_with_the_files_rules() -> None:
    engine = Engine(one_tier(fund_table={"drawdown_min_balance": "7"}))
    assert engine.watch.drawdown.rules["XUSDT"].min_balance == raw("7")
