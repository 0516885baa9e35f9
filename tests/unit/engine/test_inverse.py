"""Inverse perpetuals (``streams.engine.inverse``): the venues' published examples and
hand-computed numbers, through the whole engine (decoded events in, signals out)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import wire
from streams.engine.config import EngineConfig
from streams.engine.engine import Engine
from streams.engine.errors import ConfigError, InvalidEvent
from streams.engine.instruments import Instrument, parse_instruments
from streams.engine.inverse import (
    account_of,
    engine_qty,
    inverse_price,
    price_move,
    venue_price,
    venue_qty,
    wallet_key,
)
from streams.engine.signals import (
    AdlStage,
    AdlTriggered,
    BankruptcyDetected,
    FundProjection,
    LiquidationDetected,
    RankAlert,
    Signal,
)
from tests.helpers import (
    F,
    ceil_raw,
    deposit,
    ev,
    fill,
    floor_raw,
    isolated,
    mark,
    raw,
    schema_validator,
)


def inverse_book(
    mmr: str = "0.005",
    tick: str = "0.5",
    profile: str = "bybit",
    linear: bool = True,
    closing_fee: str | None = None,
    **fund_table: Any,
) -> dict[str, Instrument]:
    """BTCUSD inverse (1 USD contracts, settled in BTC, its own fund) and, beside it, a
    linear BTCUSDT in USDT. ``closing_fee``: BTCUSD's fee to close, if any."""
    tier = {"max_notional": "1000000", "mmr": mmr, "maintenance_amount": "0", "max_leverage": 100}
    symbols: dict[str, Any] = {
        "BTCUSD": {
            "fund": "BTC-inverse",
            "profile": profile,
            "contract": "inverse",
            "contract_size": 1,
            "settlement": "BTC",
            "tick_size": tick,
            "tiers": [tier],
        }
    }
    if closing_fee is not None:
        symbols["BTCUSD"]["closing_fee_rate"] = closing_fee
    if linear:
        symbols["BTCUSDT"] = {"fund": "USDT-M", "profile": profile, "tiers": [tier]}
    funds = {"BTC-inverse": fund_table} if fund_table else {}
    return parse_instruments({"symbols": symbols, "funds": funds})


def coin(eid: str, account: str, amount: str, ts: int = 0, currency: str = "BTC") -> Any:
    return ev(
        "balance",
        event_id=eid,
        ts=ts,
        account=account,
        amount=amount,
        reason="deposit",
        currency=currency,
    )


def cents_up(price: Fraction) -> int:
    """A long's threshold on a 0.01 tick: rounded up, raw."""
    return math.ceil(price * 100) * 10**6


def of(kind: type, signals: list[Signal]) -> list[Any]:
    return [s for s in signals if isinstance(s, kind)]


def isolated_long_against_a_short(entry: str, fund: str, leverage: str = "50") -> Engine:
    """BTCUSD alone: alice 5,000 contracts long at ``entry``, ``leverage``x isolated,
    against bob's 5,000 short (cross); 1 BTC each; the fund's balance ``fund`` BTC."""
    engine = Engine(inverse_book(linear=False))
    engine.apply(coin("d-a", "alice", "1"))
    engine.apply(coin("d-b", "bob", "1"))
    engine.apply(isolated("alice", "BTCUSD", leverage))
    engine.apply(fill("f1", "alice", "buy", "5000", entry, symbol="BTCUSD"))
    engine.apply(fill("f2", "bob", "sell", "5000", entry, symbol="BTCUSD"))
    engine.apply(ev("insurance_fund", ts=1, fund="BTC-inverse", balance=fund))
    return engine


# ---------------------------------------------------------------- conversions


def test_the_inverse_price_and_back_by_hand() -> None:
    # x = 10^8 / P coin per 10^8 USD: P = 8,000 -> x = 12,500 exactly
    assert inverse_price(raw("8000")) == raw("12500")
    assert venue_price(raw("12500")) == raw("8000")
    # P = 7,890.08: x = 10^8 / 7,890.08 = 12,674.14779... (nearest at 10^-8)
    exact = Fraction(10**8) / F("7890.08")
    x = inverse_price(raw("7890.08"))
    assert abs(Fraction(x, 10**8) - exact) <= Fraction(1, 2 * 10**8)
    # back: rounded up or down as asked, the nearest by default
    assert venue_price(x, "down") <= venue_price(x) <= venue_price(x, "up")
    assert venue_price(x, "up") - venue_price(x, "down") <= 1
    assert abs(venue_price(x) - raw("7890.08")) <= 1
    # contracts: whole, F USD each; the engine's quantity in USD (raw)
    assert engine_qty(raw("5000"), 1) == 5000
    assert engine_qty(raw("3"), 100) == 300
    assert venue_qty(300, 100) == raw("3")
    with pytest.raises(InvalidEvent, match="whole contracts"):
        engine_qty(raw("0.5"), 1)
    # an adverse move of x is a smaller fall of P (x rises) or a larger rise (x falls)
    assert price_move(0.25, x_long=False) == pytest.approx(0.2)  # x +25%: P -20%
    assert price_move(0.2, x_long=True) == pytest.approx(0.25)  # x -20%: P +25%
    assert wallet_key("alice", "USDT") == "alice"
    assert account_of(wallet_key("alice", "BTC")) == "alice" != wallet_key("alice", "BTC")


