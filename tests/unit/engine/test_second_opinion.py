"""A triggered plan's second opinion, against numbers worked out by hand.

The definitions (streams/engine/second_opinion.py) follow Chitra, arXiv 2512.01112 and
2602.15182 (shortfall D, winners' profit W, pro-rata haircut lambda = min(1, D / W),
overshoot and utilisation kappa of the queue against the cheapest haircut min(D, W)) and
Drift v2's bankruptcy resolution (``calculate_funding_rate_deltas_to_resolve_bankruptcy``
in drift-labs/protocol-v2: the loss over long + short base, rounded up).
"""

from __future__ import annotations

import pytest

from streams.engine.engine import Engine
from streams.engine.second_opinion import SideWinners, second_opinion
from streams.engine.signals import AdlStage, AdlTriggered, DeleverageStep
from tests.helpers import fill, mark, one_bankruptcy_book, one_tier, raw


def step(account: str, side: str, qty: str, price: str) -> DeleverageStep:
    return DeleverageStep(account, "X", side, raw(qty), raw(price), 1.0, 0, "L")


def test_a_plan_against_its_alternatives_by_hand() -> None:
    # mark 100; a long went bankrupt at 110; the plan closes shorts at 110:
    # A 2 units (entry 130: +30 a unit), B 1 of its 5 units (entry 120: +20 a unit)
    plan = [step("A", "short", "2", "110"), step("B", "short", "1", "110")]
    winners = {
        # shorts A 2 @ 130 (+60), B 5 @ 120 (+100), C 4 @ 90 (-40: not a winner)
        "short": SideWinners(
            raw("160"), (raw("100"), raw("60")), raw("11"), (raw(5), raw(4), raw(2))
        ),
        # longs: the bankrupt 3 and D 4 @ 80 (+80)
        "long": SideWinners(raw("80"), (raw("80"),), raw("7"), (raw(4), raw(3))),
    }
    o = second_opinion(plan, raw("100"), raw("30"), winners, {"A": 30.0, "B": 20.0})
    assert o.deficit == raw("30")
    assert o.winners_profit == raw("160")  # the plan's counterparty side only
    assert o.queue_haircut == raw("80")  # 2 x 30 + 1 x 20
    assert o.equity_moved == raw("30")  # (2 + 1) x (110 - 100): the shorts buy back at 110
    assert o.minimal_haircut == raw("30")  # min(D, W)
    assert o.overshoot == raw("50")  # 80 - 30
    assert o.utilisation == pytest.approx(80 / 30)
    assert o.queue_top_shares == (pytest.approx(60 / 80), 1.0)
    assert o.pro_rata_ratio == pytest.approx(30 / 160)
    assert o.pro_rata_top_shares == (pytest.approx(100 / 160), pytest.approx(160 / 160))
    # by size: 30 over 7 + 11 = 18 base units: 1.6666... a unit, rounded up to 1e-8
    assert o.size_charge == raw("1.66666667")
    assert o.size_top_shares == (pytest.approx(5 / 18), pytest.approx((5 + 4 + 4 + 3 + 2) / 18))


def test_no_winners_no_ratio_and_a_queue_at_the_mark_moves_no_equity() -> None:
    plan = [step("A", "short", "2", "100")]  # closed at the mark (Hyperliquid)
    o = second_opinion(plan, raw("100"), raw("30"), {}, {"A": -5.0})
    assert (o.queue_haircut, o.equity_moved, o.winners_profit, o.minimal_haircut) == (0, 0, 0, 0)
    assert (o.overshoot, o.utilisation, o.pro_rata_ratio) == (0, None, None)
    assert (o.queue_top_shares, o.size_charge) == ((None, None), None)


def test_pro_rata_is_capped_at_all_of_the_winners_profit() -> None:
    plan = [step("A", "long", "1", "90")]  # a long counterparty sells at 90, mark 100
    winners = {"long": SideWinners(raw("20"), (raw("20"),), raw("1"), (raw("1"),))}
    o = second_opinion(plan, raw("100"), raw("50"), winners, {"A": 20.0})
    assert (o.pro_rata_ratio, o.minimal_haircut) == (1.0, raw("20"))  # W < D
    assert (o.equity_moved, o.queue_haircut) == (raw("10"), raw("20"))
    assert (o.overshoot, o.utilisation) == (0, 1.0)
    assert o.size_charge == raw("50")  # 50 over 1 unit


def test_an_account_that_gains_on_balance_moves_no_equity() -> None:
    # A is closed against a bankrupt long at 110 (loses 10) and a liquidating short at
    # its bankruptcy price 80, below the mark (gains 20): on balance A gains
    plan = [step("A", "short", "1", "110"), step("A", "short", "1", "80")]
    o = second_opinion(plan, raw("100"), raw("1"), {}, {"A": 1.0})
    assert o.equity_moved == 0


