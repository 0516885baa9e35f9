"""Fund projection pieces, by hand."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.fixed import SCALE
from streams.engine.fund import (
    FundHistory,
    adl_distance,
    book_close_loss,
    coverage_ratio,
    index_curve,
    ladder,
    shocked_price,
    shocked_prices,
)
from streams.engine.index import DeficitIndex

U = SCALE  # one unit (a dollar, a coin)


def test_book_close_loss_walks_levels_worst_position_first():
    # longs with bankruptcy 100 (3 units) and 97 (1 unit) sell into bids 99 x1, 98 x1, 96 x1
    # the one bankrupt at 100 fills first: 1 @ 99 (loss 1), 1 @ 98 (loss 2), 1 @ 96 (loss 4)
    # the one at 97 finds the book empty: closes at the last level, 96 (loss 1)
    loss = book_close_loss(
        [(97 * U, 1 * U), (100 * U, 3 * U)], [(99 * U, U), (98 * U, U), (96 * U, U)], True
    )
    assert loss == (1 + 2 + 4 + 1) * U


def test_book_close_loss_short_side_and_surplus_ignored():
    # short bankrupt at 100 buys 2 from asks 99 x1 (surplus, not counted) and 103 x5 (loss 3)
    assert book_close_loss([(100 * U, 2 * U)], [(99 * U, U), (103 * U, 5 * U)], False) == 3 * U


def test_adl_distance_single_long():
    # one long of 1 unit bankrupt below 18,000, mark 20,000, fund 1,000, nothing lost yet:
    # loss > 1000 once 18000 - p > 1000, i.e. p < 17000: a 15% fall
    longs = DeficitIndex(is_long=True)
    longs.put("a", 18_000 * U, U)
    assert adl_distance(0, 1_000 * U, index_curve(longs, 20_000 * U), True) == pytest.approx(
        0.15, abs=1e-6
    )
    shorts = DeficitIndex(is_long=False)
    assert (
        adl_distance(0, 1_000 * U, index_curve(shorts, 20_000 * U), False) is None
    )  # nobody short
    assert adl_distance(2_000 * U, 1_000 * U, index_curve(longs, 20_000 * U), True) == 0.0


def test_ladder_moves_one_symbol_both_sides():
    # long 1 @ B 90, short 1 @ B 110, mark 100, 5 lost elsewhere.
    # -20%: p=80, long loses 10 -> 15. +20%: p=120, short loses 10 -> 15. 0%: 5.
    longs, shorts = DeficitIndex(True), DeficitIndex(False)
    longs.put("l", 90 * U, U)
    shorts.put("s", 110 * U, U)
    points = ladder(
        5 * U, index_curve(longs, 100 * U), index_curve(shorts, 100 * U), (-0.2, 0.0, 0.2)
    )
    assert points == [(-0.2, 15 * U), (0.0, 5 * U), (0.2, 15 * U)]


def test_runway_from_recent_drawdown():
    history = FundHistory(window_ms=60_000)
    history.record(0, 1_000 * U)
    history.record(10_000, 900 * U)  # 100 in 10 s: 10 per second -> 90 s left
    assert history.runway_seconds() == pytest.approx(90.0)
    history.record(80_000, 950 * U)  # the first snapshot leaves the window; now rising
    assert history.runway_seconds() is None
    assert coverage_ratio(900 * U, 300 * U) == 3.0
    assert coverage_ratio(900 * U, 0) is None


positions = st.lists(
    st.tuples(st.integers(10**8, 10**12), st.integers(1, 10**10)), min_size=0, max_size=15
)


@given(
    positions,
    st.tuples(st.integers(10**8, 10**12), st.integers(1, 10**10)),
    st.integers(10**8, 10**12),
    st.integers(0, 10**14),
)
def test_adding_a_bankruptcy_never_improves_the_projection(existing, extra, mark, fund):
    index = DeficitIndex(is_long=True)
    for i, (b, q) in enumerate(existing):
        index.put(f"p{i}", b, q)
    before_loss = index.deficit_at(mark)
    no_shorts = index_curve(DeficitIndex(False), mark)
    before_ladder = ladder(before_loss, index_curve(index, mark), no_shorts, (-0.3, -0.1, 0.1))
    before_distance = adl_distance(before_loss, fund, index_curve(index, mark), True)
    index.put("extra", *extra)
    after_loss = index.deficit_at(mark)
    after_ladder = ladder(after_loss, index_curve(index, mark), no_shorts, (-0.3, -0.1, 0.1))
    after_distance = adl_distance(after_loss, fund, index_curve(index, mark), True)
    assert after_loss >= before_loss
    assert all(a[1] >= b[1] for a, b in zip(after_ladder, before_ladder, strict=True))
    if before_distance is not None:
        assert after_distance is not None
        assert after_distance <= before_distance + 1e-9


@given(
    st.lists(st.tuples(st.integers(1, 40_000), st.integers(1, 50)), max_size=20),
    st.booleans(),
    st.integers(1_000, 30_000),
    st.integers(0, 2_000_000),
    st.integers(0, 500_000),
)
def test_adl_distance_from_the_index_edge_equals_asking_the_curve(
    entries, is_long, mark, fund, loss_elsewhere
):
    """The search over an index's curve compares prices with one ``budget_edge``; asking
    the curve at every bisection step (any other curve's way) gives the same float."""
    index = DeficitIndex(is_long=is_long)
    for k, (price, qty) in enumerate(entries):
        index.put(f"k{k}", price * U // 10, qty * U // 10)
    curve = index_curve(index, mark * U)
    loss = loss_elsewhere * U + curve(0.0)
    asked_each_step = lambda move: curve(move)  # noqa: E731  # not an index curve
    assert adl_distance(loss, fund * U, curve, is_long) == adl_distance(
        loss, fund * U, asked_each_step, is_long
    )


@given(
    st.lists(st.tuples(st.integers(1, 40_000), st.integers(1, 50)), max_size=20),
    st.lists(st.tuples(st.integers(1, 40_000), st.integers(1, 50)), max_size=20),
    st.integers(1_000, 30_000),
    st.lists(st.floats(min_value=-0.99, max_value=10.0), max_size=20),
)
def test_a_ladder_over_index_curves_equals_asking_each_shock(longs, shorts, mark, shocks):
    """The ladder stops asking a side past its first zero deficit (a monotone curve);
    asked at every shock (any other curve's way) it gives the same points, in the
    shocks' order, whatever that order is."""
    sides = []
    for is_long, entries in ((True, longs), (False, shorts)):
        index = DeficitIndex(is_long=is_long)
        for k, (price, qty) in enumerate(entries):
            index.put(f"k{k}", price * U // 10, qty * U // 10)
        sides.append(index_curve(index, mark * U))
    each = [lambda move, c=c: c(move) for c in sides]  # not index curves: asked at every shock
    loss = 7 * U + sides[0](0.0) + sides[1](0.0)
    assert ladder(loss, *sides, shocks) == ladder(loss, *each, shocks)


@given(
    st.integers(min_value=1, max_value=2**62),
    st.lists(st.floats(min_value=-1.0, max_value=10.0), max_size=20),
)
def test_many_shocked_prices_at_once_are_each_one_alone(mark, shocks):
    # a summary's grid is priced in one numpy pass: the same integers as one at a time,
    # halves included (both round half to even), never below 1
    assert shocked_prices(mark, shocks) == [shocked_price(mark, s) for s in shocks]


def test_shocked_prices_by_hand():
    # 2.5 rounds to 2 and 3.5 to 4 (half to even); a fall past zero stops at one raw unit
    assert shocked_prices(5, [-0.5, -0.3, -1.0, 0.0]) == [2, 4, 1, 5]


@given(
    st.lists(st.tuples(st.integers(1, 40_000), st.integers(1, 50)), max_size=12),
    st.lists(st.tuples(st.integers(0, 15), st.integers(1, 40_000), st.integers(0, 50)), max_size=8),
    st.booleans(),
    st.integers(1_000, 30_000),
    st.integers(0, 2_000_000),
    st.integers(0, 500_000),
)
def test_the_adl_distance_asked_again_after_a_change_is_the_changed_sides(
    entries, changes, is_long, mark, fund, loss_elsewhere
):
    """The budget stays the same from ask to ask (the loss elsewhere is held), so the
    index's kept budget edges and the kept distances by edge would answer every ask
    after the first: each answer must still be what asking the curve at every step
    gives at that moment, changes in between (a qty of 0 removes the entry)."""
    index = DeficitIndex(is_long=is_long)
    for k, (price, qty) in enumerate(entries):
        index.put(f"k{k}", price * U // 10, qty * U // 10)
    curve = index_curve(index, mark * U)
    asked_each_step = lambda move: curve(move)  # noqa: E731  # not an index curve
    for key, price, qty in [*changes, (0, 1, 0)]:
        loss = loss_elsewhere * U + curve(0.0)
        assert adl_distance(loss, fund * U, curve, is_long) == adl_distance(
            loss, fund * U, asked_each_step, is_long
        )
        index.put(f"k{key}", price * U // 10, qty * U // 10)