# ---------------------------------------------------------------- published examples


def test_bybit_inverse_isolated_bankruptcy_and_liquidation_the_published_example() -> None:
    # Bybit help center, "Bankruptcy price" / "Liquidation price (Inverse contract)"
    # (as issue 13 quotes it): 5,000 BTCUSD long at 7,890.08, 50x isolated ->
    # bankruptcy (7,890.08 x 50) / 51 = 7,735.37, shown as 7,735.5 (0.5 tick, up);
    # liquidation, MMR 0.5% of the entry value: E x lev / (lev + 1 - mmr x lev)
    # = 7,890.08 x 50 / 50.75 = 7,773.48 -> 7,773.5.
    engine = Engine(inverse_book())
    engine.apply(coin("d", "alice", "1"))
    engine.apply(isolated("alice", "BTCUSD", "50"))
    engine.apply(fill("f1", "alice", "buy", "5000", "7890.08", symbol="BTCUSD"))
    signals = engine.apply(mark("BTCUSD", "7700", ts=2))
    (liq,) = of(LiquidationDetected, signals)
    (bank,) = of(BankruptcyDetected, signals)
    assert (liq.account, liq.side, liq.qty, liq.settlement) == ("alice", "long", raw("5000"), "BTC")
    assert liq.bankruptcy_price == bank.bankruptcy_price == raw("7735.5")
    assert liq.liquidation_price == raw("7773.5")
    assert liq.mark_price == raw("7700")
    assert liq.isolated
    # money in BTC: the margin 5,000 / 7,890.08 / 50 = 0.01267414... (rounded up at the
    # scale); maintenance 0.5% of the entry value 0.63370... = 0.00316853...
    value = Fraction(5000) / F("7890.08")
    assert abs(Fraction(liq.maintenance_margin, 10**8) - value * F("0.005")) < F("0.0000001")
    # equity at 7,700: margin + 5,000 (1/7,890.08 - 1/7,700) < 0 -> the deficit in BTC
    equity = value / 50 + 5000 * (Fraction(1) / F("7890.08") - Fraction(1) / 7700)
    assert abs(Fraction(-bank.deficit, 10**8) - equity) < F("0.0000001")
    assert bank.deficit > 0


def test_bybit_inverse_isolated_example_deleverages_at_the_price_shown() -> None:
    # the published example again (5,000 BTCUSD long at 7,890.08, 50x isolated:
    # bankruptcy 7,735.37, shown 7,735.5), now with no fund left: at 7,700 the loss
    # goes to ADL, and bob's short is closed at 7,735.5, the price the venue shows
    engine = isolated_long_against_a_short("7890.08", fund="0")
    signals = engine.apply(mark("BTCUSD", "7700", ts=2))
    (trig,) = [t for t in of(AdlTriggered, signals) if t.stage is AdlStage.TRIGGERED]
    (step,) = trig.plan
    assert (step.account, step.side, step.qty, step.price) == (
        "bob",
        "short",
        raw("5000"),
        raw("7735.5"),
    )
    # the bankrupt list keeps the exact price: (7,890.08 x 50) / 51 = 7,735.372549...
    (b,) = trig.bankrupt
    assert raw("7735.37") < b.bankruptcy_price < raw("7735.38")


BYBIT_TAKER = "0.00075"  # the inverse taker fee of Bybit's examples (0.075%)


