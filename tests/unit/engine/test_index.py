"""The indexes against brute force over the same positions."""

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.fixed import SCALE
from streams.engine.index import (
    _LAST_SLOT,
    DeficitIndex,
    Fenwick,
    ThresholdIndex,
    _threshold_bucket,
    bucket_start,
    price_bucket,
)

prices = st.integers(min_value=1, max_value=10**14)
near = st.integers(min_value=1, max_value=10**6)  # prices a few buckets apart
entry = st.tuples(st.text("abcdefgh", min_size=1, max_size=3), prices, st.integers(1, 10**12))


def brute_deficit(entries: dict[str, tuple[int, int]], price: int, is_long: bool) -> int:
    total = Fraction(0)
    for b, q in entries.values():
        gap = b - price if is_long else price - b
        if gap > 0:
            total += Fraction(q * gap, SCALE)
    return -((-total.numerator) // total.denominator)  # ceil


def update(
    index: DeficitIndex, truth: dict[str, tuple[int, int]], key: str, b: int, q: int
) -> None:
    """Put (or, for some, remove) an entry in the index and in the brute-force copy."""
    if key in truth and q % 3 == 0:  # some updates are removals
        index.remove(key)
        del truth[key]
    else:
        index.put(key, b, q)
        truth[key] = (b, q)


def updated_asking_between(
    is_long: bool, ops: list[tuple[str, int, int]], watched: list[int]
) -> tuple[DeficitIndex, dict[str, tuple[int, int]]]:
    """Apply ``ops`` to an index and its brute-force copy, asking ``watched`` after each."""
    index = DeficitIndex(is_long)
    truth: dict[str, tuple[int, int]] = {}
    for op in ops:
        update(index, truth, *op)
        for p in watched:
            assert index.deficit_at(p) == brute_deficit(truth, p, is_long)
    return index, truth


@settings(max_examples=200)
@given(st.booleans(), st.lists(entry, max_size=40), st.lists(prices, min_size=1, max_size=10))
def test_deficit_matches_brute_force_after_updates(is_long, ops, queries):
    _check_deficits(is_long, ops, queries)


# bankruptcy prices are Python ints: some past 2**63, where the tree's last slot holds
# every one of them (a short with a huge margin; f819013), some around that edge
wide = st.one_of(prices, st.integers(2**63 - 10**6, 2**63 + 10**6), st.integers(2**63, 10**22))
wide_entry = st.tuples(st.text("abcd", min_size=1, max_size=2), wide, st.integers(1, 10**12))


@settings(max_examples=200)
@given(st.booleans(), st.lists(wide_entry, max_size=30), st.lists(wide, min_size=1, max_size=10))
def test_prices_past_2_63_match_brute_force(is_long, ops, queries):
    _check_deficits(is_long, ops, queries)


@given(
    st.lists(st.tuples(wide, st.integers(1, 10**9)), max_size=25),
    st.booleans(),
    st.integers(-(10**6), 10**25),
    st.lists(wide, min_size=1, max_size=20),
)
def test_budget_edge_past_2_63_splits_the_prices_as_deficit_at_does(
    entries, is_long, budget, asked
):
    _check_budget_edge(entries, is_long, budget, asked)


def _check_deficits(is_long, ops, queries):
    """After ``ops`` (puts and removes), ``deficit_at`` equals brute force at the
    ``queries`` and at each entry's price and its neighbours (bucket edges)."""
    index = DeficitIndex(is_long)
    truth: dict[str, tuple[int, int]] = {}
    for op in ops:
        update(index, truth, *op)
    # also query at the entries' own prices and their neighbours (bucket edges)
    points = list(queries) + [b + d for b, _ in truth.values() for d in (-1, 0, 1)]
    for p in points:
        if p > 0:
            assert index.deficit_at(p) == brute_deficit(truth, p, is_long)


# prices within ~0.1% of each other (two or three buckets): most re-puts of a key move
# its entry inside one bucket, which ``put`` adds to the tree in one walk
close = st.integers(min_value=10**8, max_value=10**8 + 10**5)
close_entry = st.tuples(st.sampled_from("abcd"), close, st.integers(1, 10**12))


@settings(max_examples=200)
@given(st.booleans(), st.lists(close_entry, max_size=60), st.lists(close, min_size=1, max_size=10))
def test_entries_moving_within_a_bucket_keep_the_sums_exact(is_long, ops, queries):
    index, truth = updated_asking_between(is_long, ops, queries)
    points = [b + d for b, _ in truth.values() for d in (-1, 0, 1)]
    for p in points:
        assert index.deficit_at(p) == brute_deficit(truth, p, is_long)


@settings(max_examples=200)
@given(st.booleans(), st.lists(entry, max_size=40), st.lists(prices, min_size=1, max_size=20))
def test_deficits_asked_between_updates_stay_exact(is_long, ops, watched):
    # a fund check asks the same few prices after every event: the answers kept are
    # updated by each change (up to 16 prices; past that they are forgotten)
    updated_asking_between(is_long, ops, watched)


@settings(max_examples=200)
@given(
    st.booleans(),
    st.lists(st.tuples(st.text("abcdefgh", min_size=1, max_size=3), near, st.integers(1, 10**9))),
    st.lists(st.lists(near, max_size=12), min_size=1, max_size=4),
)
def test_a_whole_curve_at_once_matches_brute_force_between_updates(is_long, ops, curves):
    # a summary asks a grid of prices at once (``deficits_at``: a walk of the tree per
    # price, or its bucket view kept until a change, whichever is cheaper); entries a few
    # buckets apart so prices fall inside held buckets, at their edges and between
    # them, and each curve asked after a few more updates, by both routes
    index = DeficitIndex(is_long)
    truth: dict[str, tuple[int, int]] = {}
    for round_, asked in enumerate(curves):
        for op in ops[round_ :: len(curves)]:
            update(index, truth, *op)
        points = sorted({*asked, *(b + d for b, _ in truth.values() for d in (-1, 0, 1))} - {0})
        expected = [brute_deficit(truth, p, is_long) for p in points]
        assert index.deficits_at(points) == expected
        assert [index._deficit(n) for n in index._numerators_by_tree(points)] == expected
        assert [index._deficit(n) for n in index._numerators_by_view(points)] == expected
        assert index.deficits_at(points) == expected  # the kept view answers the same
        assert index.deficits_at(points[:1]) == expected[:1]  # one price: by the view kept


def test_deficit_hand_example():
    # longs: 2 @ B=100, 1 @ B=90. At p=95: 2 * (100 - 95) = 10. At 80: 2*20 + 1*10 = 50.
    index = DeficitIndex(is_long=True)
    index.put("a", 100 * SCALE, 2 * SCALE)
    index.put("b", 90 * SCALE, 1 * SCALE)
    assert index.deficit_at(95 * SCALE) == 10 * SCALE
    assert index.deficit_at(80 * SCALE) == 50 * SCALE
    assert index.deficit_at(100 * SCALE) == 0
    assert [k for _, k, _ in index.beyond(95 * SCALE)] == ["a"]


@settings(max_examples=200)
@given(st.booleans(), st.lists(entry, max_size=40), st.lists(prices, min_size=1, max_size=10))
def test_the_entries_past_a_price_are_those_of_brute_force_worst_first(is_long, ops, asked):
    """``beyond``: every entry strictly past the price (above it for longs, below for
    shorts), the farthest first, none where nothing is past it."""
    index = DeficitIndex(is_long)
    truth: dict[str, tuple[int, int]] = {}
    for op in ops:
        update(index, truth, *op)
    for price in [*asked, *(b for b, _ in truth.values())]:
        past = sorted(
            (b, key, q) for key, (b, q) in truth.items() if (b > price if is_long else b < price)
        )
        assert list(index.beyond(price)) == (past[::-1] if is_long else past)


def test_fenwick_prefix_sums():
    # slot 0: (5, 50); slot 3: (2, 20) then (-1, -10) -> (1, 10); slot 9: (1, 100)
    tree = Fenwick(10)
    for slot, amount, weighted in [(0, 5, 50), (3, 2, 20), (9, 1, 100), (3, -1, -10)]:
        tree.add(slot, amount, weighted)
    prefixes = [tree.prefix(i) for i in (-1, 0, 2, 3, 9)]
    assert prefixes == [(0, 0), (5, 50), (5, 50), (6, 60), (7, 160)]


@given(
    st.integers(1, 70),
    st.lists(
        st.tuples(
            st.integers(0, 69), st.integers(-50, 50), st.integers(0, 69), st.integers(-50, 50)
        ),
        max_size=20,
    ),
)
def test_two_slots_added_in_one_walk_give_the_prefix_sums_of_plain_sums(size, moves):
    """``add_two`` against a list of per-slot totals summed by hand (slots past the
    tree's size wrap around)."""
    tree = Fenwick(size)
    totals = [0] * size
    for slot, amount, other, other_amount in moves:
        slot, other = slot % size, other % size
        tree.add_two(slot, amount, 3 * amount, other, other_amount, 3 * other_amount)
        totals[slot] += amount
        totals[other] += other_amount
    for end in range(size):
        expected = sum(totals[: end + 1])
        assert tree.prefix(end) == (expected, 3 * expected)


@given(st.lists(prices, min_size=2, max_size=50))
def test_price_buckets_are_monotone(values):
    values.sort()
    buckets = [price_bucket(v) for v in values]
    assert buckets == sorted(buckets)


@given(
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.lists(prices, min_size=1, max_size=3),
        max_size=30,
    ),
    prices,
    prices,
    st.integers(0, 10**6),
)
def test_threshold_crossings_match_brute_force(thresholds, m0, m1, tol):
    index = ThresholdIndex()
    for key, ts in thresholds.items():
        index.put(key, tuple(ts), tol, m0)
    low, high = sorted((m0, m1))
    expected = {
        k
        for k, ts in thresholds.items()
        for t in ts
        if low <= t - tol <= high or low <= t + tol <= high or t - tol <= m0 <= t + tol
    }
    assert index.crossed(m0, m1) == expected


