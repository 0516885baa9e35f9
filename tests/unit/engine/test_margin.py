"""Margin formulas: hand calculations (written out below) and invariants."""

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from streams import wire
from streams.engine.account import AccountState, Position
from streams.engine.engine import Engine
from streams.engine.events import MarginMode
from streams.engine.fixed import SCALE
from streams.engine.instruments import parse_instruments
from streams.engine.margin import (
    bankruptcy_price,
    bankruptcy_price_scaled,
    bankruptcy_reach,
    liquidation_price,
    maintenance_margin,
    notional,
    threshold_price,
    unrealized_pnl,
)
from streams.engine.risk import evaluate
from streams.engine.signals import AdlStage, AdlTriggered, LiquidationDetected
from tests.helpers import (
    F,
    btc_long_eth_short,
    bundled_instruments,
    ceil_raw,
    deposit,
    ev,
    fill,
    floor_raw,
    mark,
    one_tier,
    raw,
)

BTC = bundled_instruments()["BTCUSDT"]
ETH = bundled_instruments()["ETHUSDT"]


def test_isolated_long_10x_binance_formula():
    # 1 BTC long at 10,000 with 10x: margin 1,000. Bracket 1: mmr 0.4%, cum 0.
    # Binance: LP = (WB + cum - side*pos*EP) / (pos*MMR - side*pos)
    #             = (1000 + 0 - 10000) / (0.004 - 1) = 9036.1445783...
    # bankruptcy: B = E - margin/q = 10000 - 1000 = 9000
    qty, entry, margin = raw("1"), raw("10000"), raw("1000")
    expected_lp = ceil_raw((F(1000) - F(10000)) / (F("0.004") - 1))
    assert liquidation_price(BTC, qty, entry, margin) == expected_lp == 903614457832
    assert bankruptcy_price(qty, entry, margin) == raw("9000")


def test_hyperliquid_isolated_liquidation_the_published_formula():
    # Hyperliquid docs, Trading > Liquidations: "the maintenance margin is half of the
    # initial margin at max leverage" and
    #   liq_price = price - side x margin_available / position_size / (1 - l x side),
    #   l = 1 / maintenance leverage (2 x max leverage), side = 1 long, -1 short,
    # margin_available the isolated margin less the maintenance at the entry.
    # BTC at 40x max: l = 1/80 = 1.25% of the mark notional (one tier, profile
    # hyperliquid's convention). 1 BTC at 100,000, 10x: margin 10,000, available
    # 10,000 - 1,250 = 8,750:
    #   long:  100,000 - 8,750 / 1 / (1 - 0.0125) = 91,139.2405...
    #   short: 100,000 + 8,750 / 1 / (1 + 0.0125) = 108,641.975...
    hl = one_tier(mmr="0.0125", profile="hyperliquid", maintenance_base=None)["XUSDT"]
    assert hl.maintenance_base == "mark"
    entry, margin, rate = F(100_000), F(10_000), Fraction(1, 80)
    for side in (1, -1):
        available = margin - entry * rate
        want = entry - side * available / (1 - rate * side)
        got = liquidation_price(hl, side * raw("1"), raw("100000"), raw("10000"))
        assert got == (ceil_raw(want) if side > 0 else floor_raw(want))
    assert ceil_raw(F(8_750) / F("0.9875")) == raw("8860.75949368")  # the long's distance


def test_isolated_short_20x():
    # 2 ETH short at 3,000 with 20x: margin 300; bracket 1: mmr 0.5%.
    # 300 - 2*(P - 3000) = 2*P*0.005  ->  P = 6300 / 2.01 = 3134.328358...
    # B = E - margin/q = 3000 + 150 = 3150
    qty, entry, margin = raw("-2"), raw("3000"), raw("300")
    assert liquidation_price(ETH, qty, entry, margin) == floor_raw(F(6300) / F("2.01"))
    assert bankruptcy_price(qty, entry, margin) == raw("3150")


def test_liquidation_uses_the_bracket_at_the_liquidation_price():
    # 10 BTC long at 26,000 (notional 260,000: bracket 3, mmr 1%, cum 1,300), margin 26,000.
    # With bracket 3: 26000 + 10P - 260000 = 0.1P - 1300 -> P = 23505.05 (notional 235,050:
    # bracket 2, inconsistent). With bracket 2 (mmr 0.5%, cum 50):
    # 26000 + 10P - 260000 = 0.05P - 50 -> P = 233950 / 9.95 (notional 235,125: bracket 2).
    qty, entry, margin = raw("10"), raw("26000"), raw("26000")
    assert liquidation_price(BTC, qty, entry, margin) == ceil_raw(F(233950) / F("9.95"))