def test_bybit_inverse_cross_example_with_the_fee_to_close() -> None:
    # Bybit's cross example (issue 13): balance 0.5 BTC, long 10,000 contracts at 8,000
    # -> bankruptcy 5,718.57, liquidation 5,739.50. Bybit counts the fee to close
    # (0.075% taker of the value at the price) against the balance:
    #   bankruptcy:  0.5 + 10,000 (1/8,000 - 1/P) - 0.00075 x 10,000 / P = 0
    #                P = 10,000 x 1.00075 / 1.75 = 5,718.5714...
    #   liquidation: the same = 0.5% of the entry value (0.00625 BTC):
    #                P = 10,007.5 / 1.74375 = 5,739.068... -> 5,739.5 on the 0.5 tick (up)
    # Without the fee the engine found 5,714.29 and 5,734.77 (the twenty-first session).
    book = inverse_book(closing_fee=BYBIT_TAKER)
    engine = Engine(book)
    engine.apply(coin("d", "alice", "0.5"))
    engine.apply(coin("d-b", "bob", "1"))
    engine.apply(fill("f1", "alice", "buy", "10000", "8000", symbol="BTCUSD"))
    engine.apply(fill("f2", "bob", "sell", "10000", "8000", symbol="BTCUSD"))
    engine.apply(ev("insurance_fund", ts=1, fund="BTC-inverse", balance="0"))
    (liq,) = of(LiquidationDetected, engine.apply(mark("BTCUSD", "5730", ts=2)))
    assert liq.liquidation_price == raw("5739.5")
    assert liq.bankruptcy_price == raw("5719")  # 5,718.57... on the 0.5 tick, up
    # at 5,700 past it: the exact price (the trigger's bankrupt list) is the venue's
    # 5,718.57, and the deficit counts the fee: 10,007.5 / 5,700 - 1.75 BTC
    signals = engine.apply(mark("BTCUSD", "5700", ts=3))
    (trig,) = [t for t in of(AdlTriggered, signals) if t.stage is AdlStage.TRIGGERED]
    (b,) = trig.bankrupt
    assert raw("5718.57") <= b.bankruptcy_price < raw("5718.58")
    deficit = F("10007.5") / 5700 - F("1.75")
    assert abs(Fraction(b.deficit, 10**8) - deficit) <= F("0.00000002")
    (step,) = trig.plan  # bob's short, closed at the bankruptcy price on the tick
    assert (step.account, step.qty, step.price) == ("bob", raw("10000"), raw("5719"))


def test_bybit_inverse_isolated_example_holds_with_the_fee_to_close() -> None:
    # the isolated example under the same fee: Bybit's position margin is the initial
    # margin plus the fee to close at the bankruptcy price ("Fee to close = (Qty /
    # Bankruptcy Price) x taker fee"): 5,000 / 7,735.37 x 0.075% = 0.00048479 BTC, added
    # as the venue reports it. Bankruptcy: IM + R + 5,000 (1/E - 1/P) = 0.00075 x 5,000 / P
    # holds at P = 7,735.37 (R pays the fee there): 7,735.5 on the tick, as published;
    # liquidation: 5,000 x 1.00075 / (IM + R + 5,000 / E - MM) = 7,773.4... -> 7,773.5
    engine = Engine(inverse_book(closing_fee=BYBIT_TAKER))
    engine.apply(coin("d", "alice", "1"))
    engine.apply(isolated("alice", "BTCUSD", "50"))
    engine.apply(fill("f1", "alice", "buy", "5000", "7890.08", symbol="BTCUSD"))
    reserve = ev(
        "isolated_margin", event_id="r", ts=1, account="alice", symbol="BTCUSD", amount="0.00048479"
    )
    engine.apply(reserve)
    (liq,) = of(LiquidationDetected, engine.apply(mark("BTCUSD", "7760", ts=2)))
    assert liq.liquidation_price == raw("7773.5")
    assert liq.bankruptcy_price == raw("7735.5")
    value = Fraction(5000) / F("7890.08")
    margin = value / 50 + F("0.00048479")
    exact = 5000 * F("1.00075") / (margin + value - value * F("0.005"))
    assert raw("7773") < ceil_raw(exact) <= raw("7773.5")


def test_a_linear_fee_to_close_by_hand() -> None:
    # XUSDT, fee to close 0.1%, MMR 0.5% of the mark value; cross, wallet 1,000:
    # long 1 at 10,000:  1,000 + (P - 10,000) - 0.001 P = 0      -> B = 9,000 / 0.999
    #                    ... = 0.005 P                           -> L = 9,000 / 0.994
    # short 1 at 10,000: 1,000 - (P - 10,000) - 0.001 P = 0      -> B = 11,000 / 1.001
    #                    ... = 0.005 P                           -> L = 11,000 / 1.006
    tier = {"max_notional": "1000000", "mmr": "0.005", "maintenance_amount": "0"}
    spec = {"fund": "F", "profile": "binance", "closing_fee_rate": "0.001", "tiers": [tier]}
    book = parse_instruments({"symbols": {"XUSDT": spec}})
    for side, at, bankrupt, liquidation in (
        ("buy", "9050", ceil_raw(F(9000) / F("0.999")), ceil_raw(F(9000) / F("0.994"))),
        ("sell", "10950", floor_raw(F(11000) / F("1.001")), floor_raw(F(11000) / F("1.006"))),
    ):
        engine = Engine(book)
        engine.apply(deposit("d", "a", "1000"))
        engine.apply(fill("f", "a", side, "1", "10000", symbol="XUSDT"))
        (liq,) = of(LiquidationDetected, engine.apply(mark("XUSDT", at, ts=1)))
        assert (liq.bankruptcy_price, liq.liquidation_price) == (bankrupt, liquidation)
        # the equity is net of the fee to close at the mark: 1,000 - 950 - 0.1% of it
        assert Fraction(engine.risks["a"].equity, 10**8) == 1000 - 950 - F(at) / 1000
    # the loss past bankruptcy counts it too: the long at 8,000 holds 1,000 - 2,000 - 8
    # = -1,008, i.e. 0.999 x (9,009.009... - 8,000) = 1,008
    engine = Engine(book)
    engine.apply(deposit("d", "a", "1000"))
    engine.apply(fill("f", "a", "buy", "1", "10000", symbol="XUSDT"))
    engine.apply(ev("insurance_fund", ts=1, fund="F", balance="5000"))
    (bank,) = of(BankruptcyDetected, engine.apply(mark("XUSDT", "8000", ts=2)))
    assert abs(Fraction(bank.deficit, 10**8) - 1008) <= F("0.00000002")


