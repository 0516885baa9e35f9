"""Insurance-fund projection: loss now, shock ladder, ADL distance, coverage, runway.

Pure functions over the engine's indexes. ``projected_loss`` is in quote currency raw
units (exact sums, conservative rounding); ratios, distances and runway are floats
(projections, DESIGN.md section 4).

- loss now        = deficits of bankrupt positions at the marks (DeficitIndex at M)
                    - the over-count of accounts with several cross positions
                    + for liquidatable positions, the loss of closing them through the
                      last book beyond their bankruptcy price (``book_close_loss``)
- ladder(s)       = loss now - deficit_X(M) + deficit_X(M * (1 + s)), per symbol X,
                    both sides at once (other symbols held at their marks)
- ADL distance    = smallest adverse move (fraction) of X at which loss > fund balance
- coverage ratio  = fund balance / loss now
- runway seconds  = fund balance / drawdown rate over the recent snapshot window
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from streams.engine.fixed import SCALE, div_ceil, ratio
from streams.engine.index import DeficitIndex

MAX_UP_MOVE = 10.0  # +1000%: a short's ADL distance beyond this is reported as none
_SEARCH_STEPS = 32  # bisection of [0, 1] (or [0, 10]) to ~1e-9: far below a tick


@dataclass(slots=True)
class FundHistory:
    """Recent snapshots of one fund, for the drawdown rate."""

    window_ms: int
    snapshots: deque[tuple[int, int]] = field(default_factory=deque)

    def record(self, ts_ms: int, balance: int) -> None:
        self.snapshots.append((ts_ms, balance))
        while self.snapshots and self.snapshots[0][0] < ts_ms - self.window_ms:
            self.snapshots.popleft()

    @property
    def balance(self) -> int | None:
        return self.snapshots[-1][1] if self.snapshots else None

    def runway_seconds(self) -> float | None:
        """Seconds to depletion at the window's drawdown rate; ``None`` if not drawing down."""
        if len(self.snapshots) < 2:
            return None
        (t0, b0), (t1, b1) = self.snapshots[0], self.snapshots[-1]
        if t1 <= t0 or b1 >= b0:
            return None
        rate_per_s = (b0 - b1) / ratio(t1 - t0, 1000)
        return max(0.0, b1 / rate_per_s)


def book_close_loss(
    positions: Iterable[tuple[int, int]], levels: Sequence[tuple[int, int]], is_long: bool
) -> int:
    """Loss beyond bankruptcy of closing positions through a book side.

    ``positions``: (bankruptcy_price, |qty|); the worst (closest to the mark) fill first.
    ``levels``: the side they close into (bids for longs, asks for shorts), best first.
    Size left when the book runs out closes at the last level's price (an optimistic
    floor that the ``unfilled`` notional in the projection makes visible). Surplus from
    fills better than bankruptcy is not counted: the projection only adds losses.
    """
    order = sorted(positions, key=lambda p: -p[0] if is_long else p[0])
    level_i, level_left = 0, levels[0][1] if levels else 0
    loss = 0
    for bankruptcy, qty in order:
        left = qty
        while left > 0:
            if level_i >= len(levels):
                price = levels[-1][0] if levels else 0
                take = left
            else:
                price = levels[level_i][0]
                take = min(left, level_left)
                level_left -= take
                if level_left == 0:
                    level_i += 1
                    level_left = levels[level_i][1] if level_i < len(levels) else 0
            gap = bankruptcy - price if is_long else price - bankruptcy
            if gap > 0:
                loss += take * gap
            left -= take
    return div_ceil(loss, SCALE)


def shocked_price(mark: int, shock: float) -> int:
    return max(1, round(mark * (1.0 + shock)))


def shocked_prices(mark: int, shocks: Sequence[float]) -> list[int]:
    """``shocked_price`` of many shocks in one numpy pass: the same float product and
    round-half-even (``rint``) as Python's, so the same integers."""
    prices = np.maximum(1.0, np.rint(float(mark) * (1.0 + np.asarray(shocks, dtype=np.float64))))
    return [int(p) for p in prices.tolist()]


Curve = Callable[[float], int]
"""One side's deficit (quote, raw) with its symbol moved by a signed fraction of the
mark: ``curve(0.0)`` is the deficit at the mark, ``curve(-0.1)`` after a 10% fall."""


class IndexCurve:
    """The exact curve of a ``DeficitIndex`` around ``mark``; the ADL distance's search
    asks the index once where the curve crosses its budget (``budget_edge``) and then
    compares prices, instead of asking the index at each bisection step."""

    __slots__ = ("index", "mark")

    def __init__(self, index: DeficitIndex, mark: int) -> None:
        self.index = index
        self.mark = mark

    def price(self, move: float) -> int:
        # the mark itself is asked most: no float round trip
        return self.mark if move == 0.0 else shocked_price(self.mark, move)

    def __call__(self, move: float) -> int:
        return self.index.deficit_at(self.price(move))


def index_curve(index: DeficitIndex, mark: int) -> Curve:
    """The exact curve of a ``DeficitIndex`` around ``mark``."""
    return IndexCurve(index, mark)


