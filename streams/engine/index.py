"""Indexes that keep a mark tick at O(log n + k) instead of O(n).

``ThresholdIndex``: per symbol, the liquidation and bankruptcy prices of positions whose
thresholds do not move with the mark (isolated, or the only cross position of an
account). A tick from m0 to m1 only needs the positions with a threshold in [m0, m1].

``DeficitIndex``: per symbol and side, the bankruptcy prices with exact prefix sums, so
the loss at a hypothetical mark p (DESIGN.md section 3) is one O(log n) query::

    longs:  deficit(p) = sum_{B_i > p} |q_i| * (B_i - p) = S_qB - p * S_q over that set
    shorts: deficit(p) = sum_{B_i < p} |q_i| * (p - B_i) = p * S_q - S_qB over that set

With a fee to close (``margin``), each side's deficit is f times that: f = 1 - r for
longs, 1 + r for shorts, one factor per index (``slope``, x SCALE).

The sums live in a Fenwick tree over logarithmic price buckets (0.05% wide); the one
bucket that holds p is finished exactly from the sorted entries. All sums are exact
integers; only the bucket number is computed with a float logarithm, and the same
function places entries and queries, so the split is consistent.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate

from streams.engine.fixed import SCALE, div_ceil

_BUCKETS_PER_E = 1 / math.log1p(5e-4)  # 0.05% price buckets
_MEMO_SIZE = 256
_MEMO_KEPT_ON_CHANGE = 16  # more prices asked between two changes: all forgotten
_BUCKET_COUNT = int(math.log(2**63) * _BUCKETS_PER_E) + 2  # a slot for each below 2**63
_LAST_SLOT = _BUCKET_COUNT - 1


def price_bucket(price: int) -> int:
    """The slot of a raw price: 0.05% buckets, the last one open above (a bankruptcy
    price is a Python int and may pass 2**63: a short's with a huge margin; its entry
    was dropped from the sums and the fund's projection divided by zero)."""
    if price <= 0:
        return 0
    return min(int(math.log(price) * _BUCKETS_PER_E) + 1, _LAST_SLOT)


@functools.cache  # at most _BUCKET_COUNT slots; a descent asks the same few again
def bucket_start(slot: int) -> int:
    """The lowest price >= 1 in bucket ``slot`` or above (``price_bucket`` is monotone):
    every price in a lower bucket is below it, every price in this one or above is not.
    The float exp() only narrows the search; the answer is checked with
    ``price_bucket`` itself."""
    if slot <= 1:
        return 1
    if slot > _LAST_SLOT:
        raise ValueError(f"no slot {slot}: the last is {_LAST_SLOT}")
    guess = math.exp((slot - 1) / _BUCKETS_PER_E)
    low = max(1, int(guess * (1 - 1e-9)) - 2)  # below the start: bucket < slot
    high = int(guess * (1 + 1e-9)) + 2  # at or above it
    while low > 1 and price_bucket(low) >= slot:
        low //= 2
    while price_bucket(high) < slot:
        high *= 2
    while high - low > 1:  # price_bucket(low) < slot <= price_bucket(high), or low == 1
        mid = (low + high) // 2
        if price_bucket(mid) >= slot:
            high = mid
        else:
            low = mid
    return 1 if price_bucket(low) >= slot else high


class Fenwick:
    """Binary indexed tree of two exact integer sums side by side (the deficit index's
    sum of q and sum of q*B) over a fixed number of slots: one walk answers both."""

    __slots__ = ("_first", "_second")

    def __init__(self, size: int) -> None:
        self._first = [0] * (size + 1)
        self._second = [0] * (size + 1)

    def add(self, slot: int, first: int, second: int) -> None:
        i = slot + 1
        a, b = self._first, self._second
        n = len(a)
        while i < n:
            a[i] += first
            b[i] += second
            i += i & -i

    def add_two(
        self, slot: int, first: int, second: int, other: int, other_first: int, other_second: int
    ) -> None:
        """``add`` at two slots in one walk: their paths up the tree join where a node
        covers both (near slots: after a few steps), and from there on both changes go
        in as one (a bankruptcy price that moved to the next bucket: ~1 walk, not 2)."""
        i, j = slot + 1, other + 1
        a, b = self._first, self._second
        n = len(a)
        while i != j:
            if i < j:
                if i >= n:
                    return  # j > i >= n: both paths are done
                a[i] += first
                b[i] += second
                i += i & -i
            else:
                if j >= n:
                    return
                a[j] += other_first
                b[j] += other_second
                j += j & -j
        both_first, both_second = first + other_first, second + other_second
        while i < n:
            a[i] += both_first
            b[i] += both_second
            i += i & -i

    def last_holding(self, holds: Callable[[int, int, int], bool]) -> tuple[int, int, int]:
        """The largest t such that ``holds(t, first, second)`` with the sums over slots
        0..t-1, for a ``holds`` true up to some t and false after it (true at t = 0 is
        assumed, not asked); returns (t, first, second). One descent of the tree:
        O(log slots) asks, not a bisection of prefix walks."""
        a, b = self._first, self._second
        n = len(a)
        t = first = second = 0
        step = 1 << (n - 1).bit_length()
        while step:
            nxt = t + step
            if nxt < n and holds(nxt, first + a[nxt], second + b[nxt]):
                t = nxt
                first += a[nxt]
                second += b[nxt]
            step >>= 1
        return t, first, second

    def prefix(self, slot: int) -> tuple[int, int]:
        """Both sums over slots 0..slot inclusive ((0, 0) for slot < 0)."""
        a, b = self._first, self._second
        i = min(slot + 1, len(a) - 1)
        first = second = 0
        while i > 0:
            first += a[i]
            second += b[i]
            i -= i & -i
        return first, second


class ThresholdIndex:
    """Health thresholds of one symbol's positions, each widened into a small zone.

    A position's health flips where its (rounded) equity crosses its (rounded)
    requirement: within ``tolerance`` of the exact threshold price, not exactly on it.
    Each threshold T is stored as the two ends of [T - tolerance, T + tolerance]; a
    position whose mark sits inside one of its zones is kept in ``zone`` and re-evaluated
    on every tick until it leaves. So a tick from m0 to m1 needs only the positions with
    a zone end in [m0, m1] plus the (few) positions in a zone: O(buckets + k), and no
    flip is missed.

    The ends sit in logarithmic price buckets (0.01% wide), each a set of the keys with
    an end there; a key's ends and their buckets are kept with it. A put moves the key
    only between the buckets its ends left and entered: where its thresholds moved less
    than a bucket (most puts: the equity behind them moved a little), no bucket changes
    at all. (A sorted list of ~60k ends cost ~2 us per insert or delete, a tenth of the
    replay; a set of (end, key) pairs per bucket took every end out and back in at each
    put.) A tick walks the buckets between the two marks, takes every key of those
    strictly between, and at its two edge buckets the keys with an end in the range.
    """

    __slots__ = ("_buckets", "_by_key", "zone")

    def __init__(self) -> None:
        self._buckets: dict[int, set[str]] = {}
        # key -> (its zone ends, ascending; the buckets they sit in, ascending, each once)
        self._by_key: dict[str, tuple[list[int], list[int]]] = {}
        self.zone: set[str] = set()

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key  # a key in ``zone`` has ends: it is in ``_by_key`` too

    def put(self, key: str, thresholds: tuple[int, ...], tolerance: int, mark: int) -> None:
        """Index ``key``'s thresholds as evaluated at ``mark``."""
        ends: list[int] = []
        in_zone = False
        for threshold in thresholds:
            low, high = threshold - tolerance, threshold + tolerance
            if low <= mark <= high:
                in_zone = True
            ends.append(low)
            ends.append(high)
        if in_zone:
            self.zone.add(key)
        else:
            self.zone.discard(key)
        ends.sort()
        slots: list[int] = []
        for end in ends:  # ascending ends: ascending buckets (``_threshold_bucket`` is monotone)
            slot = _threshold_bucket(end)
            if not slots or slots[-1] != slot:
                slots.append(slot)
        old = self._by_key.get(key)
        old_slots: list[int] = [] if old is None else old[1]
        if ends:
            self._by_key[key] = (ends, slots)
        elif old is not None:
            del self._by_key[key]
        if old_slots != slots:
            self._move(key, old_slots, slots)

    def _move(self, key: str, old_slots: list[int], slots: list[int]) -> None:
        """``key`` out of the buckets it left, into those it entered."""
        buckets = self._buckets
        for slot in old_slots:
            if slot not in slots:
                bucket = buckets[slot]
                bucket.discard(key)
                if not bucket:
                    del buckets[slot]
        for slot in slots:
            if slot not in old_slots:
                held = buckets.get(slot)
                if held is None:
                    buckets[slot] = {key}
                else:
                    held.add(key)

    def remove(self, key: str) -> None:
        self.put(key, (), 0, 0)

    def crossed(self, low: int, high: int) -> set[str]:
        """Keys with a zone end in [low, high], and keys whose mark is in a zone."""
        if high < low:
            low, high = high, low
        out = set(self.zone)
        first, last = _threshold_bucket(low), _threshold_bucket(high)
        buckets = self._buckets
        if last - first < len(buckets):
            slots: Iterable[int] = range(first, last + 1)
        else:  # a jump over more buckets than are held: walk the held ones
            slots = [s for s in buckets if first <= s <= last]
        by_key = self._by_key
        for slot in slots:
            bucket = buckets.get(slot)
            if bucket is None:
                continue
            if first < slot < last:
                out.update(bucket)
                continue
            for key in bucket:  # an edge bucket: its keys with an end in the range
                if key not in out:
                    for end in by_key[key][0]:
                        if low <= end <= high:
                            out.add(key)
                            break
        return out


_THRESHOLD_BUCKETS_PER_E = 1 / math.log1p(1e-4)


def _threshold_bucket(price: int) -> int:
    """The bucket of a zone end: 0.01% of price wide; every end <= 0 in bucket 0."""
    return int(math.log(price) * _THRESHOLD_BUCKETS_PER_E) + 1 if price > 0 else 0


def rounding_tolerance(qty: int) -> int:
    """Raw price distance within which rounding may move a health flip: equity and
    requirements are each off by at most a few raw money units (3), and the boundary
    functions move by at least 0.2 * |q| per unit of price (warning ratio - max mmr)."""
    return div_ceil(16 * SCALE, abs(qty)) + 1


class _Bucket:
    """Entries of one price bucket, with prefix sums rebuilt lazily after a change."""

    __slots__ = ("cum_q", "cum_qb", "dirty", "entries", "prices")

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, int]] = []  # sorted (B, key, |q|)
        self.dirty = True
        self.prices: list[int] = []
        self.cum_q: list[int] = []
        self.cum_qb: list[int] = []

    def sums_above(self, price: int) -> tuple[int, int]:
        """(sum q, sum q*B) over entries with B > price."""
        self._refresh()
        i = bisect_right(self.prices, price)
        return self.cum_q[-1] - self.cum_q[i], self.cum_qb[-1] - self.cum_qb[i]

    def sums_below(self, price: int) -> tuple[int, int]:
        """(sum q, sum q*B) over entries with B < price."""
        self._refresh()
        i = bisect_left(self.prices, price)
        return self.cum_q[i], self.cum_qb[i]

    def _refresh(self) -> None:
        if not self.dirty:
            return
        self.prices = [b for b, _, _ in self.entries]
        self.cum_q = [0, *accumulate(q for _, _, q in self.entries)]
        self.cum_qb = [0, *accumulate(q * b for b, _, q in self.entries)]
        self.dirty = False