# ---------------------------------------------------------------- wallets


def test_a_coin_wallet_is_apart_from_the_usdt_wallet() -> None:
    # alice holds 1 BTC and 100 USDT: her USDT position's loss is not covered by the BTC,
    # nor the inverse position's by the USDT
    engine = Engine(inverse_book())
    engine.apply(coin("d1", "alice", "1"))
    engine.apply(deposit("d2", "alice", "100"))
    engine.apply(fill("f1", "alice", "buy", "0.01", "10000", symbol="BTCUSDT"))
    # a 100 USDT loss at 0: 0.01 x (P - 10,000) = -100 at P = 0 -> never bankrupt above 0
    # at 5,000: equity 100 - 50 = 50 USDT; maintenance 0.005 x 0.01 x 5,000 = 0.25
    assert of(BankruptcyDetected, engine.apply(mark("BTCUSDT", "5000", ts=1))) == []
    # now lose more than 100 USDT: 1 BTC in the coin wallet does not help
    engine.apply(fill("f2", "alice", "buy", "1", "5000", symbol="BTCUSDT", ts=2))
    signals = engine.apply(mark("BTCUSDT", "4900", ts=3))  # -50 -100 = -150 + 100 < 0
    (bank,) = of(BankruptcyDetected, signals)
    assert (bank.account, bank.settlement) == ("alice", None)
    assert engine.risk_now("alice") is not None
    assert engine.risk_now("alice").wallet_balance == raw("100")  # type: ignore[union-attr]
    # a balance in a currency no symbol settles in is refused, nothing recorded
    with pytest.raises(InvalidEvent, match="no symbol settles in 'ETH'"):
        engine.apply(coin("d3", "alice", "1", currency="ETH"))


# ---------------------------------------------------------------- ADL


def test_an_inverse_trigger_plans_against_usd_shorts_in_contracts_and_coin() -> None:
    # alice 5,000 BTCUSD long at 8,000, 50x isolated: margin 5,000 / 8,000 / 50 =
    # 0.0125 BTC; bankrupt at 8,000 x 50 / 51 = 7,843.137...; bob and carol short
    # 3,000 and 2,000 at 8,000 (cross, 1 BTC each). Fund 0.005 BTC. At 7,800:
    # alice's deficit = 5,000 (1/7,800 - 1/8,000) - 0.0125 = 0.016025641... - 0.0125
    # = 0.003525641 BTC < 0.005: covered. At 7,600: 5,000 (1/7,600 - 1/8,000) -
    # 0.0125 = 0.032894736... - 0.0125 = 0.020394736... > 0.005: triggered; the plan
    # closes 5,000 contracts of USD shorts at alice's bankruptcy price.
    engine = Engine(inverse_book())
    for acct in ("bob", "carol"):
        engine.apply(coin(f"d-{acct}", acct, "1"))
    engine.apply(coin("d-a", "alice", "1"))
    engine.apply(isolated("alice", "BTCUSD", "50"))
    engine.apply(fill("f1", "alice", "buy", "5000", "8000", symbol="BTCUSD"))
    engine.apply(fill("f2", "bob", "sell", "3000", "8000", symbol="BTCUSD"))
    engine.apply(fill("f3", "carol", "sell", "2000", "8000", symbol="BTCUSD"))
    engine.apply(ev("insurance_fund", ts=1, fund="BTC-inverse", balance="0.005"))
    engine.apply(mark("BTCUSD", "8000", ts=2))
    covered = engine.apply(mark("BTCUSD", "7800", ts=3))
    assert [t.stage for t in of(AdlTriggered, covered)] != [AdlStage.TRIGGERED]
    (bank,) = of(BankruptcyDetected, covered)
    deficit = 5000 * (Fraction(1, 7800) - Fraction(1, 8000)) - F("0.0125")
    assert abs(Fraction(bank.deficit, 10**8) - deficit) < F("0.00000002")
    signals = engine.apply(mark("BTCUSD", "7600", ts=4))
    (trig,) = [t for t in of(AdlTriggered, signals) if t.stage is AdlStage.TRIGGERED]
    assert (trig.settlement, trig.fund, trig.rule) == ("BTC", "BTC-inverse", "fund")
    (b,) = trig.bankrupt
    assert (b.account, b.side, b.qty) == ("alice", "long", raw("5000"))
    # 8,000 x 50 / 51 = 7,843.13725490...: reached no later (a long's: at or above it);
    # within what one satoshi of equity moves it (1e-8 BTC / 5,000 USD x P^2 ~ 1.2e-4)
    exact = ceil_raw(F(8000) * 50 / 51)
    assert exact <= b.bankruptcy_price <= exact + raw("0.0002")
    loss = 5000 * (Fraction(1, 7600) - Fraction(1, 8000)) - F("0.0125")
    assert abs(Fraction(b.deficit, 10**8) - loss) < F("0.00000002")
    assert {(p.account, p.side, p.qty) for p in trig.plan} == {
        ("bob", "short", raw("3000")),
        ("carol", "short", raw("2000")),
    }
    assert all(p.against == "alice" for p in trig.plan)
    # executed at the bankruptcy price on the 0.5 tick, a USD long's rounded up
    assert {p.price for p in trig.plan} == {raw("7843.5")}
    assert trig.adl_distance_pct == 0.0
    payload = wire.adl_trigger(trig)
    schema_validator("adl_triggers").validate(payload)
    assert payload["settlement"] == "BTC"
    assert payload["bankrupt"][0]["side"] == "long"