@given(
    st.lists(
        st.tuples(
            st.text("abcd", min_size=1, max_size=2),
            st.lists(near, max_size=3),  # empty: the key is removed
            st.integers(0, 2_000),
            near,
        ),
        max_size=40,
    ),
    near,
    near,
)
def test_threshold_crossings_after_puts_and_removes_match_brute_force(puts, m0, m1):
    """Keys put again (new thresholds, tolerance, mark) and removed: the index answers
    from its latest put of each key only (a stale end left in a bucket would answer).
    Prices up to 1e6 raw: a bucket is ~100 raw units wide there, so ticks span a few
    buckets to thousands, and ends sit at both edges of a tick's buckets."""
    index = ThresholdIndex()
    latest: dict[str, tuple[list[int], int, int]] = {}
    for key, ts, tol, mark in puts:
        index.put(key, tuple(ts), tol, mark)
        latest[key] = (ts, tol, mark)
    low, high = sorted((m0, m1))
    expected = {
        k
        for k, (ts, tol, mark) in latest.items()
        for t in ts
        if low <= t - tol <= high or low <= t + tol <= high or t - tol <= mark <= t + tol
    }
    assert index.crossed(m0, m1) == expected
    assert len(index) == sum(1 for ts, _, _ in latest.values() if ts)


