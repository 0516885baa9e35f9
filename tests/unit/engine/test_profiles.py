"""Each venue's ranking formula, computed by hand from the venue's published text."""

import pytest

from streams.engine.adl import UNDERWATER_SCORE, QueueEntry, deleverage_plan, rank_queue
from streams.engine.profiles import PROFILES, RankInput, adl_fee, profile_named
from streams.engine.signals import BankruptPosition
from tests.helpers import raw

# long 2 @ 100, mark 120, isolated margin 20 -> backing equity 20 + 40 = 60
# PnL% = (240 - 200) / 200 = 0.2; effective leverage = 240 / 60 = 4
PROFIT = RankInput(qty=2, entry_price=100, mark_price=120, backing_equity=60, account_equity=120)
# long 2 @ 100, mark 90, backing 30: PnL% = -0.1; effective leverage = 180 / 30 = 6
LOSS = RankInput(qty=2, entry_price=100, mark_price=90, backing_equity=30, account_equity=30)
# short 2 @ 100, mark 80, backing 50: PnL% = (-160 + 200) / 200 = 0.2; leverage 160/50 = 3.2
SHORT = RankInput(qty=-2, entry_price=100, mark_price=80, backing_equity=50, account_equity=50)


@pytest.mark.parametrize("venue", ["bitmex", "bybit"])
def test_bitmex_family(venue):
    profile = profile_named(venue)
    assert profile.rank_score(PROFIT) == pytest.approx(0.2 * 4)
    assert profile.rank_score(LOSS) == pytest.approx(-0.1 / 6)  # losses divide
    assert profile.rank_score(SHORT) == pytest.approx(0.2 * 3.2)


def test_binance_leverage_pnl_the_worked_example_on_binances_forum():
    # dev.binance.vision/t/17801, the FAQ's formula applied to a trader's wallet:
    # "Unrealized Profit = 40.2; Wallet Balance = 4.27 => Pnl Percent = max(0,40.2) /
    # max(1,4.27) = 9.41 => Leverage Pnl = Pnl Percent x Margin Ratio = 9.41 x 13.42% =
    # 1.26". The margin ratio 13.42% is MM / (4.27 + 40.2): MM = 0.1342 x 44.47
    binance = profile_named("binance")
    mm = 0.1342 * 44.47
    row = RankInput(1, 100, 140.2, 44.47, 44.47, wallet=4.27, maintenance=mm)
    assert binance.rank_score(row) == pytest.approx(40.2 / 4.27 * 0.1342)
    assert round(float(binance.rank_score(row)), 2) == 1.26
    # a wallet under 1 counts as 1; the PnL is the backing equity less the wallet (the
    # account's cross PnL, every symbol's; an isolated position's own: its margin)
    small = RankInput(1, 100, 110, 10.5, 10.5, wallet=0.5, maintenance=2.1)
    assert binance.rank_score(small) == pytest.approx(10.0 / 1 * 2.1 / 10.5)
    # under water (wallet + PnL <= 0): margin ratio 0, the score 0
    gone = RankInput(1, 100, 50, -3.0, -3.0, wallet=47.0, maintenance=1.0)
    assert binance.rank_score(gone) == 0
    # a loss: the venue scores it max(0, .) = 0 and publishes no order among losses;
    # here it keeps its sign, so losses queue after every gain, the deepest last
    loss = RankInput(1, 100, 95, 20.0, 20.0, wallet=25.0, maintenance=1.0)
    deeper = RankInput(1, 100, 90, 15.0, 15.0, wallet=25.0, maintenance=1.0)
    assert 0 > binance.rank_score(loss) > binance.rank_score(deeper)
    assert binance.rank_score(loss) == pytest.approx(-5 / 25 * 1 / 20)
    with pytest.raises(ValueError, match="wallet"):
        binance.rank_score(PROFIT)


def test_okx_multiplies_losses_too():
    okx = profile_named("okx")
    assert okx.rank_score(PROFIT) == pytest.approx(0.8)
    assert okx.rank_score(LOSS) == pytest.approx(-0.1 * 6)