def test_the_adl_distance_of_an_inverse_symbol_is_a_move_of_its_usd_price() -> None:
    # alice as above (bankrupt at 8,000 x 50 / 51 = 7,843.137...), fund 0.01 BTC: the
    # fund is exhausted where 5,000 (1/P - 1/8,000) - 0.0125 = 0.01, i.e. 5,000 / P =
    # 0.6475: P = 7,722.007...; from a mark of 8,000 that is a fall of 3.4749...%
    engine = isolated_long_against_a_short("8000", fund="0.01")
    engine.apply(mark("BTCUSD", "8000", ts=2))
    (projection,) = of(FundProjection, engine.finish())
    (sym,) = projection.symbols
    assert projection.settlement == "BTC"
    assert sym.mark_price == raw("8000")
    edge = Fraction(5000) / F("0.6475")
    expected = float((8000 - edge) / 8000 * 100)
    assert sym.adl_distance_long_pct == pytest.approx(expected, rel=1e-3)
    # the ladder's shocks are the configured moves of P, exactly (not x's, relabelled)
    assert [pt.shock_pct for pt in sym.ladder] == [s * 100 for s in EngineConfig().shocks]
    schema_validator("fund_projection").validate(wire.fund_projection(projection))


def test_an_inverse_ladder_shocks_the_usd_price() -> None:
    """alice as above (5,000 USD long at 8,000, margin 5,000 / 8,000 / 50 = 0.0125 BTC).
    P -10% = 7,200: her deficit 5,000 (1/7,200 - 1/8,000) - 0.0125 = 0.0569444... BTC;
    P -20% = 6,400: 5,000 (1/6,400 - 1/8,000) - 0.0125 = 0.14375; bob's short gains on
    a fall and loses nothing on a rise up to +50% (1 BTC against 5,000 (1/8,000 -
    1/12,000) = 0.2083)."""
    engine = isolated_long_against_a_short("8000", fund="0.01")
    engine.apply(mark("BTCUSD", "8000", ts=2))
    (projection,) = of(FundProjection, engine.finish())
    ladder = {pt.shock_pct: pt.projected_loss for pt in projection.symbols[0].ladder}
    for shock, deficit in ((-10, 5000 * (Fraction(1, 7200) - Fraction(1, 8000))),
                           (-20, 5000 * (Fraction(1, 6400) - Fraction(1, 8000)))):  # fmt: skip
        want = deficit - F("0.0125")
        assert abs(Fraction(ladder[shock], 10**8) - want) <= F("0.00000002")
    assert all(loss == 0 for shock, loss in ladder.items() if shock > 0)


def test_an_inverse_symbol_is_imminent_at_a_5pct_fall_of_its_usd_price() -> None:
    """alice 20x isolated: bankrupt at 8,000 x 20 / 21 = 7,619.05, a fall of 4.76% (x up
    5%). A fall of the USD price by 5% (7,600) leaves her 5,000 (1/7,600 - 1/8,000) -
    0.03125 = 0.00164 BTC under water, more than the fund's 0.001: imminent. (A 5% move
    of x, the USD price -4.76%, reaches only her bankruptcy price: no deficit.)"""
    engine = isolated_long_against_a_short("8000", fund="0.001", leverage="20")
    stages = of(AdlTriggered, engine.apply(mark("BTCUSD", "8000", ts=2)))
    assert [(s.symbol, s.stage) for s in stages] == [("BTCUSD", AdlStage.IMMINENT)]