def test_cross_liquidation_price_holds_other_marks_fixed():
    # wallet 10,000; long 1 BTC @ 50,000 (mark 48,000); short 10 ETH @ 3,000 (mark 3,100).
    # equity = 10000 - 2000 - 1000 = 7000
    # MM: BTC 48,000 * 0.4% = 192; ETH 31,000 * 0.65% - 15 = 186.5
    # BTC LP = (q*M + MM_other - cum - equity) / (q - |q|*mmr) = (48000 + 186.5 - 7000) / 0.996
    # BTC B = M - equity/q = 41,000; ETH B = 3100 + 7000/10 = 3,800
    btc_mm = maintenance_margin(BTC, notional(raw("1"), raw("48000")))
    eth_mm = maintenance_margin(ETH, notional(raw("-10"), raw("3100")))
    assert (btc_mm, eth_mm) == (raw("192"), raw("186.5"))
    equity = raw("7000")
    lp = liquidation_price(BTC, raw("1"), raw("48000"), equity, other_maintenance=eth_mm)
    assert lp == ceil_raw((F(48000) + F("186.5") - F(7000)) / F("0.996"))
    assert bankruptcy_price(raw("1"), raw("48000"), equity) == raw("41000")
    assert bankruptcy_price(raw("-10"), raw("3100"), equity) == raw("3800")