def triggered(signals: list[object]) -> AdlTriggered:
    found = [s for s in signals if isinstance(s, AdlTriggered) and s.stage is AdlStage.TRIGGERED]
    assert len(found) == 1
    return found[0]


def test_the_engine_gives_a_triggered_plan_its_second_opinion() -> None:
    """One bankrupt long; the numbers by hand:

    L deposits 24 and buys 3 at 100 (bankruptcy price 100 - 24 / 3 = 92); at mark 80 its
    equity is 24 - 60 = -36. The fund holds 10: shortfall 26, the symbol's loss 36, D = 26.
    Shorts: A 2 @ 100 (deposit 50), B 1 @ 100 (1,000), E 4 @ 90 (1,000); long C 4 @ 90.
    At 80 the shorts' profits are A 40, B 20, E 40: W = 100, lambda = 0.26.
    Queue (Bybit: PnL% x |mark value| / equity): A 0.2 x 160 / 90 = 0.356 first,
    E (10/90) x 320 / 1040 = 0.034, then B 0.2 x 80 / 1020 = 0.016. The plan closes
    A's 2 and 1 of E's at 92: profit closed 2 x 20 + 1 x 10 = 50; equity moved
    3 x (92 - 80) = 36; overshoot 50 - 26 = 24; kappa 50 / 26.
    By size: 26 over 7 long + 7 short = 1.857142857... a unit, rounded up.
    """
    engine = one_bankruptcy_book("10")
    planned = engine.plan_now("XUSDT")
    assert planned is not None
    assert (planned[0].plan, planned[0].second_opinion) == ((), None)  # nobody bankrupt
    trigger = triggered(engine.apply(mark("XUSDT", "80", 1_000)))
    assert [(s.account, s.qty, s.price) for s in trigger.plan] == [
        ("A", raw("2"), raw("92")),
        ("E", raw("1"), raw("92")),
    ]
    o = trigger.second_opinion
    assert o is not None
    assert o.deficit == raw("26")
    assert o.winners_profit == raw("100")
    assert o.pro_rata_ratio == pytest.approx(0.26)
    assert o.pro_rata_top_shares == (pytest.approx(0.4), 1.0)
    assert o.queue_haircut == raw("50")
    assert o.equity_moved == raw("36")
    assert o.overshoot == raw("24")
    assert o.utilisation == pytest.approx(50 / 26)
    assert o.queue_top_shares == (pytest.approx(40 / 50), 1.0)
    assert o.size_charge == raw("1.85714286")
    assert o.size_top_shares == (pytest.approx(4 / 14), 1.0)
    # the read API's plan now: the same plan and opinion, the stage as announced
    now = engine.plan_now("XUSDT")
    assert now is not None
    assert now[1] is AdlStage.TRIGGERED
    assert (now[0].plan, now[0].second_opinion) == (trigger.plan, trigger.second_opinion)


def test_a_plan_now_without_a_trigger_has_nothing_to_cover() -> None:
    """The fund of 1,000 covers L's 36: no stage, but the plan a trigger would run is
    there; D = 0, so no haircut is needed and the queue's is all overshoot."""
    engine = one_bankruptcy_book("1000")
    signals = engine.apply(mark("XUSDT", "80", 1_000))
    assert not [s for s in signals if isinstance(s, AdlTriggered)]
    now = engine.plan_now("XUSDT")
    assert now is not None
    planned, stage = now
    assert stage is None
    assert [(s.account, s.qty) for s in planned.plan] == [("A", raw("2")), ("E", raw("1"))]
    o = planned.second_opinion
    assert o is not None
    assert (o.deficit, o.minimal_haircut, o.queue_haircut) == (0, 0, raw("50"))
    assert (o.overshoot, o.utilisation, o.pro_rata_ratio) == (raw("50"), None, 0.0)


def test_the_largest_position_a_venue_can_send_does_not_wrap_the_sums() -> None:
    """Two shorts of 10,000,000,000 at 10,000,000,000 (the decoder's bounds), mark at
    half: each is 5e19 in profit, 5e27 raw units: past int64 (9.2e18), where a numpy
    sum wraps to a negative number."""
    engine = Engine(one_tier(symbol="XUSDT"))
    engine.apply(mark("XUSDT", "10000000000", 0))
    for k in (1, 2):
        engine.apply(fill(f"f{k}", f"S{k}", "sell", "10000000000", "10000000000", "XUSDT"))
    engine.apply(mark("XUSDT", "5000000000", 1_000))
    w = engine.winners("XUSDT")["short"]
    each = 5 * 10**19 * 10**8
    assert w.profit == pytest.approx(2 * each, rel=1e-15)  # floats: a projection
    assert w.top_profits == (pytest.approx(each, rel=1e-15),) * 2
    assert w.size == 2 * 10**10 * 10**8
    assert w.top_sizes == (10**18, 10**18)