def test_inverse_rank_alerts_name_the_usd_side_and_the_account() -> None:
    engine = Engine(inverse_book(linear=False))
    engine.apply(coin("d-a", "alice", "1"))
    engine.apply(coin("d-b", "bob", "1"))
    engine.apply(fill("f1", "alice", "buy", "5000", "8000", symbol="BTCUSD"))
    engine.apply(fill("f2", "bob", "sell", "5000", "8000", symbol="BTCUSD"))
    alerts = of(RankAlert, engine.apply(mark("BTCUSD", "7000", ts=2)) + engine.finish())
    assert {(a.account, a.side, a.settlement) for a in alerts} >= {("bob", "short", "BTC")}
    assert all(a.account in ("alice", "bob") for a in alerts)
    for a in alerts:
        schema_validator("rank_alerts").validate(wire.rank_alert(a))


def binance_coin_m(tiers: list[dict[str, str | int]]) -> dict[str, Instrument]:
    """BTCUSD as a Binance COIN-M perpetual (100 USD contracts, margin in BTC)."""
    symbol = {"fund": "BTC-inverse", "profile": "binance", "contract": "inverse",
              "contract_size": 100, "settlement": "BTC", "tiers": tiers}  # fmt: skip
    return parse_instruments({"symbols": {"BTCUSD": symbol}})


# two brackets in BTC: 0.5% to 1 BTC of notional, then 1% less 0.005 (continuous)
TWO_BRACKETS: list[dict[str, str | int]] = [
    {"max_notional": "1", "mmr": "0.005", "maintenance_amount": "0", "max_leverage": 100},
    {"max_notional": "100", "mmr": "0.01", "maintenance_amount": "0.005", "max_leverage": 50},
]


def test_binance_ranks_a_coin_m_queue_by_the_faqs_leverage_pnl_in_the_coin() -> None:
    """Dave, wallet 1 BTC, short 300 contracts (30,000 USD) at 60,000; at 52,000 his PnL
    is 30,000 x (1/52,000 - 1/60,000) = 0.0769230769 BTC; his notional 30,000 / 52,000
    = 0.5769 BTC, first bracket: maintenance 0.0028846 BTC. Leverage PnL = 0.0769 /
    max(1, 1) x 0.0028846 / 1.0769 = 0.00020604. Erin, the same short on a wallet of 0.5
    BTC: PnL over max(1, 0.5) = 1, the same PnL percent; margin ratio 0.0028846 /
    0.5769: a higher score, first in the queue."""
    engine = Engine(binance_coin_m(TWO_BRACKETS))
    for k, (acct, amount) in enumerate((("dave", "1"), ("erin", "0.5"), ("carl", "5"))):
        engine.apply(coin(f"d{k}", acct, amount))
    engine.apply(fill("f1", "carl", "buy", "600", "60000", symbol="BTCUSD"))
    engine.apply(fill("f2", "dave", "sell", "300", "60000", symbol="BTCUSD"))
    engine.apply(fill("f3", "erin", "sell", "300", "60000", symbol="BTCUSD"))
    engine.apply(mark("BTCUSD", "60000", ts=2))
    engine.apply(mark("BTCUSD", "52000", ts=3))
    engine.rerank("BTCUSD", 3)
    pnl = 30_000 * (1 / 52_000 - 1 / 60_000)
    maintenance = 30_000 / 52_000 * 0.005
    want = {"dave": pnl * maintenance / (1 + pnl), "erin": pnl * maintenance / (0.5 + pnl)}
    got = {e.account: e.score for e in engine.venue_queue("BTCUSD", "short")}
    assert list(got) == ["erin", "dave"]
    # x = 1e8 / P and the PnL in raw units (1e-8 BTC) are the rounded steps
    assert got == pytest.approx(want, rel=1e-6)


