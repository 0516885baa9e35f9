"""When ADL starts, by the venue's rule: most venues when the insurance fund cannot cover
the projected loss; Hyperliquid against "the now underwater user", whatever the fund
(``VenueProfile.adl_on_negative_value``). Numbers by hand.

The book (one symbol XUSDT, MMR 1%, a fund of 1,000,000 that never runs out):
L deposits 24 and buys 3 at 100: bankrupt below 100 - 24 / 3 = 92. Shorts A 2 @ 100
(deposit 50), B 1 @ 100 (1,000), E 4 @ 90 (1,000); long C 4 @ 90 (1,000).
"""

from __future__ import annotations

import pytest

from streams.engine.engine import Engine
from streams.engine.signals import AdlStage, AdlTriggered, FundProjection, Signal
from tests.helpers import mark, one_bankruptcy_book, raw


def book(profile: str) -> Engine:
    return one_bankruptcy_book("1000000", profile)


def stages(signals: list[Signal]) -> list[AdlTriggered]:
    return [s for s in signals if isinstance(s, AdlTriggered)]


def test_hyperliquid_warns_when_a_5pct_fall_would_put_an_account_under_water() -> None:
    # at 96 L holds 24 - 12 = 12; 5% lower (91.2) it would hold 24 - 26.4 < 0
    hl, bybit = book("hyperliquid"), book("bybit")
    [imminent] = stages(hl.apply(mark("XUSDT", "96", 1_000)))
    assert imminent.stage is AdlStage.IMMINENT
    assert imminent.rule == "negative_value"
    assert imminent.plan == ()
    # the smallest fall that makes a deficit: to L's bankruptcy price, (96 - 92) / 96
    assert imminent.adl_distance_pct == pytest.approx(100 * 4 / 96, abs=1e-3)
    assert stages(bybit.apply(mark("XUSDT", "96", 1_000))) == []  # the fund covers it all


def test_hyperliquid_deleverages_the_underwater_account_whatever_the_fund() -> None:
    """At 90 L's equity is 24 - 30 = -6: triggered on Hyperliquid with a fund of 1M.
    Queue (Hyperliquid: entry/mark x notional / account value, for a short): A
    (100/90) x 180 / 70 = 2.86, E 1 x 360 / 1,000 = 0.36, B (100/90) x 90 / 1,010 = 0.10:
    A's 2 and 1 of E's, at the mark. Second opinion: D = 6; the shorts' profit at 90:
    A 20, B 10, E 0: W = 30, lambda = 0.2; the queue closes 2 x 10 + 1 x 0 = 20 of
    profit: kappa 20 / 6; at the mark no equity moves."""
    hl, bybit = book("hyperliquid"), book("bybit")
    hl.apply(mark("XUSDT", "96", 1_000))
    signals = hl.apply(mark("XUSDT", "90", 2_000))
    [trigger] = stages(signals)
    assert trigger.stage is AdlStage.TRIGGERED
    assert trigger.adl_distance_pct == 0.0
    assert trigger.fund_balance > trigger.projected_loss  # the fund was never short
    assert [(s.account, s.qty, s.price) for s in trigger.plan] == [
        ("A", raw("2"), raw("90")),
        ("E", raw("1"), raw("90")),
    ]
    o = trigger.second_opinion
    assert o is not None
    assert (o.deficit, o.winners_profit, o.queue_haircut) == (raw("6"), raw("30"), raw("20"))
    assert o.equity_moved == 0
    assert o.pro_rata_ratio == pytest.approx(0.2)
    assert o.utilisation == pytest.approx(20 / 6)
    projection = next(s for s in signals if isinstance(s, FundProjection))
    [symbol] = projection.symbols
    assert symbol.adl_distance_long_pct == 0.0  # a long is under water now
    # bybit waits for its fund: 6 of loss against 1,000,000
    assert stages(bybit.apply(mark("XUSDT", "90", 2_000))) == []


def test_hyperliquid_clears_when_no_account_is_near_water() -> None:
    hl = book("hyperliquid")
    hl.apply(mark("XUSDT", "96", 1_000))
    [cleared] = stages(hl.apply(mark("XUSDT", "100", 2_000)))  # 5% lower: 95, L holds 9
    assert cleared.stage is AdlStage.CLEARED