def test_hyperliquid_sorting_index():
    # (mark_price / entry_price) * (notional_position / account_value)
    hl = profile_named("hyperliquid")
    assert hl.rank_score(PROFIT) == pytest.approx(120 / 100 * 240 / 60)
    assert hl.rank_score(SHORT) == pytest.approx(100 / 80 * 160 / 50)  # short: inverted ratio
    assert hl.adl_price(bankruptcy_price=raw("650"), mark_price=raw("700")) == raw("700")


def test_bybit_charges_the_maker_fee_to_the_deleveraged_side():
    # "Maker fee will be charged to the positions of selected traders": 0.02% of 3 x 650
    bybit = profile_named("bybit")
    assert adl_fee(raw("3"), raw("650"), bybit.adl_fee_rate) == raw("0.39")
    assert adl_fee(raw("3"), raw("650"), profile_named("binance").adl_fee_rate) == 0


@pytest.mark.parametrize("venue", ["bybit", "binance", "okx", "hyperliquid"])
def test_lights_are_quintiles_of_positions(venue):
    profile = profile_named(venue)
    assert not profile.light_by_quantity
    # reach = place in the queue, 1 = first: ten positions, two per light
    assert [profile.light(i, 10) for i in range(1, 11)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert profile.light(1, 1) == 5
    # seven: 5 * (place - 1) / 7 floored -> 0, 0, 1, 2, 2, 3, 4
    assert [profile.light(i, 7) for i in range(1, 8)] == [5, 5, 4, 3, 3, 2, 1]


def test_bitmex_lights_go_by_cumulative_quantity_the_published_six_longs():
    # BitMEX "Auto-Deleveraging Examples" (https://www.bitmex.com/app/autoDeleveragingExamples):
    # "Let's assume within the system there are 6 longs ... Account | Quantity | PNL
    # Ranking: 1 10 3, 2 10 6, 3 20 1, 4 30 4, 5 20 5, 6 10 2. The system will next rank
    # these positions from the highest score to the lowest and calculate the quintile
    # associated in that position: 2 10 6 20%, 5 20 5 40%, 4 30 4 60%, 1 10 3 80%,
    # 6 10 2 80%, 3 20 1 100%." Percentile p -> lights 6 - 5p (20% = all five lit).
    published = {2: 20, 5: 40, 4: 60, 1: 80, 6: 80, 3: 100}
    entries = [
        QueueEntry(f"account-{a}", qty, float(ranking))
        for a, qty, ranking in [
            (1, 10, 3),
            (2, 10, 6),
            (3, 20, 1),
            (4, 30, 4),
            (5, 20, 5),
            (6, 10, 2),
        ]
    ]
    bitmex = profile_named("bitmex")
    assert bitmex.light_by_quantity
    queue = rank_queue(entries, bitmex)
    assert [e.account for e in queue] == [f"account-{a}" for a in published]
    assert [e.light for e in queue] == [6 - p // 20 for p in published.values()]
    # the same accounts by count would be quintiles of six: 5, 5, 4, 3, 2, 1
    assert [e.light for e in rank_queue(entries, profile_named("bybit"))] == [5, 5, 4, 3, 2, 1]


def test_each_venue_shows_the_light_on_its_own_scale():
    # Binance GET /fapi/v1/adlQuantile: "Values 0, 1, 2, 3, 4 shows the queue position and
    # possibility of ADL from low to high"; BitMEX, Bybit (adlRankIndicator) and OKX (adl)
    # show 1..5; Hyperliquid shows no indicator
    lights = [1, 2, 3, 4, 5]
    assert [profile_named("binance").venue_indicator(x) for x in lights] == [0, 1, 2, 3, 4]
    for venue in ("bitmex", "bybit", "okx"):
        assert [profile_named(venue).venue_indicator(x) for x in lights] == lights
    assert profile_named("hyperliquid").venue_indicator(5) is None


def test_published_deleverage_example():
    # SATIS docs, "ADL System": a short of 20 contracts is liquidated with bankruptcy price
    # 650 USDC; accounts 2 and 5 (10 contracts each) are first in the long queue. "All of
    # the 10 contracts that belong to Account 2 are closed. The remaining 10 is deducted
    # from account 5."
    queue = rank_queue(
        [
            QueueEntry("account-1", 30, 0.1),
            QueueEntry("account-2", 10, 0.9),
            QueueEntry("account-5", 10, 0.7),
            QueueEntry("account-3", 40, 0.05),
        ],
        profile_named("bitmex"),
    )
    bankrupt = [BankruptPosition("account-9", "X", "short", 20, raw("650"), deficit=0)]
    plan = deleverage_plan(bankrupt, {"long": queue}, profile_named("bitmex"), raw("700"))
    assert [(s.account, s.qty, s.price) for s in plan] == [
        ("account-2", 10, raw("650")),
        ("account-5", 10, raw("650")),
    ]


def test_queue_ties_break_by_size_then_account():
    queue = rank_queue(
        [QueueEntry("b", 5, 1.0), QueueEntry("a", 5, 1.0), QueueEntry("c", 9, 1.0)],
        profile_named("okx"),
    )
    assert [e.account for e in queue] == ["c", "a", "b"]


def test_every_profile_is_registered_with_a_sourced_docstring():
    assert set(PROFILES) == {"bitmex", "bybit", "binance", "okx", "hyperliquid"}
    for profile in PROFILES.values():
        doc = type(profile).__doc__ or ""
        assert "ranking" in doc.lower() or "sorting index" in doc.lower()


def test_under_water_counterparties_are_never_deleveraged():
    # account-u's own equity is gone (it is being liquidated): the plan stops before it
    queue = rank_queue(
        [QueueEntry("account-a", 5, 0.5), QueueEntry("account-u", 50, UNDERWATER_SCORE)],
        profile_named("bitmex"),
    )
    bankrupt = [BankruptPosition("account-x", "X", "short", 20, raw("650"), deficit=0)]
    plan = deleverage_plan(bankrupt, {"long": queue}, profile_named("bitmex"), raw("700"))
    assert [(s.account, s.qty) for s in plan] == [("account-a", 5)]


def test_the_plan_executes_on_the_tick_a_long_up_a_short_down():
    # a venue executes ADL at the bankrupt position's bankruptcy price *as it shows it*,
    # on its tick (Bybit, issue 13: 7,735.37 shown and executed as 7,735.5). Tick 0.5:
    # a long bankrupt at 650.1 -> 650.5 (up: reached no later); a short at 650.4 -> 650.0
    queue = rank_queue([QueueEntry("w", 30, 0.5)], profile_named("bybit"))
    bitmex = profile_named("bitmex")
    long = [BankruptPosition("l", "X", "long", 10, raw("650.1"), deficit=0)]
    short = [BankruptPosition("s", "X", "short", 10, raw("650.4"), deficit=0)]
    tick = raw("0.5")
    (step,) = deleverage_plan(long, {"short": queue}, bitmex, raw("640"), tick)
    assert step.price == raw("650.5")
    (step,) = deleverage_plan(short, {"long": queue}, bitmex, raw("660"), tick)
    assert step.price == raw("650")
    # already on the tick, or no tick: as computed
    (step,) = deleverage_plan(short, {"long": queue}, bitmex, raw("660"), raw("0.1"))
    assert step.price == raw("650.4")
    (step,) = deleverage_plan(long, {"short": queue}, bitmex, raw("640"))
    assert step.price == raw("650.1")
    # the fee is charged on the price executed: maker 0.02% of 10 x 650.5 (Bybit)
    (step,) = deleverage_plan(long, {"short": queue}, profile_named("bybit"), raw("640"), tick)
    assert step.fee == adl_fee(10, raw("650.5"), profile_named("bybit").adl_fee_rate)