def test_a_coin_m_ranking_does_not_depend_on_when_its_accounts_were_evaluated() -> None:
    """As replay and a partition restored from its changelog must agree (``test_engine``'s
    linear test): carl's long of 600 contracts is 1 BTC of notional at 60,000 and 1.15 BTC
    at 52,000, past the first bracket's edge, so his maintenance at the ranking must be
    the second bracket's, whenever he was last evaluated."""
    instruments = binance_coin_m(TWO_BRACKETS)
    live = Engine(instruments)
    accounts = [coin(f"d{k}", acct, "1") for k, acct in enumerate(("carl", "dave", "erin"))]
    fills = [fill("f1", "carl", "buy", "600", "60000", symbol="BTCUSD"),
             fill("f2", "dave", "sell", "300", "60000", symbol="BTCUSD"),
             fill("f3", "erin", "sell", "300", "61000", symbol="BTCUSD")]  # fmt: skip
    final = mark("BTCUSD", "52000", ts=5)
    for event in [*accounts, mark("BTCUSD", "60000", ts=2), *fills,
                  mark("BTCUSD", "56000", ts=3), final]:  # fmt: skip
        live.apply(event)
    restored = Engine(instruments)
    for event in (mark("BTCUSD", "60000", ts=2), final):
        restored.apply(event)
    restored.restore(live.accounts.values())
    for engine in (live, restored):
        engine.rerank("BTCUSD", 6)
    for side in ("long", "short"):
        a, b = live.ranking("BTCUSD", side), restored.ranking("BTCUSD", side)
        assert a is not None
        assert b is not None
        assert list(a.accounts) == list(b.accounts)
        # an evaluation rounds each PnL to 1e-8 BTC; the carry to the marks is a float,
        # not rounded: ~1e-8 relative apart here, under any profile (Bybit's alike)
        assert a.scores.tolist() == pytest.approx(b.scores.tolist(), rel=1e-6)


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"contract": "quanto"}, "not one of linear, inverse"),
        ({"contract_size": 0}, "a whole number of USD"),
        ({"contract_size": "1"}, "a whole number of USD"),
        ({"settlement": None}, "names its coin"),
        ({"settlement": "BT C"}, "a currency code"),
    ],
)
def test_refused_inverse_terms(change: dict[str, Any], message: str) -> None:
    spec: dict[str, Any] = {
        "fund": "F",
        "contract": "inverse",
        "settlement": "BTC",
        "tiers": [{"max_notional": "10", "mmr": "0.01", "maintenance_amount": "0"}],
    }
    spec.update(change)
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        parse_instruments({"symbols": {"BTCUSD": spec}})


def test_a_fund_pays_in_one_currency() -> None:
    tier = [{"max_notional": "10", "mmr": "0.01", "maintenance_amount": "0"}]
    doc = {
        "symbols": {
            "BTCUSD": {"fund": "F", "contract": "inverse", "settlement": "BTC", "tiers": tier},
            "BTCUSDT": {"fund": "F", "tiers": tier},
        }
    }
    with pytest.raises(ConfigError, match=r"settle in \['BTC', 'USDT'\]"):
        parse_instruments(doc)
    linear = {"fund": "F", "contract_size": 10, "tiers": tier}
    with pytest.raises(ConfigError, match="only an inverse contract"):
        parse_instruments({"symbols": {"BTCUSDT": linear}})


def test_an_inverse_fill_of_part_of_a_contract_is_refused() -> None:
    engine = Engine(inverse_book())
    with pytest.raises(InvalidEvent, match="whole contracts"):
        engine.apply(fill("f1", "alice", "buy", "0.5", "8000", symbol="BTCUSD"))
    assert engine.accounts == {}


def test_an_id_with_a_control_character_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="no control characters"):
        ev("balance", event_id="d", ts=0, account="alice\x1fBTC", amount="1", reason="deposit")


def test_an_inverse_wallet_renders_as_the_venue_shows_it() -> None:
    # alice: 1 BTC and a 5,000 BTCUSD long at 8,000 (cross), 100 USDT and nothing else;
    # at 7,000: uPnL 5,000 (1/8,000 - 1/7,000) = -0.08928571 BTC (rounded down)
    engine = Engine(inverse_book())
    engine.apply(coin("d1", "alice", "1"))
    engine.apply(deposit("d2", "alice", "100"))
    engine.apply(fill("f1", "alice", "buy", "5000", "8000", symbol="BTCUSD"))
    engine.apply(fill("f2", "bob", "sell", "5000", "8000", symbol="BTCUSD"))
    engine.apply(mark("BTCUSD", "7000", ts=1))
    rows = {(r["account"], r.get("settlement")): r for r in wire.final_accounts(engine)}
    assert set(rows) == {("alice", None), ("alice", "BTC"), ("bob", "BTC")}
    assert rows["alice", None]["wallet_balance"] == "100"
    assert rows["alice", None]["positions"] == []
    btc = rows["alice", "BTC"]
    assert btc["wallet_balance"] == "1"
    (pos,) = btc["positions"]
    assert (pos["side"], pos["qty"], pos["entry_price"], pos["mark_price"]) == (
        "long",
        "5000",
        "8000",
        "7000",
    )
    assert pos["unrealized_pnl"] == "-0.08928572"
    # bankrupt where 1 = 5,000 (1/P - 1/8,000): P = 5,000 / 1.625 = 3,076.92..., up to
    # the 0.5 tick: 3,077
    assert pos["bankruptcy_price"] == "3077"
    for row in rows.values():
        schema_validator("accounts").validate(row)
    # the dashboard's sides: the USD longs are alice's 5,000 contracts
    long = engine.side_summary("BTCUSD", "long")
    short = engine.side_summary("BTCUSD", "short")
    assert (long.open_interest, short.open_interest) == (raw("5000"), raw("5000"))
    assert sum(long.positions_by_light) == sum(short.positions_by_light) == 1