def test_a_tick_takes_the_ends_of_its_edge_buckets_that_it_crossed_only():
    """At 1e12 raw a bucket is ~1e8 raw wide: ends 1 raw unit outside the tick share a
    bucket with its ends and must stay out."""
    mark = 10**12
    index = ThresholdIndex()
    far = 2 * mark  # every put's mark: no key is in a zone
    index.put("just-below", (mark - 1,), 0, far)
    index.put("at-low", (mark,), 0, far)
    index.put("inside", (mark + 3,), 0, far)
    index.put("at-high", (mark + 5,), 0, far)
    index.put("just-above", (mark + 6,), 0, far)
    assert index.crossed(mark, mark + 5) == {"at-low", "inside", "at-high"}
    assert index.crossed(mark + 5, mark) == {"at-low", "inside", "at-high"}
    index.put("inside", (mark + 10**9,), 0, far)  # moved ten buckets up
    assert index.crossed(mark, mark + 5) == {"at-low", "at-high"}
    assert index.crossed(mark - 1, mark + 10**9) == {
        "just-below",
        "at-low",
        "at-high",
        "just-above",
        "inside",
    }
    # a tick over several buckets: its first and last ones filtered too
    assert _threshold_bucket(mark - 1) == _threshold_bucket(mark)
    assert _threshold_bucket(mark + 10**9) == _threshold_bucket(mark + 10**9 + 1)
    assert index.crossed(mark, mark + 10**9 - 1) == {"at-low", "at-high", "just-above"}
    assert index.crossed(mark + 1, mark + 10**9) == {"inside", "at-high", "just-above"}