# (buckets, their start prices, their last prices, prefix sums of q, of q*B)
_BucketSums = tuple[list[_Bucket], list[int], list[int], list[int], list[int]]


class DeficitIndex:
    """Bankruptcy prices of one (symbol, side) with exact prefix sums of q and q*B.

    Two levels: a Fenwick tree over price buckets for whole buckets, and per bucket a
    sorted list with prefix sums (rebuilt only when that bucket changed) for the bucket
    that holds the query price. A query is O(log buckets + log bucket size).
    """

    __slots__ = (
        "_asked",
        "_buckets",
        "_by_bucket",
        "_by_key",
        "_edges",
        "_is_long",
        "_memo",
        "_slope",
        "_sums",
        "_total_q",
        "_total_qb",
    )

    def __init__(self, is_long: bool, slope: int = SCALE) -> None:
        """``slope``: the side's deficit per unit of price past bankruptcy per unit of
        size, x SCALE (SCALE: no fee to close)."""
        self._is_long = is_long
        self._slope = slope
        self._buckets: dict[int, _Bucket] = {}
        self._by_key: dict[str, tuple[int, int]] = {}
        self._sums = Fenwick(_BUCKET_COUNT)  # per bucket: sum q, sum q*B
        self._total_q = 0  # running totals: the long query needs "all minus prefix"
        self._total_qb = 0
        # price -> exact numerator (sum of |q| * distance past bankruptcy, raw * SCALE) of
        # deficit_at answers: a fund check asks every symbol's index at its mark and
        # shocked marks after each event. A change keeps the prices asked since the last
        # change (the fund check's few, not a projection's ladder or search: those are
        # asked once) and updates them by the entry's own term (exact integers).
        self._memo: dict[int, int] = {}
        self._asked: set[int] = set()  # prices asked since the last change
        # deficits_at's view of the held buckets (``_bucket_sums``), until a change
        self._by_bucket: _BucketSums | None = None
        # budget -> budget_edge's answer, until a change: a projection asks each side of
        # every symbol, and a stage change forces one (tens a second in a crash, most
        # symbols unchanged between them)
        self._edges: dict[int, int | float | None] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def put(self, key: str, bankruptcy_price: int | None, abs_qty: int) -> bool:
        """Set ``key``'s entry; whether anything changed."""
        new = None if bankruptcy_price is None or abs_qty == 0 else (bankruptcy_price, abs_qty)
        old = self._by_key.get(key)
        if old == new:
            return False
        self._retain_asked()
        self._edges.clear()
        sums = self._sums
        if old is not None:
            old_price, old_qty = old
            old_slot = price_bucket(old_price)
            self._apply(old_slot, old_price, key, old_qty, -1)
            del self._by_key[key]
            if new is None:
                sums.add(old_slot, -old_qty, -old_qty * old_price)
        if new is not None:
            price, qty = new
            slot = price_bucket(price)
            self._apply(slot, price, key, qty, +1)
            self._by_key[key] = new
            if old is None:
                sums.add(slot, qty, qty * price)
            elif slot == old_slot:  # one walk of the tree for both (a price moved a little)
                sums.add(slot, qty - old_qty, qty * price - old_qty * old_price)
            else:
                sums.add_two(old_slot, -old_qty, -old_qty * old_price, slot, qty, qty * price)
        return True

    def remove(self, key: str) -> bool:
        return self.put(key, None, 0)

    def _retain_asked(self) -> None:
        """Before a change: forget the answers not asked since the previous one."""
        asked, memo = self._asked, self._memo
        if len(asked) > _MEMO_KEPT_ON_CHANGE:
            memo.clear()
        elif len(memo) > len(asked):
            self._memo = {p: memo[p] for p in asked if p in memo}
        asked.clear()

    def _apply(self, slot: int, price: int, key: str, abs_qty: int, sign: int) -> None:
        """The entry's part in the answers kept, the totals and its bucket (``put`` adds
        it to the tree: once for a move within one bucket)."""
        memo = self._memo
        if self._is_long:
            for at in memo:  # the entry adds |q| * (B - p) where its price B is above p
                if price > at:
                    memo[at] += sign * abs_qty * (price - at)
        else:
            for at in memo:  # and |q| * (p - B) where B is below p
                if price < at:
                    memo[at] += sign * abs_qty * (at - price)
        self._total_q += sign * abs_qty
        self._total_qb += sign * abs_qty * price
        entry = (price, key, abs_qty)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = _Bucket()
        if sign > 0:
            insort(bucket.entries, entry)
        else:
            del bucket.entries[bisect_left(bucket.entries, entry)]
            if not bucket.entries:
                del self._buckets[slot]
        bucket.dirty = True
        self._by_bucket = None

    def _deficit(self, numerator: int) -> int:
        """A deficit's numerator (sum of |q| x distance, raw x SCALE) as the deficit: raw,
        times the side's slope if it has one, rounded up."""
        if self._slope == SCALE:
            return div_ceil(numerator, SCALE)
        return div_ceil(numerator * self._slope, SCALE * SCALE)

    def deficit_of(self, abs_qty: int, distance: int) -> int:
        """One entry's deficit ``distance`` past its bankruptcy price (raw, rounded up)."""
        return self._deficit(abs_qty * distance)

    def deficit_at(self, price: int) -> int:
        """Total loss beyond bankruptcy if the mark were ``price`` (quote, rounded up)."""
        if len(self._asked) <= _MEMO_KEPT_ON_CHANGE:  # past it, all is forgotten anyway
            self._asked.add(price)
        numerator = self._memo.get(price)
        if numerator is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            numerator = self._memo[price] = self._numerator_at(price)
        return self._deficit(numerator)

    def _numerator_at(self, price: int) -> int:
        slot = price_bucket(price)
        if self._is_long:  # whole buckets strictly above p's
            below_q, below_qb = self._sums.prefix(slot)
            sum_q, sum_qb = self._total_q - below_q, self._total_qb - below_qb
        else:  # whole buckets strictly below p's
            sum_q, sum_qb = self._sums.prefix(slot - 1)
        return self._finish(price, slot, sum_q, sum_qb)

    def _finish(self, price: int, slot: int, sum_q: int, sum_qb: int) -> int:
        """The deficit's numerator at ``price`` (raw * SCALE, exact) from the sums
        (q, q*B) of the whole buckets beyond its bucket ``slot``, plus the entries of
        its own bucket beyond it."""
        bucket = self._buckets.get(slot)
        if self._is_long:
            if bucket is not None:
                q, qb = bucket.sums_above(price)
                sum_q, sum_qb = sum_q + q, sum_qb + qb
            return sum_qb - price * sum_q
        if bucket is not None:
            q, qb = bucket.sums_below(price)
            sum_q, sum_qb = sum_q + q, sum_qb + qb
        return price * sum_q - sum_qb

    def budget_edge(self, budget: int) -> int | float | None:
        """Where the deficit crosses ``budget`` (quote, raw), for the search of the ADL
        distance: one descent instead of a ``deficit_at`` per bisection step.

        ``deficit_at(p) > budget`` exactly when ``p < edge`` for longs (their deficit
        falls as the price rises) and ``p > edge`` for shorts, at every price p >= 1;
        ``None``: above the budget at every such price; ``math.inf``: never above it (a
        side with no shorts). As ``deficit_at`` rounds up, ``deficit_at(p) > budget``
        iff the exact numerator (raw * SCALE) is above ``budget * SCALE`` (with a slope
        f: numerator * f > budget * SCALE^2, i.e. above its floor over f): the edge is
        found on the numerators, piece by piece of the linear segments between entries.
        """
        edges = self._edges
        if budget in edges:
            return edges[budget]
        if len(edges) >= _MEMO_SIZE:
            edges.clear()
        edge = edges[budget] = self._budget_edge(budget)
        return edge

    def _budget_edge(self, budget: int) -> int | float | None:
        slope = self._slope
        limit = budget * SCALE if slope == SCALE else budget * SCALE * SCALE // slope
        if limit < 0:
            return None  # a numerator is never negative
        if self._numerator_at(1) <= limit:
            return 1 if self._is_long else self._short_edge(limit)
        if self._is_long:
            return self._long_edge(limit)
        return None  # a short at or below price 1 already costs more than the budget

    def _long_edge(self, limit: int) -> int:
        """The lowest price p >= 1 whose numerator is at most ``limit`` (it is above it at
        p = 1: the caller checked)."""
        total_q, total_qb = self._total_q, self._total_qb

        def above(slot: int, q_below: int, qb_below: int) -> bool:
            # entries in ``slot`` and above are those with B >= its start: the numerator
            # there is theirs alone (none: 0, never above; past the last slot there are none)
            q_above = total_q - q_below
            return q_above > 0 and (total_qb - qb_below) - bucket_start(slot) * q_above > limit

        slot, q_below, qb_below = self._sums.last_holding(above)
        # the edge is above this slot's start, at most the next slot's: find the last of
        # its entries where the numerator is still above the limit (a bisection over the
        # bucket's prefix sums, as ``deficit_at`` reads them)
        q_above, qb_above = total_q - q_below, total_qb - qb_below  # this slot and above
        bucket = self._buckets.get(slot)
        if bucket is not None:
            bucket._refresh()
            prices, cum_q, cum_qb = bucket.prices, bucket.cum_q, bucket.cum_qb
            n = len(prices)
            q_above -= cum_q[n]  # now: slots above this one
            qb_above -= cum_qb[n]
            low, high = 0, n  # entries [0, low) are above the limit, [high, n) are not
            while low < high:
                mid = (low + high) // 2
                # at prices[mid]: the entries from mid on (ties add 0) and the slots above
                q = q_above + cum_q[n] - cum_q[mid]
                if qb_above + cum_qb[n] - cum_qb[mid] - prices[mid] * q > limit:
                    low = mid + 1
                else:
                    high = mid
            # past the last entry above the limit only the entries from ``low`` on count
            # (entries at one price give one numerator: the search never splits them)
            q_above += cum_q[n] - cum_q[low]
            qb_above += cum_qb[n] - cum_qb[low]
        # on this segment the numerator is qb_above - p * q_above (q_above > 0: it is
        # above the limit somewhere on it): the lowest p where that is <= limit
        return -((limit - qb_above) // q_above)

    def _short_edge(self, limit: int) -> int | float:
        """The highest price p >= 1 whose numerator is at most ``limit`` (it is at p = 1:
        the caller checked)."""
        if self._total_q == 0:
            return math.inf

        def within(slot: int, q_below: int, qb_below: int) -> bool:
            # entries below the slot are those with B below its start
            # none below: 0; past the last slot (open above) the start is beyond any price
            if q_below == 0:
                return True
            return slot <= _LAST_SLOT and bucket_start(slot) * q_below - qb_below <= limit

        slot, q_below, qb_below = self._sums.last_holding(within)
        bucket = self._buckets.get(slot)
        if bucket is not None:
            bucket._refresh()
            prices, cum_q, cum_qb = bucket.prices, bucket.cum_q, bucket.cum_qb
            n = len(prices)
            low, high = 0, n  # entries [0, low) are within the limit, [high, n) are not
            while low < high:
                mid = (low + high) // 2
                # at prices[mid]: the entries before mid (ties add 0) and the slots below
                q = q_below + cum_q[mid]
                if prices[mid] * q - qb_below - cum_qb[mid] <= limit:
                    low = mid + 1
                else:
                    high = mid
            # past the last entry within the limit the entries before ``low`` count (ties
            # give one numerator: the search never splits them)
            q_below += cum_q[low]
            qb_below += cum_qb[low]
        # on this segment the numerator is p * q_below - qb_below (q_below > 0: some
        # entry lies at or below the edge's slot)
        return (limit + qb_below) // q_below

    def deficits_at(self, prices: Sequence[int]) -> list[int]:
        """``deficit_at`` of many prices (a summary's whole curve), by the cheaper of two
        exact routes: with the held buckets' prefix sums kept since the last change, or
        fewer held buckets than prices (rebuilding them costs about what it saves), a
        bisection per price over them (``_numerators_by_view``); else a walk of the tree
        per price (``_numerators_by_tree``): a busy symbol's index changes between two
        summaries, and rebuilding its view of thousands of buckets (3 ms at 2,600) cost
        ~16x the grid's ~70 walks (the agents' summaries at 50,000 accounts a partition,
        ``benchmarks/bench_shards.py``)."""
        if self._by_bucket is None and len(self._buckets) > len(prices):
            numerators = self._numerators_by_tree(prices)
        else:
            numerators = self._numerators_by_view(prices)
        return [self._deficit(numerator) for numerator in numerators]

    def _numerators_by_tree(self, prices: Sequence[int]) -> list[int]:
        """Each price's exact numerator from the tree's prefix sums and its own bucket,
        as ``deficit_at`` reads it (its memo left alone: a grid is asked once)."""
        return [self._numerator_at(price) for price in prices]

    def _numerators_by_view(self, prices: Sequence[int]) -> list[int]:
        """Each price's exact numerator by a bisection over the held buckets' start
        prices, then that one bucket's entries (the view kept until the index changes).

        The held buckets split exactly at a price p: those after the last one starting
        at or below p hold only entries above p, those before it only entries below p,
        and that one bucket is split by its own sorted prices (``sums_above``)."""
        buckets, starts, lasts, cum_q, cum_qb = self._bucket_sums()
        total_q, total_qb = cum_q[-1], cum_qb[-1]
        out = []
        if self._is_long:  # sum over B > p of |q| * (B - p)
            for price in prices:
                j = bisect_right(starts, price)  # buckets [j, ...) are all above p
                sum_q, sum_qb = total_q - cum_q[j], total_qb - cum_qb[j]
                if j and price < lasts[j - 1]:  # and some of bucket j - 1
                    q, qb = buckets[j - 1].sums_above(price)
                    sum_q, sum_qb = sum_q + q, sum_qb + qb
                out.append(sum_qb - price * sum_q)
        else:  # sum over B < p of |q| * (p - B)
            for price in prices:
                j = bisect_right(starts, price)  # buckets [0, j - 1) are all below p
                if not j:
                    out.append(0)
                    continue
                if price > lasts[j - 1]:  # and all of bucket j - 1
                    sum_q, sum_qb = cum_q[j], cum_qb[j]
                else:
                    q, qb = buckets[j - 1].sums_below(price)
                    sum_q, sum_qb = cum_q[j - 1] + q, cum_qb[j - 1] + qb
                out.append(price * sum_q - sum_qb)
        return out

    def _bucket_sums(self) -> _BucketSums:
        """The held buckets in price order, their start prices and last prices held, and
        the prefix sums of q and q*B over them; rebuilt after a change."""
        if self._by_bucket is None:
            slots = sorted(self._buckets)
            held = [self._buckets[s] for s in slots]
            cum_q, cum_qb, lasts = [0], [0], []
            for bucket in held:
                bucket._refresh()
                lasts.append(bucket.prices[-1])
                cum_q.append(cum_q[-1] + bucket.cum_q[-1])
                cum_qb.append(cum_qb[-1] + bucket.cum_qb[-1])
            self._by_bucket = (held, [bucket_start(s) for s in slots], lasts, cum_q, cum_qb)
        return self._by_bucket

    def beyond(self, price: int) -> Iterator[tuple[int, str, int]]:
        """Entries already past bankruptcy at ``price``: (B, key, |q|), worst first."""
        if self._numerator_at(price) == 0:
            # none: each entry past the price adds |q| x its distance > 0 (one walk of the
            # tree; a summary asks every changed symbol at its mark, mostly with none past
            # it, and the walk below lists every held bucket: 2,600 of them at 50,000
            # positions)
            return
        # buckets are in price order (the bucket of a price never falls as it rises): walk
        # the ones on the far side of the price's own, worst first (rare: triggers, metrics)
        slot = price_bucket(price)
        if self._is_long:
            for s in sorted((s for s in self._buckets if s >= slot), reverse=True):
                entries = self._buckets[s].entries
                yield from (e for e in reversed(entries) if e[0] > price)
        else:
            for s in sorted(s for s in self._buckets if s <= slot):
                yield from (e for e in self._buckets[s].entries if e[0] < price)