def test_an_evaluated_position_prices_its_thresholds_with_the_others_maintenance():
    # The account above through ``evaluate`` (which prices liquidation and warning when
    # they are read): wallet 10,000, long 1 BTC @ 50,000 (mark 48,000), short 10 ETH @
    # 3,000 (mark 3,100); equity 7,000, MM 192 (BTC) and 186.5 (ETH), warning ratio 0.7.
    # BTC liquidation: (48000 + 186.5 - 7000) / 0.996 (as above), rounded up (a long).
    # ETH liquidation (short, other MM 192), bracket 2 (mmr 0.65%, cum 15) at ~37,600:
    #   7000 - 10 (P - 3100) = 192 + 10 P 0.0065 - 15  ->  P = 37823 / 10.065, rounded down.
    # BTC warning: 0.7 (7000 + P - 48000) = 186.5 + 0.004 P  ->  P = 28886.5 / 0.696 (up).
    # ETH warning: 0.7 (7000 - 10 (P - 3100)) = 192 + 0.065 P - 15 -> P = 26423 / 7.065 (down).
    state, marks = btc_long_eth_short()
    risk = evaluate(state, marks, bundled_instruments(), warning_ratio=7 * SCALE // 10)
    btc, eth = risk.positions
    assert (btc.backing_equity, btc.other_maintenance, eth.other_maintenance) == (
        raw("7000"),
        raw("186.5"),
        raw("192"),
    )
    assert btc.liquidation_price == ceil_raw((F(48000) + F("186.5") - F(7000)) / F("0.996"))
    assert eth.liquidation_price == floor_raw(F(37823) / F("10.065"))
    assert btc.warning_price == ceil_raw(F("28886.5") / F("0.696"))
    assert eth.warning_price == floor_raw(F(26423) / F("7.065"))
    assert (btc.bankruptcy_price, eth.bankruptcy_price) == (raw("41000"), raw("3800"))


def test_bybit_isolated_liquidation_is_on_the_entry_value_the_published_example():
    # Bybit help center (bybit.com/en/help-center), "Liquidation Price (USDT Contract)":
    # "Liquidation Price (Long) = Entry Price - [(Initial Margin - Maintenance Margin) /
    # Position Size]"; their example: 1 BTC long at 10,000, 50x (initial margin 200),
    # MMR 0.5% of the entry value (50) -> 10,000 - (200 - 50) / 1 = 9,850.
    state = AccountState(
        "a", positions=(Position("XUSDT", raw("1"), raw("10000"), MarginMode.ISOLATED, raw("200")),)
    )
    bybit = one_tier("0.005", profile="bybit", maintenance_base=None)
    assert bybit["XUSDT"].maintenance_base == "entry"  # the profile's convention
    (pos,) = evaluate(state, {"XUSDT": raw("10000")}, bybit).positions
    assert pos.maintenance_margin == raw("50")
    assert pos.liquidation_price == raw("9850")
    # the mark moved: the maintenance stays on the entry value, so does the price
    (moved,) = evaluate(state, {"XUSDT": raw("9900")}, bybit).positions
    assert (moved.maintenance_margin, moved.liquidation_price) == (raw("50"), raw("9850"))
    # on the mark's notional instead: 200 + (P - 10,000) = 0.005 P -> P = 9,800 / 0.995
    on_mark = one_tier("0.005", profile="bybit", maintenance_base="mark")
    (pos,) = evaluate(state, {"XUSDT": raw("10000")}, on_mark).positions
    assert pos.liquidation_price == ceil_raw(F(9800) / F("0.995"))  # 9,849.25: later


def test_bitmex_cross_liquidation_is_on_the_entry_value_the_published_example():
    # BitMEX "Isolated and Cross Margin Examples" (https://www.bitmex.com/app/
    # isolatedMarginExamples), "Profit Realisation Examples": "Karen's BitMEX account
    # wallet has 10,000 USDT. She buys 20 contracts of ETHUSDT at the price of $1,000 at
    # 50x Cross Margin. The required initial margin is 2% = 400 USDT, and the maintenance
    # margin is 1% = 200 USDT" (on the entry value); liquidation 510 and bankruptcy 500
    # (as issue 13 quotes them): 10,000 + 20 (P - 1,000) = 200 at 510, = 0 at 500.
    state = AccountState(
        "a",
        wallet_balance=raw("10000"),
        positions=(Position("ETHUSDT", raw("20"), raw("1000"), MarginMode.CROSS),),
    )
    bitmex = one_tier("0.01", profile="bitmex", symbol="ETHUSDT", maintenance_base=None)
    (pos,) = evaluate(state, {"ETHUSDT": raw("1000")}, bitmex).positions
    assert pos.maintenance_margin == raw("200")
    assert (pos.liquidation_price, pos.bankruptcy_price) == (raw("510"), raw("500"))
    # at a mark of 600 the account still holds 2,000 of equity above its 200
    (at_600,) = evaluate(state, {"ETHUSDT": raw("600")}, bitmex).positions
    assert (at_600.backing_equity, at_600.liquidation_price) == (raw("2000"), raw("510"))
    # on the mark's notional (the engine before issue 13): 10,000 + 20 P - 20,000 = 0.2 P
    # -> P = 10,000 / 19.8 = 505.05..., reached later by a falling mark
    on_mark = one_tier("0.01", profile="bitmex", symbol="ETHUSDT", maintenance_base="mark")
    (pos,) = evaluate(state, {"ETHUSDT": raw("1000")}, on_mark).positions
    assert pos.liquidation_price == ceil_raw(F(10000) / F("19.8"))


def test_a_short_on_the_entry_value_rounds_its_liquidation_price_down():
    # short 3 at 100, isolated margin 10, MMR 1% of the entry value (3): 10 - 3 (P - 100)
    # = 3 -> P = 100 + 7/3 = 102.333..., rounded down (a short's threshold, reached no
    # later than exactly)
    state = AccountState(
        "a", positions=(Position("XUSDT", raw("-3"), raw("100"), MarginMode.ISOLATED, raw("10")),)
    )
    (pos,) = evaluate(state, {"XUSDT": raw("100")}, one_tier(maintenance_base="entry")).positions
    assert pos.liquidation_price == floor_raw(F(100) + F(7) / F(3))


def test_warning_price_is_where_the_ratio_reaches_the_level():
    # one bracket, mmr 1%; 1 unit long at 100, margin 10 -> equity(P) = 10 + (P - 100)
    # maintenance/equity = 0.5 at 0.01P = 0.5 * (P - 90) -> P = 45 / 0.49
    inst = one_tier("0.01")["XUSDT"]
    price = threshold_price(inst, raw("1"), raw("100"), raw("10"), equity_weight=SCALE // 2)
    assert price == ceil_raw(F(45) / F("0.49"))


def test_long_without_leverage_never_goes_bankrupt():
    assert bankruptcy_price(raw("1"), raw("100"), raw("150")) is None
    assert liquidation_price(BTC, raw("1"), raw("100"), raw("150")) is None


def test_unrealized_pnl_rounds_down():
    # 3 units * (1.00000001 - 1) = 3e-8 exactly; 1 unit short * 1e-8 rise = -1e-8
    assert unrealized_pnl(raw("3"), raw("1"), raw("1.00000001")) == 3
    assert unrealized_pnl(raw("0.5"), raw("1"), raw("1.00000001")) == 0  # 0.5e-8 -> 0
    assert unrealized_pnl(raw("-0.5"), raw("1"), raw("1.00000001")) == -1  # -0.5e-8 -> -1e-8


qty_st = st.integers(min_value=10**5, max_value=10**11)  # 0.001 .. 1,000 base units
price_st = st.integers(min_value=10**8, max_value=10**13)  # 1 .. 100,000
margin_st = st.integers(min_value=10**6, max_value=10**13)


@given(qty=qty_st, short=st.booleans(), entry=price_st, margin=margin_st)
def test_equity_at_the_bankruptcy_price_is_zero_within_one_price_unit(qty, short, entry, margin):
    q = -qty if short else qty
    b = bankruptcy_price(q, entry, margin)
    if b is None:  # a long backed beyond its value
        assert margin >= qty * entry // SCALE
        return
    exact_equity = Fraction(margin, SCALE) + Fraction(q, SCALE) * Fraction(b - entry, SCALE)
    one_unit = Fraction(qty, SCALE) * Fraction(1, SCALE)  # |q| x one raw price unit
    if b > 0:
        assert 0 <= exact_equity <= one_unit  # rounded towards warning, by under one unit


@given(
    st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"]),
    st.integers(min_value=0, max_value=10**17),
    st.integers(min_value=0, max_value=10**17),
)
def test_maintenance_margin_never_falls_as_notional_grows(symbol, a, b):
    inst = bundled_instruments()[symbol]
    low, high = sorted((a, b))
    assert maintenance_margin(inst, low) <= maintenance_margin(inst, high)


@given(qty=qty_st, short=st.booleans(), entry=price_st, margin=margin_st)
def test_liquidation_comes_before_bankruptcy(qty, short, entry, margin):
    q = -qty if short else qty
    lp = liquidation_price(BTC, q, entry, margin)
    b = bankruptcy_price(q, entry, margin)
    if lp is not None and b is not None:
        assert (lp >= b) if q > 0 else (lp <= b)


@given(
    qty=st.integers(-(10**12), 10**12).filter(bool),
    mark=st.integers(1, 10**13),
    spread=st.integers(0, 10**12),
    offset=st.integers(-(10**6), 10**6),
    fee=st.sampled_from([0, 1, 75_000, SCALE // 100]) | st.integers(0, SCALE // 100),
)
def test_bankruptcy_reach_says_exactly_where_the_price_lies(qty, mark, spread, offset, fee):
    # the bound against the bankruptcy price itself, at cross equities on either side of
    # the bound and right at it (``offset`` raw units of Q * SCALE around it); with a fee
    # to close r, the slope 1 - r (long) or 1 + r (short)
    low, high = max(1, mark - spread), mark + spread
    slope = SCALE - fee if qty > 0 else SCALE + fee
    bound = bankruptcy_reach(qty, mark, low, high, slope)
    for scaled in (bound + offset, bound - 1, bound, bound + 1):
        price = bankruptcy_price_scaled(qty, mark, scaled, slope)
        read = price is not None and (price >= low if qty > 0 else price <= high)
        assert (scaled < bound) == read, (scaled, price)


def test_bankruptcy_reach_by_hand():
    # long 2 at a mark of 100, the fund reading down to 90: B = 100 - floor(Q / 2) raw.
    # Q = 20.00000001: Q / 2 = 10.000000005, floored to 10 -> B = 90, read;
    # Q = 20.00000002: B = 100 - 10.00000001 = 89.99999999, not read
    bound = bankruptcy_reach(raw("2"), raw("100"), raw("90"), raw("110"))
    assert raw("20.00000001") * SCALE < bound <= raw("20.00000002") * SCALE
    # short 4 at a mark of 50, the fund reading up to 60: B = 50 + floor(Q / 4) raw.
    # Q = 40.00000003: Q / 4 = 10.0000000075, floored to 10 -> B = 60, read;
    # Q = 40.00000004: B = 60.00000001, not read
    bound = bankruptcy_reach(raw("-4"), raw("50"), raw("40"), raw("60"))
    assert raw("40.00000003") * SCALE < bound <= raw("40.00000004") * SCALE


TICKED = {
    "symbols": {
        "XUSDT": {
            "fund": "F",
            "profile": "bybit",  # maintenance on the entry value
            "tick_size": "0.5",
            "tiers": [{"max_notional": "1000000", "mmr": "0.005", "maintenance_amount": "0"}],
        }
    }
}


def test_reported_thresholds_sit_on_the_tick_a_long_up_a_short_down():
    # 1 unit at 10,000, isolated margin 201.3, MMR 0.5% of the entry value (50):
    # long:  liquidation 10,000 - (201.3 - 50) = 9,848.7 -> 9,849.0 on a 0.5 tick (up);
    #        bankruptcy 10,000 - 201.3 = 9,798.7 -> 9,799.0
    # short: liquidation 10,000 + 151.3 = 10,151.3 -> 10,151.0 (down);
    #        bankruptcy 10,201.3 -> 10,201.0. The exact prices stay what the index reads.
    instruments = parse_instruments(TICKED)
    for qty, liq, liq_tick, bust, bust_tick in [
        ("1", "9848.7", "9849", "9798.7", "9799"),
        ("-1", "10151.3", "10151", "10201.3", "10201"),
    ]:
        position = Position("XUSDT", raw(qty), raw("10000"), MarginMode.ISOLATED, raw("201.3"))
        state = AccountState("a", positions=(position,))
        (pos,) = evaluate(state, {"XUSDT": raw("10000")}, instruments).positions
        assert (pos.liquidation_price, pos.bankruptcy_price) == (raw(liq), raw(bust))
        assert (pos.liquidation_price_on_tick, pos.bankruptcy_price_on_tick) == (
            raw(liq_tick),
            raw(bust_tick),
        )


def test_a_liquidation_reports_its_price_on_the_tick():
    # cross: wallet 201.3, long 1 at 10,000; at a mark of 9,800 the equity is 1.3 < 50:
    # liquidatable; P = 9,800 + (50 - 1.3) / 1 = 9,848.7 -> 9,849.0; B 9,798.7 -> 9,799.0
    engine = Engine(parse_instruments(TICKED))
    signals = []
    for event in (
        deposit("d", "A", "201.3", ts=1),
        fill("f", "A", "buy", "1", "10000", ts=2, symbol="XUSDT"),
        mark("XUSDT", "10000", ts=3),
        mark("XUSDT", "9800", ts=4),
    ):
        signals += engine.apply(event)
    (liquidation,) = [s for s in signals if isinstance(s, LiquidationDetected)]
    assert (liquidation.liquidation_price, liquidation.bankruptcy_price) == (
        raw("9849"),
        raw("9799"),
    )
    row = wire.account_risk(engine.risks["A"], engine)
    assert (row["positions"][0]["liquidation_price"], row["positions"][0]["bankruptcy_price"]) == (
        "9849",
        "9799",
    )


def test_the_plan_deleverages_at_the_bankruptcy_price_on_the_tick():
    # A as above (cross, wallet 201.3, long 1 at 10,000: bankrupt at 9,798.7, shown
    # 9,799.0), B short 1 at 10,000 with 1,000; the fund is empty. At a mark of 9,790
    # A's deficit 8.7 goes to ADL: B is closed at 9,799.0, the price shown, not 9,798.7
    engine = Engine(parse_instruments(TICKED))
    signals = []
    for event in (
        deposit("d", "A", "201.3", ts=1),
        deposit("d2", "B", "1000", ts=1),
        fill("f", "A", "buy", "1", "10000", ts=2, symbol="XUSDT"),
        fill("f", "B", "sell", "1", "10000", ts=2, symbol="XUSDT"),
        ev("insurance_fund", ts=2, fund="F", balance="0"),
        mark("XUSDT", "10000", ts=3),
        mark("XUSDT", "9790", ts=4),
    ):
        signals += engine.apply(event)
    triggers = [s for s in signals if isinstance(s, AdlTriggered)]
    (trigger,) = [s for s in triggers if s.stage is AdlStage.TRIGGERED]
    (step,) = trigger.plan
    assert (step.account, step.side, step.qty, step.price) == ("B", "short", raw("1"), raw("9799"))
    (bankrupt,) = trigger.bankrupt
    assert bankrupt.bankruptcy_price == raw("9798.7")