@given(
    st.lists(st.tuples(st.integers(-(10**6), 10**13), st.integers(1, 10**9)), max_size=25),
    st.booleans(),
    st.integers(-(10**6), 10**14),
    st.lists(st.integers(1, 2 * 10**13), min_size=1, max_size=20),
)
def test_budget_edge_splits_the_prices_as_deficit_at_does(entries, is_long, budget, asked):
    _check_budget_edge(entries, is_long, budget, asked)


# a fee to close r of 0 to 1%: the side's slope 1 - r (longs) or 1 + r (shorts), x SCALE
fee_rates = st.integers(0, SCALE // 100)


@given(
    st.lists(st.tuples(st.integers(-(10**6), 10**13), st.integers(1, 10**9)), max_size=25),
    st.booleans(),
    fee_rates,
    st.integers(-(10**6), 10**14),
    st.lists(st.integers(1, 2 * 10**13), min_size=1, max_size=20),
)
def test_a_sloped_index_is_its_sums_times_the_slope(entries, is_long, rate, budget, asked):
    """With a fee to close every deficit is f x sum |q| (B - p) (rounded up once), one
    price or a whole curve at a time, and the budget edge still splits the prices as
    ``deficit_at`` does."""
    slope = SCALE - rate if is_long else SCALE + rate
    index = DeficitIndex(is_long=is_long, slope=slope)
    truth = {}
    for k, (price, qty) in enumerate(entries):
        index.put(f"k{k}", price, qty)
        truth[f"k{k}"] = (price, qty)
    for price in asked:
        exact = Fraction(0)
        for b, q in truth.values():
            gap = b - price if is_long else price - b
            if gap > 0:
                exact += Fraction(q * gap * slope, SCALE * SCALE)
        want = -((-exact.numerator) // exact.denominator)
        assert index.deficit_at(price) == want
        assert index.deficits_at([price]) == [want]
    _check_budget_edge(entries, is_long, budget, asked, slope)


def test_a_sloped_deficit_by_hand():
    # longs 2 units bankrupt at 100 and 1 at 90 (raw units of SCALE), fee 0.1%: at 80
    # the deficit is 0.999 x (2 x 20 + 1 x 10) = 49.95; shorts (1.001) at 120 with the
    # same entries: 1.001 x (2 x 20 + 1 x 30) = 70.07
    for is_long, slope, at, want in ((True, 999, 80, "49.95"), (False, 1001, 120, "70.07")):
        index = DeficitIndex(is_long=is_long, slope=slope * SCALE // 1000)
        index.put("a", 100 * SCALE, 2 * SCALE)
        index.put("b", 90 * SCALE, SCALE)
        assert Fraction(index.deficit_at(at * SCALE), SCALE) == Fraction(want)
        assert index.deficit_of(2 * SCALE, 20 * SCALE) == 2 * 20 * slope * SCALE // 1000


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(
            # on a 1e8 grid: prices repeat (ties) and buckets (~1e8 wide here) hold several
            st.integers(0, 40).map(lambda k: 10**12 - 2 * 10**9 + k * 10**8),
            st.integers(1, 10**6),
        ),
        min_size=1,
        max_size=30,
    ),
    st.booleans(),
    st.integers(0, 10**12),
    st.lists(st.integers(10**12 - 3 * 10**9, 10**12 + 3 * 10**9), min_size=1, max_size=10),
)
def test_budget_edge_among_entries_a_few_buckets_wide(entries, is_long, budget, asked):
    """Entries within +-0.2% of 1e12 raw: ~8 buckets, the edge most often between two
    entries of neighbouring buckets (where a descent one slot off would show), and
    entries at equal prices (where a walk through a bucket must take ties together)."""
    _check_budget_edge(entries, is_long, budget, asked)


def _check_budget_edge(entries, is_long, budget, asked, slope=SCALE):
    """``deficit_at(p) > budget`` exactly on one side of the edge, at any price: checked
    at random prices, at the entries' own prices and one raw unit either side of the edge
    (entries from below zero to 1e13 raw: several buckets, some shared)."""
    index = DeficitIndex(is_long=is_long, slope=slope)
    for k, (price, qty) in enumerate(entries):
        index.put(f"k{k}", price, qty)
    edge = index.budget_edge(budget)
    prices = set(asked) | {p for p, _ in entries if p >= 1}
    if isinstance(edge, int):
        prices |= {p for p in (edge - 1, edge, edge + 1) if p >= 1}
    for price in sorted(prices):
        over = index.deficit_at(price) > budget
        if edge is None:
            assert over, price
        elif is_long:
            assert over == (price < edge), (price, edge)
        else:
            assert over == (price > edge), (price, edge)


@given(st.integers(1, _LAST_SLOT))
def test_bucket_start_is_the_first_price_of_its_bucket(slot):
    start = bucket_start(slot)
    assert price_bucket(start) >= slot
    assert start == 1 or price_bucket(start - 1) < slot


def test_a_bankruptcy_price_past_2_63_is_in_the_sums():
    """A short's bankruptcy price is a Python int and may pass 2**63 (a huge margin on a
    small position). Its entry fell outside the tree of sums (silently: its deficit was
    missing) and the fund's projection divided by zero looking for the side's edge
    (found by test_wide_moves, 2026-12-06). By hand, one short of q = 10,000 raw at
    B = 10**19 + 4 * 10**12 (past 2**63 = 9.22e18): at p = B + 10**12 its deficit is
    q * 10**12 / SCALE raw, at B and below none; with a budget of 0 the edge is B (the
    deficit is above 0 exactly at p > B); a long at the same B owes at p = B - 10**12
    the same. The last slot holds every price from its start up."""
    b, q = 10**19 + 4 * 10**12, 10_000
    assert b > 2**63
    short = DeficitIndex(is_long=False)
    short.put("s", b, q)
    assert short.deficit_at(b + 10**12) == q * 10**12 // SCALE
    assert short.deficit_at(b) == 0
    assert short.deficit_at(6 * 10**12) == 0
    assert short.budget_edge(0) == b
    long = DeficitIndex(is_long=True)
    long.put("l", b, q)
    assert long.deficit_at(b - 10**12) == q * 10**12 // SCALE
    assert long.deficit_at(b + 1) == 0
    assert price_bucket(b) == price_bucket(2**63 - 1) == price_bucket(10**40) == _LAST_SLOT
    assert price_bucket(bucket_start(_LAST_SLOT) - 1) == _LAST_SLOT - 1