def ladder(
    loss_now: int, longs: Curve, shorts: Curve, shocks: Sequence[float]
) -> list[tuple[float, int]]:
    """(shock, projected loss) with symbol X moved by ``shock`` and the rest held."""
    base = loss_now - longs(0.0) - shorts(0.0)
    long_at, short_at = _deficits(longs, shocks, True), _deficits(shorts, shocks, False)
    return [(s, base + lo + sh) for s, lo, sh in zip(shocks, long_at, short_at, strict=True)]


def _deficits(side: Curve, shocks: Sequence[float], is_long: bool) -> list[int]:
    """``side(s)`` for each shock. An index's deficit is monotone in the price (a long's
    never rises as the price does, a short's never as it falls: DESIGN.md section 3), and
    shocked prices are monotone in the shock: asked from the most adverse shock on, every
    shock past the first 0 is 0 without asking (a healthy side: all of its favourable
    half and the small adverse moves; a projection asked 36 Fenwick reads per symbol)."""
    if not isinstance(side, IndexCurve):
        return [side(s) for s in shocks]
    values = [0] * len(shocks)
    index = side.index
    for k in _adverse_first(tuple(shocks), is_long):
        value = index.deficit_at(side.price(shocks[k]))
        if value == 0:
            break
        values[k] = value
    return values


# (shocks, is_long) -> the shocks' places, most adverse first: the same few ladders are
# asked for every symbol of every projection (a sort by key per side was a third of
# ``_deficits``)
_ADVERSE_FIRST: dict[tuple[tuple[float, ...], bool], tuple[int, ...]] = {}


def _adverse_first(shocks: tuple[float, ...], is_long: bool) -> tuple[int, ...]:
    order = _ADVERSE_FIRST.get((shocks, is_long))
    if order is None:
        if len(_ADVERSE_FIRST) >= 64:  # a ladder per venue setting: a few at most
            _ADVERSE_FIRST.clear()
        order = tuple(sorted(range(len(shocks)), key=shocks.__getitem__, reverse=not is_long))
        _ADVERSE_FIRST[(shocks, is_long)] = order
    return order


def adl_distance(loss_now: int, fund_balance: int, side: Curve, is_long: bool) -> float | None:
    """Smallest adverse move (0.05 = 5%) at which the projected loss exceeds the fund.

    Longs lose on a fall, shorts on a rise. ``0.0`` when the fund is already short;
    ``None`` when no move within range (to zero, or +1000%) exhausts it.
    """
    if loss_now > fund_balance:
        return 0.0

    if isinstance(side, IndexCurve):  # its methods called as such: no generic call
        rest = loss_now - side.index.deficit_at(side.mark)
        return _edge_distance(side.index.budget_edge(fund_balance - rest), side.mark, is_long)
    rest = loss_now - side(0.0)  # the loss but this side's at the mark: read once
    budget = fund_balance - rest
    return _search(lambda move: side(-move if is_long else move) > budget, is_long)


def _search(exceeds: Callable[[float], bool], is_long: bool) -> float | None:
    """The bisection of the adverse moves for the first at which ``exceeds``."""
    high = 1.0 if is_long else MAX_UP_MOVE
    if not exceeds(high):
        return None
    low = 0.0
    for _ in range(_SEARCH_STEPS):
        mid = (low + high) / 2
        if exceeds(mid):
            high = mid
        else:
            low = mid
    return high


# (edge, mark, is_long) -> _search's answer: a function of the three alone, asked again
# and again for the same (a projection asks both sides of every symbol; most symbols'
# marks and entries did not change since the last one, tens of milliseconds before)
_EDGE_DISTANCES: dict[tuple[int | float | None, int, bool], float | None] = {}
_EDGE_DISTANCES_KEPT = 1 << 16


def _edge_distance(edge: int | float | None, mark: int, is_long: bool) -> float | None:
    """The ADL distance of a side whose deficit exceeds the budget exactly at the prices
    beyond ``edge`` (``DeficitIndex.budget_edge``: ``None``, at every price): the same
    bisection as for any curve, comparing prices instead of asking the index."""
    key = (edge, mark, is_long)
    if key in _EDGE_DISTANCES:
        return _EDGE_DISTANCES[key]
    if edge is None:
        found = _search(lambda move: True, is_long)
    elif is_long:  # the search's moves are never 0: shocked_price, inlined
        found = _search(lambda move: max(1, round(mark * (1.0 - move))) < edge, is_long)
    else:
        found = _search(lambda move: max(1, round(mark * (1.0 + move))) > edge, is_long)
    if len(_EDGE_DISTANCES) >= _EDGE_DISTANCES_KEPT:
        _EDGE_DISTANCES.clear()
    _EDGE_DISTANCES[key] = found
    return found


def coverage_ratio(fund_balance: int, loss_now: int) -> float | None:
    """fund / projected loss; ``None`` when nothing is projected to be lost."""
    return None if loss_now <= 0 else ratio(fund_balance, loss_now)