# ---------------------------------------------------------------- against a reference


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-3000, 3000).filter(bool), st.integers(2000, 60000)),
        min_size=1,
        max_size=12,
    ),
    st.integers(2000, 60000),
)
def test_the_wallet_follows_the_venues_inverse_formulas(
    trades: list[tuple[int, int]], mark_usd: int
) -> None:
    # A reference in exact fractions, written from the venues' inverse formulas (Bybit
    # "Inverse contract"; BitMEX XBTUSD): the position's cost in BTC is the sum of
    # contracts / price of its opening fills (its entry the harmonic mean of the
    # prices); a close of c contracts realizes c (cost / |n| - 1 / P) for a long (the
    # opposite for a short) and releases that share of the cost; unrealized PnL at the
    # mark M is n / |n| (cost - |n| / M). Equity = deposit + realized + unrealized.
    engine = Engine(inverse_book(linear=False))
    engine.apply(coin("d", "alice", "10"))
    n, cost, realized = 0, Fraction(0), Fraction(0)
    for k, (contracts, price) in enumerate(trades):
        side = "buy" if contracts > 0 else "sell"
        engine.apply(fill(f"f{k}", "alice", side, str(abs(contracts)), str(price), "BTCUSD"))
        closing = 0 if n == 0 or (n > 0) == (contracts > 0) else min(abs(contracts), abs(n))
        if closing:
            sign = 1 if n > 0 else -1
            realized += sign * closing * (cost / abs(n) - Fraction(1, price))
            cost -= cost * closing / abs(n)
            n += sign * -closing
        opening = abs(contracts) - closing
        if opening:
            n += opening if contracts > 0 else -opening
            cost += Fraction(opening, price)
    engine.apply(mark("BTCUSD", str(mark_usd), ts=2))
    unrealized = (1 if n > 0 else -1) * (cost - Fraction(abs(n), mark_usd)) if n else 0
    (row,) = wire.final_accounts(engine)
    assert row["settlement"] == "BTC"
    equity = 10 + realized + unrealized
    # the engine rounds each close's PnL and the unrealized PnL down by < 1e-8 BTC, the
    # entry against the holder (negligible here) and 1/P to the nearest (ditto)
    assert abs(Fraction(row["equity"]) - equity) <= Fraction(len(trades) + 2, 10**8)
    if n:
        (pos,) = row["positions"]
        assert pos["side"] == ("long" if n > 0 else "short")
        assert Fraction(pos["qty"]) == abs(n)
        # the entry: the harmonic mean |n| / cost, to a cent or so (1/P rounded at 1e-8
        # of 10^8 USD per coin)
        assert abs(Fraction(pos["entry_price"]) - abs(n) / cost) < Fraction(1, 100)
    else:
        assert row["positions"] == []


@pytest.mark.parametrize(
    "event",
    [
        {"type": "mark", "ts": 1, "symbol": "BTCUSD", "mark_price": "0.009"},
        {"type": "mark", "ts": 1, "symbol": "BTCUSD", "mark_price": "1",
         "index_price": "0.00000001"},
        {"type": "fill", "fill_id": "f", "ts": 1, "account": "a", "symbol": "BTCUSD",
         "side": "buy", "qty": "1", "price": "0.001"},
        {"type": "depth", "ts": 1, "symbol": "BTCUSD", "bids": [["0.005", "1"]], "asks": []},
    ],
)  # fmt: skip
def test_an_inverse_price_under_a_cent_is_refused(event: dict[str, Any]) -> None:
    # x = 10^8 / P must stay within the bound of any price (10^10): P >= 0.01 USD
    engine = Engine(inverse_book())
    with pytest.raises(InvalidEvent, match=r"at least 0\.01 USD"):
        engine.apply(ev(event.pop("type"), **event))
    assert engine.accounts == {}
    assert "BTCUSD" not in engine.marks
    # at 0.01 exactly: x = 10^10, the bound, taken
    engine.apply(mark("BTCUSD", "0.01", ts=1))
    assert engine.marks["BTCUSD"] == raw("10000000000")


def test_a_usd_long_bankrupt_at_any_price_shows_the_largest_price() -> None:
    # a wallet of -1 BTC under a 1,000-contract long at 8,000 (worth 0.125 BTC): no USD
    # price makes 1,000 (1/8,000 - 1/P) cover 1 BTC (at most 0.125 as P grows), so x_B
    # < 0; a linear short in that state shows a price <= 0, this one 10^16 USD
    engine = Engine(inverse_book())
    engine.apply(coin("d1", "alice", "-1"))
    signals = engine.apply(fill("f1", "alice", "buy", "1000", "8000", symbol="BTCUSD"))
    (bank,) = of(BankruptcyDetected, signals)  # at its fill (valued at its entry)
    assert (bank.account, bank.side, bank.bankruptcy_price) == ("alice", "long", 10**24)
    assert bank.deficit == raw("1")
