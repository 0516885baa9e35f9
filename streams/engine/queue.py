"""The ADL queue of one symbol as columns, ranked in one vectorised pass.

``QueueTable`` owns the columns (numpy arrays, one row per open position, a slot map from
account to row, swap-remove; accounts as integer codes, ``account_names``): nothing is
converted per ranking, and a ranking has no
Python loop per position. Each position's equity is carried from its last evaluation
to the current mark by its own PnL, plus, for an account with positions on other
symbols, their PnL since then: each row keeps those other positions (symbol index,
size, mark at the evaluation, cross or not) in padded columns, in the account's order,
and the moves are summed column by column, so the float sums are the ones a loop over
the account's positions gives (``other_moves``).

Cost of a ranking of n positions: numpy scores and one float sort per side (O(n log n),
started from the last ranking's order: a second later it is nearly sorted), plus the
snapshot columns of ``SideRanking``; ``benchmarks/bench_rank.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt

from streams.engine.account_names import AccountNames
from streams.engine.adl import UNDERWATER_SCORE, RankedEntry
from streams.engine.fixed import SCALE, div_ceil, to_float
from streams.engine.marks import NO_MARK
from streams.engine.profiles import LIGHTS, RankInput, VenueProfile, queue_reaches
from streams.engine.profiles.base import exact_int_dtype
from streams.engine.risk import PositionRisk
from streams.engine.second_opinion import TOP_ACCOUNTS, SideWinners
from streams.engine.signals import TOP_SCORES, RankAlert
from streams.engine.tier_columns import TierColumns

# an account with more positions on other symbols than this keeps them as a list per row,
# summed in a loop when ranked: the padded columns stay this wide (an account holding all
# 162 symbols of a venue made every symbol's columns 161 wide: gigabytes, and a copy of
# every column each time the widest account grew)
WIDE_AFTER = 8


@dataclass(frozen=True, slots=True)
class SideRanking:
    """One side's queue as it was ranked, first to be deleveraged first. A snapshot, not
    row numbers: opening or closing a position moves rows, and the queue must stay
    readable (and, on the partitioned path, lit later) until the next ranking."""

    side: str
    codes: npt.NDArray[np.int64]  # each position's account, by its code in ``names``
    names: AccountNames
    sizes: npt.NDArray[np.int64]  # |qty|, raw units
    scores: npt.NDArray[np.float64]
    opened: npt.NDArray[np.int64]  # each position's opening number: a flip or a reopen is new
    mark_price: int
    lights: npt.NDArray[np.int64]  # 0 until lit
    entries: npt.NDArray[np.float64]  # entry prices (floats), for a summary's head

    @property
    def accounts(self) -> npt.NDArray[np.str_]:
        """Every position's account, in queue order (gathered now: ``names_at`` for some)."""
        return self.names.names(self.codes)

    def names_at(self, places: Any) -> list[str]:
        """The accounts at ``places`` (an index array, a mask or a slice)."""
        names: list[str] = self.names.names(self.codes[places]).tolist()
        return names

    @classmethod
    def of_accounts(
        cls,
        side: str,
        accounts: Sequence[str],
        sizes: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        opened: npt.NDArray[np.int64],
        mark_price: int,
        entries: npt.NDArray[np.float64] | None = None,
    ) -> SideRanking:
        """A ranking read back by account names (a kept ranking's rows), not yet lit;
        ``entries`` not kept: NaN."""
        names = AccountNames()
        return cls(
            side=side,
            codes=np.array([names.code(a) for a in accounts], dtype=np.int64),
            names=names,
            sizes=sizes,
            scores=scores,
            opened=opened,
            mark_price=mark_price,
            lights=np.zeros(len(accounts), dtype=np.int64),
            entries=np.full(len(accounts), np.nan) if entries is None else entries,
        )


class OtherPosition(NamedTuple):
    """One of the account's positions on another symbol, as evaluated. A NamedTuple:
    an evaluation of an account on 162 symbols makes 162 of them."""

    symbol_index: int
    qty: float  # signed base units (raw / SCALE)
    mark_price: int  # raw, at the evaluation
    cross: bool


@dataclass(slots=True)
class SharedPositions:
    """A wide account's positions as last evaluated, shared by its rows on every symbol:
    re-evaluating the account updates this one value, not a row per symbol (an account
    on 162 symbols rewrote 162 rows on each of its fills). A row reads its own mark and
    backing equity here, and its others are every position but its own, in order."""

    positions: list[OtherPosition]  # every position of the account, in its order
    place: dict[int, int]  # symbol index -> its place in ``positions``
    backing: list[float]  # each position's backing equity at the evaluation, quote
    equity: float  # the account's equity at the evaluation, quote
    # each position's wallet (``RankInput``) and the part of the maintenance it backs
    # that no mark moves (``fixed_maintenance``), quote
    wallet: list[float]
    fixed_maintenance: list[float]
    # ``positions`` as columns (symbol index, qty, mark, cross) for a ranking's sums: made
    # when first asked, kept in step by ``set_position``, dropped by ``replace``
    _columns: _OtherColumns | None = field(default=None, compare=False, repr=False)

    def columns(self) -> _OtherColumns:
        if self._columns is None:
            positions = self.positions
            self._columns = _OtherColumns(
                np.array([p.symbol_index for p in positions], dtype=np.int64),
                np.array([p.qty for p in positions], dtype=np.float64),
                np.array([p.mark_price for p in positions], dtype=np.int64),
                np.array([p.cross for p in positions], dtype=np.bool_),
            )
        return self._columns

    def set_position(self, place: int, position: OtherPosition) -> None:
        self.positions[place] = position
        if self._columns is not None:
            sym, qty, mark, cross = self._columns
            sym[place], qty[place], mark[place], cross[place] = position

    def replace(
        self,
        positions: list[OtherPosition],
        place: dict[int, int],
        backing: list[float],
        equity: float,
        wallet: list[float],
        fixed_maintenance: list[float],
    ) -> None:
        self.positions, self.place, self.backing, self.equity = positions, place, backing, equity
        self.wallet, self.fixed_maintenance = wallet, fixed_maintenance
        self._columns = None


def fixed_maintenance(pos: PositionRisk) -> int:
    """The part of the position's maintenance its mark does not move: all of it where the
    maintenance is on the entry value, none where it is on the mark (a ranking computes
    that part at the current marks: ``TierColumns``)."""
    return pos.maintenance_margin if pos.instrument.maintenance_base == "entry" else 0


class _OtherColumns(NamedTuple):
    symbol_index: npt.NDArray[np.int64]
    qty: npt.NDArray[np.float64]
    mark_price: npt.NDArray[np.int64]
    cross: npt.NDArray[np.bool_]


_T = TypeVar("_T")


class _Cells(Protocol[_T]):
    """A column's cells one at a time (typeshed's ``memoryview`` knows only int cells)."""

    def __getitem__(self, row: int, /) -> _T: ...

    def __setitem__(self, row: int, value: _T, /) -> None: ...


def _cells(column: npt.NDArray[Any]) -> _Cells[Any]:
    return cast("_Cells[Any]", memoryview(column))  # type: ignore[arg-type]


class _RowViews:
    """The columns as memoryviews, for what is written one row at a time (a row put, a
    swap-remove, a wide row's values before a ranking): a numpy scalar write costs
    ~70 ns (``array_assign_subscript``), a memoryview's ~25 ns, and a row put writes ~10
    cells plus 4 per other position. Made with the columns (``QueueTable._grow``), never
    pickled. Same values either way: a Python float, int or bool written as the column's
    own float64, int64 or bool."""

    __slots__ = ("abs_qty", "account", "alerted", "announced_light", "backing", "entry",
                 "equity", "every", "fixed_maint", "isolated", "light", "mark", "opened",
                 "other", "other_n", "qty", "ranked_row", "score", "wallet")  # fmt: skip

    def __init__(
        self,
        floats: dict[str, npt.NDArray[np.float64]],
        ints: dict[str, npt.NDArray[np.int64]],
        isolated: npt.NDArray[np.bool_],
        other_n: npt.NDArray[np.int64],
        other: list[_OtherColumns],
    ) -> None:
        self.qty: _Cells[float] = _cells(floats["qty"])
        self.entry: _Cells[float] = _cells(floats["entry"])
        self.mark: _Cells[float] = _cells(floats["mark"])
        self.backing: _Cells[float] = _cells(floats["backing"])
        self.equity: _Cells[float] = _cells(floats["equity"])
        self.wallet: _Cells[float] = _cells(floats["wallet"])
        self.fixed_maint: _Cells[float] = _cells(floats["fixed_maint"])
        self.score: _Cells[float] = _cells(floats["score"])
        self.account: _Cells[int] = _cells(ints["account"])
        self.abs_qty: _Cells[int] = _cells(ints["abs_qty"])
        self.light: _Cells[int] = _cells(ints["light"])
        self.alerted: _Cells[int] = _cells(ints["alerted"])
        self.opened: _Cells[int] = _cells(ints["opened"])
        self.ranked_row: _Cells[int] = _cells(ints["ranked_row"])
        self.announced_light: _Cells[int] = _cells(ints["announced_light"])
        self.isolated: _Cells[bool] = _cells(isolated)
        self.other_n: _Cells[int] = _cells(other_n)
        # per place of other positions: symbol index, qty, mark, cross
        self.other: list[tuple[_Cells[int], _Cells[float], _Cells[int], _Cells[bool]]] = [
            (_cells(sym), _cells(qty), _cells(mark), _cells(cross))
            for sym, qty, mark, cross in other
        ]
        # every row column (a swap-remove moves them all)
        self.every: list[_Cells[Any]] = [
            _cells(a) for a in (isolated, other_n, *floats.values(), *ints.values())
        ]


ALERT_MARGIN = 0.01  # share of the queue a position must be past a boundary to be alerted

_FLOAT_COLS = ("qty", "entry", "mark", "backing", "equity", "wallet", "fixed_maint", "score")
# ranked_row: the row the position had at the last ranking (-1: opened since); a
# swap-remove moves it with the row, so the last order can be followed (``_last_orders``)
# announced_light: the light ``announced`` holds for the row's account if it was
# announced to the row's own opening, else 0 (``light_at`` reads it per row)
# account: the row's account by its code in the table's ``AccountNames``
_INT_COLS = ("account", "abs_qty", "light", "alerted", "opened", "ranked_row", "announced_light")


def queue_order(
    rows: npt.NDArray[np.intp],
    scores: npt.NDArray[np.float64],
    abs_qty: npt.NDArray[np.int64],
    accounts: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.str_]],
) -> npt.NDArray[np.intp]:
    """``rows`` in queue order: score descending, then larger size, then account id
    (``accounts``: the account ids of some rows; asked only for rows in a tie).

    One float sort of the scores (a sort on strings or on several keys costs several
    times more); then the positions in runs of equal scores, rare, are sorted again by
    (run, size, account): the same order as sorting on all three keys, whatever order
    ``rows`` come in. The sort is timsort (``stable``): given the last ranking's order,
    nearly sorted again a second later, it costs a fraction of a fresh sort. Scores
    with a NaN (no run holds two NaNs: their order would be the sort's own) are sorted
    as the rows come from ``flatnonzero``, with the default sort, as before."""
    score_of_rows = scores[rows]
    if np.isnan(score_of_rows).any():
        rows = np.sort(rows)
        order = rows[np.argsort(-scores[rows])]
    else:
        order = rows[np.argsort(-score_of_rows, kind="stable")]
    score = scores[order]
    tied = np.flatnonzero(score[1:] == score[:-1])
    if len(tied):
        # every place in a run, ascending (``np.unique`` gives the same, but its first
        # call imports ``numpy.ma``: ~0.2 s, paid at the first tie, in a crash's tick)
        in_run = np.zeros(len(score), dtype=np.bool_)
        in_run[tied] = True
        in_run[tied + 1] = True
        members = np.flatnonzero(in_run)
        run = np.cumsum(np.concatenate(([1], np.diff(members) > 1)))  # runs are contiguous
        run += np.concatenate(([0], np.cumsum(score[members[1:]] != score[members[:-1]])))
        at = order[members]
        order[members] = at[np.lexsort((accounts(at), -abs_qty[at], run))]
    return order


def _in_last_order(
    last: npt.NDArray[np.intp] | None, mask: npt.NDArray[np.bool_]
) -> npt.NDArray[np.intp]:
    """The rows where ``mask`` holds: those of the side's last ranking first, in its
    order (a nearly sorted start for ``queue_order``), then the others (opened or
    flipped since) by row. Whatever ``last`` holds, each row of ``mask`` comes once."""
    if last is None or not len(last) or last.max() >= len(mask):
        return np.flatnonzero(mask)
    seen = np.zeros(len(mask), dtype=np.bool_)
    kept = last[mask[last]]
    seen[kept] = True
    if np.count_nonzero(seen) != len(kept):  # a row twice: not a renaming of this table
        return np.flatnonzero(mask)
    joined = np.flatnonzero(mask & ~seen)
    return np.concatenate((kept, joined)) if len(joined) else kept


def sloped(qty: npt.NDArray[np.float64], fee: Any) -> npt.NDArray[np.float64]:
    """q (1 - r) for a long, q (1 + r) for a short: how its equity moves with its price
    where the venue counts the fee to close (``margin``); ``fee`` one rate or one per q."""
    out: npt.NDArray[np.float64] = qty * (1.0 - np.sign(qty) * fee)
    return out


def _moves(
    qty: npt.NDArray[np.float64],
    evaluated_mark: npt.NDArray[np.int64],
    symbol_index: npt.NDArray[np.int64],
    marks_by_index: npt.NDArray[np.int64],
    fees_by_index: npt.NDArray[np.float64] | None,
    marks_too: bool = True,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """Positions' PnL since their evaluation (``QueueTable.other_moves``), and, with
    ``marks_too``, the marks they are at now, quote (a symbol without a mark yet: the
    evaluation's)."""
    now = marks_by_index[symbol_index]
    unmarked = now == NO_MARK
    diff = np.where(unmarked, 0, now - evaluated_mark)
    if fees_by_index is not None:
        qty = sloped(qty, fees_by_index[symbol_index])
    move: npt.NDArray[np.float64] = qty * (diff / SCALE)
    return move, np.where(unmarked, evaluated_mark, now) / SCALE if marks_too else None


class OtherMoves(NamedTuple):
    """``QueueTable.other_moves``: rows, and per row its other positions' moves and the
    cross ones' maintenance at the current marks (none: not asked), quote."""

    rows: npt.NDArray[np.intp]
    cross: npt.NDArray[np.float64]
    every: npt.NDArray[np.float64]
    cross_maintenance: npt.NDArray[np.float64] | None


def _sum_in_order(values: npt.NDArray[np.float64]) -> float:
    """``0.0 + v0 + v1 + ...`` added left to right, as a Python loop would."""
    return float(np.cumsum(values)[-1]) + 0.0 if len(values) else 0.0


def _exact_sum(values: npt.NDArray[Any]) -> int:
    """Non-negative integral values summed as integers: int64 where it cannot overflow
    (partitions' sums then merge exactly), Python integers beyond (a venue's 1e10 x 1e10
    position)."""
    if values.size == 0:
        return 0
    if exact_int_dtype(float(values.max()) * values.size) is np.int64:
        return int(values.astype(np.int64).sum())
    return sum(map(int, values.tolist()))


_LARGEST_CHUNKS = 64  # >= TOP_ACCOUNTS


def _largest(values: npt.NDArray[Any]) -> tuple[int, ...]:
    """The ``TOP_ACCOUNTS`` largest, largest first.

    The values split into up to ``_LARGEST_CHUNKS`` chunks; the ``TOP_ACCOUNTS``-th
    largest of their maxima, t, has at least that many values at or above it (one per
    such chunk), so the largest ones are all among the values >= t, few but where many
    share the top values: those are sorted. Not ``np.partition`` over all of them: its
    selection slows ~30x where the cut falls inside a long run of equal values (a
    side's 25,000 sizes of two values: 2.6 ms a call, the most of an agents summary at
    50,000 accounts a partition; ``benchmarks/bench_shards.py``)."""
    n = len(values)
    if n > 4 * _LARGEST_CHUNKS:
        maxima = np.maximum.reduceat(values, np.arange(0, n, -(-n // _LARGEST_CHUNKS)))
        cut = len(maxima) - TOP_ACCOUNTS
        values = values[values >= np.partition(maxima, cut)[cut]]
    return tuple(map(int, np.sort(values)[-TOP_ACCOUNTS:][::-1].tolist()))


class QueueTable:
    """Open positions of one symbol: account, size, entry and equity at last evaluation."""

    __slots__ = ("_cap", "_f", "_i", "_isolated", "_n", "_names", "_opened_count",
                 "_order", "_other", "_other_n", "_ranking", "_row", "_views", "_wide",
                 "_wide_after", "announced",
                 "structure_changed")  # fmt: skip

    def __init__(self, wide_after: int = WIDE_AFTER) -> None:
        self._n = 0
        self._cap = 0
        self._row: dict[str, int] = {}
        self._names = AccountNames()
        self._f: dict[str, npt.NDArray[np.float64]] = {}
        self._i: dict[str, npt.NDArray[np.int64]] = {}
        self._isolated = np.empty(0, dtype=np.bool_)
        # the account's positions on other symbols: the k-th of a row in ``_other[k]``, as
        # many places as the widest account has (``_other_n``: how many the row uses)
        self._other_n = np.empty(0, dtype=np.int64)
        self._other: list[_OtherColumns] = []
        self._wide_after = wide_after
        # row -> (its account's positions, its own symbol index), when wider
        self._wide: dict[int, tuple[SharedPositions, int]] = {}
        self._grow(64, 1)
        # lights announced when lights come later (``light_at``): account -> (opening, light)
        self.announced: dict[str, tuple[int, int]] = {}
        self._opened_count = 0
        self._ranking: dict[str, SideRanking] = {}  # per side, the last ranking
        # per side, the rows of the last ranking in queue order (rows as they were then)
        self._order: dict[str, npt.NDArray[np.intp]] = {}
        self.structure_changed = False  # a position opened or closed since the last ranking

    def _grow(self, rows: int, width: int) -> None:
        """Room for ``rows`` rows and ``width`` other positions per row. A place for other
        positions is a column of its own: a wider account adds columns and copies none
        (a 2-D block had to be copied whole: ~26 ms for the preset's largest table, 39
        times in the crash's first 40,000 events)."""
        cap = max(rows, self._cap)

        def grown(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            if len(a) == cap:
                return a
            out = np.zeros(cap, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._f = {c: grown(self._f.get(c, np.zeros(0))) for c in _FLOAT_COLS}
        self._i = {c: grown(self._i.get(c, np.zeros(0, dtype=np.int64))) for c in _INT_COLS}
        self._isolated = grown(self._isolated)
        self._other_n = grown(self._other_n)
        self._other = [_OtherColumns(*(grown(a) for a in place)) for place in self._other]
        while len(self._other) < width:
            self._other.append(
                _OtherColumns(
                    np.zeros(cap, dtype=np.int64),
                    np.zeros(cap, dtype=np.float64),
                    np.zeros(cap, dtype=np.int64),
                    np.zeros(cap, dtype=np.bool_),
                )
            )
        self._cap = cap
        self._make_views()

    def _make_views(self) -> None:
        """The row views over the columns as they are now (after a growth or unpickling)."""
        self._views = _RowViews(self._f, self._i, self._isolated, self._other_n, self._other)

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__ if name != "_views"}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._make_views()

    def __len__(self) -> int:
        return self._n

    def __contains__(self, account: object) -> bool:
        return account in self._row

    @property
    def accounts(self) -> list[str]:
        names: list[str] = self._names.names(self._i["account"][: self._n]).tolist()
        return names

    def put(
        self,
        account: str,
        pos: PositionRisk,
        account_equity: int,
        others: Sequence[OtherPosition] = (),
        wallet: int | None = None,
        fixed: int | None = None,
    ) -> None:
        """Set the account's position as evaluated; ``others``: its positions on other
        symbols, in the account's order (their moves since move its equity); ``wallet``:
        the account's cross wallet for a cross position (none: the backing equity less
        the position's PnL, an isolated position's margin); ``fixed``: the maintenance
        the backing equity carries that no mark moves (``fixed_maintenance`` of the
        account's cross positions, or of an isolated one; none: the position's own)."""
        if wallet is None or pos.isolated:
            wallet = pos.backing_equity - pos.unrealized_pnl
        if fixed is None or pos.isolated:
            fixed = fixed_maintenance(pos)
        if len(others) > self._wide_after:
            own = OtherPosition(-1, to_float(pos.qty), pos.mark_price, not pos.isolated)
            pad = [0.0] * len(others)
            shared = SharedPositions(
                [*others, own],
                {-1: len(others)},
                [*pad, to_float(pos.backing_equity)],
                to_float(account_equity),
                [*pad, to_float(wallet)],
                [*pad, to_float(fixed)],
            )
            self.put_shared(account, pos, shared, -1)
            return
        columns = len(others)
        row = self._put_row(account, pos, columns)
        v = self._views
        v.mark[row] = to_float(pos.mark_price)
        v.backing[row] = to_float(pos.backing_equity)
        v.equity[row] = to_float(account_equity)
        v.wallet[row] = to_float(wallet)
        v.fixed_maint[row] = to_float(fixed)
        self._wide.pop(row, None)
        v.other_n[row] = columns
        places = v.other  # at least ``columns`` of them (``_put_row`` grows them)
        for k in range(columns):  # not a zip(strict=...): mypyc calls that as Python
            sym, qty, mark, cross = places[k]
            sym[row], qty[row], mark[row], cross[row] = others[k]

    def put_shared(
        self, account: str, pos: PositionRisk, shared: SharedPositions, symbol_index: int
    ) -> None:
        """Set a wide account's position (``symbol_index``: its place in ``shared``).
        Needed only when the position itself (size, entry, isolation) changed or the
        account became wide: an evaluation updates ``shared`` for every row at once."""
        row = self._put_row(account, pos, 0)
        self._wide[row] = (shared, symbol_index)
        self._views.other_n[row] = 0

    def _put_row(self, account: str, pos: PositionRisk, columns: int) -> int:
        """The account's row (a new one if needed) with the position's own columns set."""
        row = self._row.get(account)
        if columns > len(self._other) or (row is None and self._n == self._cap):
            self._grow(2 * self._cap if self._n == self._cap else self._cap, columns)
        v = self._views
        if row is None:
            row = self._row[account] = self._n
            self._n += 1
            v.account[row] = self._names.code(account)
            # a new opening: no light announced to it (``reserve_openings``)
            v.light[row] = v.alerted[row] = v.announced_light[row] = 0
            self._opened_count += 1
            v.opened[row] = self._opened_count
            v.ranked_row[row] = -1
            v.score[row] = 0.0
            self.structure_changed = True
        elif (v.qty[row] > 0) != (pos.qty > 0):
            # flipped: a new place, other queue
            v.light[row] = v.alerted[row] = v.announced_light[row] = 0
            self._opened_count += 1
            v.opened[row] = self._opened_count
        v.qty[row] = to_float(pos.qty)
        v.entry[row] = to_float(pos.entry_price)
        v.isolated[row] = pos.isolated
        v.abs_qty[row] = abs(pos.qty)
        return row

    def remove(self, account: str) -> None:
        row = self._row.pop(account, None)
        if row is None:
            return
        last = self._n - 1
        self._wide.pop(row, None)
        if row != last:  # swap-remove: O(1), rows are unordered
            moved = self._wide.pop(last, None)
            if moved is not None:
                self._wide[row] = moved
            v = self._views
            self._row[self._names.name(v.account[last])] = row
            for a in v.every:
                a[row] = a[last]
            # the places the moved row uses (those past ``_other_n`` are never read)
            for place in v.other[: v.other_n[row]]:
                for column in cast("tuple[_Cells[Any], ...]", place):
                    column[row] = column[last]
        self._n = last
        self.structure_changed = True

    def view(self, account: str) -> tuple[float, int] | None:
        """(score, light) of the account's position at the last ranking that lit it."""
        row = self._row.get(account)
        if row is None or self._i["light"][row] == 0:
            return None
        return float(self._f["score"][row]), int(self._i["light"][row])

    def announced_light(self, account: str) -> int:
        """The light last announced (``light_at``) for the account's position (0: none)."""
        row = self._row.get(account)
        opened, light = self.announced.get(account, (0, 0))
        return light if row is not None and self._i["opened"][row] == opened else 0

    def restore_announced(self, account: str, light: int) -> None:
        """After a restart: the light announced for the account's (restored) position
        (a row written before openings were kept with it: ``restore_opening``)."""
        row = self._row.get(account)
        if row is not None:
            self.announced[account] = (int(self._i["opened"][row]), light)
            self._announce_to_row(account, row)

    def opening(self, account: str) -> int:
        """The opening number of the account's position here (0: none): what a ranking
        and an announced light name the position by."""
        row = self._row.get(account)
        return 0 if row is None else int(self._i["opened"][row])

    def restore_opening(self, account: str, opened: int, announced: tuple[int, int] | None) -> None:
        """After a restart: the account's position keeps the opening number it had (a
        ranking kept across the restart names it by that number) and the light last
        announced, to it or to an earlier position of the account (a ranking from
        before that position closed is judged by it)."""
        row = self._row.get(account)
        if row is not None and opened:
            self._i["opened"][row] = opened
        if announced is not None:
            self.announced[account] = announced
        if row is not None:
            self._announce_to_row(account, row)
        self.reserve_openings(max(opened, 0 if announced is None else announced[0]))

    def _announce_to_row(self, account: str, row: int) -> None:
        """The row's ``announced_light`` from ``announced``, after either changed."""
        self._i["announced_light"][row] = self.announced_light(account)

    def reserve_openings(self, upto: int) -> None:
        """Number the positions opened from now on past ``upto``: a number a kept
        ranking or an announced light still names is never given to another position."""
        self._opened_count = max(self._opened_count, upto)

    def ranking(self, side: str) -> SideRanking | None:
        """The side's last ranking."""
        return self._ranking.get(side)

    def other_moves(
        self,
        marks_by_index: npt.NDArray[np.int64],
        fees_by_index: npt.NDArray[np.float64] | None = None,
        tiers: TierColumns | None = None,
    ) -> OtherMoves:
        """Rows of accounts with positions on other symbols, and those positions' PnL
        since the evaluation: (moving the equity backing this position: the cross ones,
        none for an isolated one; moving the account's equity: all), quote currency.
        Summed in the account's order, one padded column at a time. ``fees_by_index``:
        each symbol's fee to close (a rate; none: no symbol has one): a position's equity
        then moves by q (1 -/+ r) (``margin``). With ``tiers``, the cross ones'
        maintenance at the current marks too (the part marks move)."""
        rows = np.flatnonzero(self._other_n[: self._n])
        counts = self._other_n[rows]
        cross = np.zeros(len(rows))
        every = np.zeros(len(rows))
        held = np.zeros(len(rows)) if tiers is not None else None
        # per place, for the margins (asked only with ``tiers``): its rows, symbol, qty,
        # mark now, cross
        places = []
        for k in range(int(counts.max(initial=0))):
            # every row has a first place: no mask (most rows have only that one)
            has = slice(None) if k == 0 else counts > k
            at = rows[has]
            place = self._other[k]
            symbol, qty, on_cross = place.symbol_index[at], place.qty[at], place.cross[at]
            move, now = _moves(qty, place.mark_price[at], symbol, marks_by_index, fees_by_index,
                               held is not None)  # fmt: skip
            every[has] += move
            cross[has] += np.where(on_cross, move, 0.0)
            if held is not None:
                places.append((has, symbol, qty, now, on_cross))
        if held is not None and tiers is not None and places:
            # every place's margins in one pass, then added place by place, in order
            margins = tiers.maintenance(
                np.concatenate([symbol for _, symbol, _, _, _ in places]),
                np.concatenate([qty for _, _, qty, _, _ in places]),
                np.concatenate([now for _, _, _, now, _ in places]),
            )
            start = 0
            for has, symbol, _, _, on_cross in places:
                margin = margins[start : start + len(symbol)]
                start += len(symbol)
                held[has] += np.where(on_cross, margin, 0.0)
        if not self._wide:
            return OtherMoves(rows, cross, every, held)
        # the wide rows: the same float operations in the same order, a row at a time
        # (``cumsum`` adds in order, from the first: as the loop did from 0.0; ``np.sum``
        # would add pairwise, other floats)
        wide_rows = sorted(self._wide)
        wide_cross, wide_every, wide_held = [], [], []
        for row in wide_rows:
            shared, own = self._wide[row]
            others = np.arange(len(shared.positions)) != shared.place[own]
            columns = shared.columns()
            symbol = columns.symbol_index[others]
            on_cross = columns.cross[others]
            moves, now = _moves(columns.qty[others], columns.mark_price[others], symbol,
                                marks_by_index, fees_by_index, tiers is not None)  # fmt: skip
            wide_cross.append(_sum_in_order(moves[on_cross]))
            wide_every.append(_sum_in_order(moves))
            if tiers is not None and now is not None:
                margin = tiers.maintenance(symbol, columns.qty[others], now)
                wide_held.append(_sum_in_order(margin[on_cross]))
        return OtherMoves(
            np.concatenate((rows, np.array(wide_rows, dtype=rows.dtype))),
            np.concatenate((cross, wide_cross)),
            np.concatenate((every, wide_every)),
            None if held is None else np.concatenate((held, wide_held)),
        )

    def rank(
        self,
        mark_price: int,
        profile: VenueProfile,
        *,
        symbol: str,
        ts_ms: int,
        light: bool = True,
        marks_by_index: npt.NDArray[np.int64] | None = None,
        fees_by_index: npt.NDArray[np.float64] | None = None,
        fee: float = 0.0,
        tiers: TierColumns | None = None,
        symbol_index: int = -1,
    ) -> list[RankAlert]:
        """Score and order both sides at ``mark_price``; with ``light``, give every
        position its light by its place and return the lights that changed (``light_at``).
        Without, the ranking waits for places known elsewhere (every partition's).
        ``marks_by_index``: every symbol's mark (``NO_MARK``: none yet), for the moves of
        accounts' positions on other symbols since their evaluation; ``fee``, this
        symbol's fee to close, and ``fees_by_index``, every symbol's (none: no symbol has
        one): where a venue counts it, equity moves by q (1 -/+ r), so that a score does
        not depend on when its account was last evaluated. ``tiers`` (every symbol's
        margin tiers) and ``symbol_index`` (this symbol's place in them): where the
        profile reads the maintenance, each position's backed maintenance at the current
        marks, for the same reason."""
        if profile.reads_maintenance and (tiers is None or symbol_index < 0):
            raise ValueError(f"{profile.name}'s ranking reads the maintenance: give the tiers")
        self.structure_changed = False
        n = self._n
        if not n:
            self._ranking.clear()
            self._order = {}
            return []
        f, i, v = self._f, self._i, self._views
        for row, (shared, own) in self._wide.items():  # a wide row reads its account's
            k = shared.place[own]
            v.mark[row] = to_float(shared.positions[k].mark_price)
            v.backing[row] = shared.backing[k]
            v.equity[row] = shared.equity
            v.wallet[row] = shared.wallet[k]
            v.fixed_maint[row] = shared.fixed_maintenance[k]
        qty = f["qty"][:n]
        mark = to_float(mark_price)
        # equity's move since each last evaluation
        move = (sloped(qty, fee) if fee else qty) * (mark - f["mark"][:n])
        backing = f["backing"][:n] + move
        equity = f["equity"][:n] + move
        isolated = self._isolated[:n]
        maintenance = None
        if profile.reads_maintenance and tiers is not None:
            # its own at the current mark, then (cross) its other cross positions'
            maintenance = f["fixed_maint"][:n] + tiers.maintenance(symbol_index, qty, mark)
        if marks_by_index is not None:
            rows, cross, every, held = self.other_moves(
                marks_by_index, fees_by_index, tiers if maintenance is not None else None
            )
            backing[rows] += np.where(isolated[rows], 0.0, cross)
            equity[rows] += every
            if maintenance is not None and held is not None:
                maintenance[rows] += np.where(isolated[rows], 0.0, held)
        scores = profile.rank_score(
            RankInput(
                qty=qty,
                entry_price=f["entry"][:n],
                mark_price=mark,
                backing_equity=backing,
                account_equity=equity,
                isolated=isolated,
                wallet=f["wallet"][:n],
                maintenance=maintenance,
            )
        )
        # under water: being liquidated, not a counterparty; last in the queue
        scores = np.where(backing <= 0, UNDERWATER_SCORE, scores)
        codes, names = i["account"][:n], self._names
        abs_qty = i["abs_qty"][:n]
        opened = i["opened"][:n]
        ranked_rows = {}
        last_orders = self._last_orders()
        for side, mask in (("long", qty > 0), ("short", qty < 0)):
            rows = _in_last_order(last_orders.get(side), mask)
            # score desc, then larger size, then account id
            ranked = ranked_rows[side] = queue_order(
                rows, scores, abs_qty, lambda at: names.names(codes[at])
            )
            self._ranking[side] = SideRanking(
                side=side,
                codes=codes[ranked],
                names=names,
                sizes=abs_qty[ranked],
                scores=scores[ranked],
                opened=opened[ranked],
                mark_price=mark_price,
                lights=np.zeros(len(ranked), dtype=np.int64),
                entries=f["entry"][ranked],
            )
        self._order = ranked_rows
        i["ranked_row"][:n] = np.arange(n)
        f["score"][:n] = scores
        if not light:
            return []
        alerted = i["alerted"]
        row_lights = np.zeros(n, dtype=np.int64)
        changes = []
        for side, ranked in ranked_rows.items():
            side_ranking = self._ranking[side]
            reaches, total = queue_reaches(side_ranking.sizes, profile.light_by_quantity)
            lights, changed, side_changes = self._light(
                side_ranking,
                reaches,
                total,
                profile,
                alerted[ranked],
                symbol,
                ts_ms,
            )
            row_lights[ranked] = lights
            alerted[ranked[changed]] = lights[changed]
            changes += side_changes
        i["light"][:n] = row_lights
        return sorted(changes, key=attrgetter("account"))

    def _last_orders(self) -> dict[str, npt.NDArray[np.intp]]:
        """Each side's rows of the last ranking in its order, each at the row its
        position has now (``ranked_row`` moved with it), less those closed since."""
        if not self._order:
            return {}
        was = self._i["ranked_row"][: self._n]
        size = max(int(o.max(initial=-1)) + 1 for o in (was, *self._order.values()))
        now = np.full(size, -1, dtype=np.intp)  # row then -> row now (-1: closed)
        held = np.flatnonzero(was >= 0)
        now[was[held]] = held
        orders = {}
        for side, order in self._order.items():
            rows = now[order]
            orders[side] = rows[rows >= 0]
        return orders

    def light_at(
        self,
        ranking: SideRanking,
        reaches: npt.NDArray[Any],
        total: int,
        profile: VenueProfile,
        *,
        symbol: str,
        ts_ms: int,
    ) -> tuple[list[RankAlert], list[str]]:
        """Light an earlier ranking of this table by its positions' reaches out of
        ``total`` (every partition's; ``VenueProfile.light``), however late: what was
        announced is kept per (account, opening), not per row, so a position closed or
        flipped since the ranking is judged as it was then. Returns the alerts and the
        accounts whose announced light changed (alerted or not)."""
        rows, places = self._ranked_rows(ranking)
        before = np.zeros(len(ranking.opened), dtype=np.int64)
        before[places] = self._i["announced_light"][rows]
        gone = np.ones(len(before), dtype=np.bool_)
        gone[places] = False
        gone_places = np.flatnonzero(gone)  # closed or flipped since: what ``announced`` says
        if len(gone_places):
            announced = self.announced
            before[gone_places] = [
                light if opened == then else 0
                for account, then in zip(
                    ranking.names_at(gone_places),
                    ranking.opened[gone_places].tolist(),
                    strict=True,
                )
                for opened, light in [announced.get(account, (0, 0))]
            ]
        lights, changed, changes = self._light(
            ranking, reaches, total, profile, before, symbol, ts_ms
        )
        accounts = ranking.names_at(changed)
        for account, opened, light in zip(
            accounts, ranking.opened[changed].tolist(), lights[changed].tolist(), strict=True
        ):
            self.announced[account] = (opened, light)
            row = self._row.get(account)
            if row is not None:
                self._announce_to_row(account, row)
        self._i["light"][rows] = lights[places]
        return sorted(changes, key=attrgetter("account")), accounts

    def _ranked_rows(
        self, ranking: SideRanking
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """The rows of the ranking's positions still open as ranked, and their places in
        it: a row whose opening number is the place's, and its account too. Found by
        opening number in numpy (a dict lookup per ranked account was 12% of a process
        at 200,000 accounts, ``benchmarks/bench_takeover.py``), unless the ranking names
        an opening twice (rows restored before openings were kept could share one): then
        by account."""
        opened = ranking.opened
        order = np.argsort(opened, kind="stable")
        numbers = opened[order]
        n = self._n
        if len(numbers) > 1 and bool((numbers[1:] == numbers[:-1]).any()):
            rows = np.array(
                [self._row.get(a, -1) for a in ranking.accounts.tolist()], dtype=np.intp
            )
            now = np.append(self._i["opened"][:n], -1)  # row -1: no position now
            places = np.flatnonzero(now[rows] == opened)
            return rows[places], places
        if not len(numbers) or not n:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
        now = self._i["opened"][:n]
        at = np.minimum(np.searchsorted(numbers, now), len(numbers) - 1)
        rows = np.flatnonzero(numbers[at] == now)
        places = order[at[rows]]
        if ranking.names is self._names:  # ranked here: one code per account
            same = self._i["account"][rows] == ranking.codes[places]
        else:
            same = self._names.names(self._i["account"][rows]) == ranking.names.names(
                ranking.codes[places]
            )
        return rows[same], places[same]

    @staticmethod
    def _light(
        ranking: SideRanking,
        reaches: npt.NDArray[Any],
        total: int,
        profile: VenueProfile,
        before: npt.NDArray[np.int64],
        symbol: str,
        ts_ms: int,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp], list[RankAlert]]:
        """Lights by reach (``ranking.lights`` set); alerts debounced: a change from the
        light last announced (``before``, 0: none) is announced once the position sits
        ``ALERT_MARGIN`` of its queue (of its positions or quantity, as the lights
        measure it) away from a light boundary, so a position hovering on a boundary
        does not page the desk on every re-rank.
        Returns (lights, entries whose announced light changed, alerts at ``ts_ms``)."""
        # elementwise over arrays (typed for one position): ``Any``, so that a compiled
        # build (``tools/compile_engine.py``) does not check its result is an ``int``
        light_of: Any = profile.light
        lights = np.asarray(light_of(reaches, total), dtype=np.int64)
        # settled: the same light ALERT_MARGIN of the queue above and below the reach
        margin = int(total * ALERT_MARGIN)  # 0 below 100 positions: no debounce
        above = light_of(np.maximum(reaches - margin, 1), total)
        below = light_of(np.minimum(reaches + margin, total), total)
        settled = np.asarray(above) == np.asarray(below)
        ranking.lights[:] = lights
        shown = profile.venue_indicator
        changed = np.nonzero((lights != before) & settled)[0]
        # a new position (nothing announced before) is alerted only entering at the top
        alerted = changed[(before[changed] != 0) | (lights[changed] == LIGHTS)]
        mark_price, side = ranking.mark_price, ranking.side
        changes = [
            RankAlert(
                ts_ms,
                account,
                symbol,
                side,
                light,
                previous or None,
                score,
                div_ceil(size * mark_price, SCALE),
                shown(light),
            )
            for account, light, previous, score, size in zip(
                ranking.names_at(alerted),
                lights[alerted].tolist(),
                before[alerted].tolist(),
                ranking.scores[alerted].tolist(),
                ranking.sizes[alerted].tolist(),
                strict=True,
            )
        ]
        return lights, changed, changes

    def side_totals(self, side: str) -> tuple[int, tuple[int, ...], tuple[float, ...]]:
        """(open interest, positions per light 0..5, first ``TOP_SCORES`` scores) of one side."""
        n = self._n
        qty = self._f["qty"][:n]
        mask = qty > 0 if side == "long" else qty < 0
        lights = np.bincount(self._i["light"][:n][mask], minlength=6)
        top = self._ranking[side].scores[:TOP_SCORES].tolist() if side in self._ranking else []
        return (
            int(self._i["abs_qty"][:n][mask].sum()),
            tuple(int(c) for c in lights[:6]),
            tuple(top),
        )

    def winners(self, mark_price: int) -> dict[str, SideWinners]:
        """Each side's positive PnL at ``mark_price`` and sizes, for a second opinion: one
        numpy pass (floats: a projection; rounded down to raw units)."""
        n = self._n
        qty = self._f["qty"][:n]
        pnl = qty * (to_float(mark_price) - self._f["entry"][:n])
        out = {}
        for side, mask in (("long", qty > 0), ("short", qty < 0)):
            profits = np.floor(pnl[mask & (pnl > 0)] * SCALE)  # each one's, raw units
            sizes = self._i["abs_qty"][:n][mask]
            out[side] = SideWinners(
                profit=_exact_sum(profits),
                top_profits=_largest(profits),
                size=_exact_sum(sizes),
                top_sizes=_largest(sizes),
            )
        return out

    def unit_profits(self, accounts: Iterable[str], mark_price: int) -> list[float]:
        """Each account's unrealised PnL per base unit at ``mark_price`` (0.0: no
        position), in the order given (floats, as the table keeps entries)."""
        rows = [self._row.get(a, -1) for a in accounts]
        known = np.array([r for r in rows if r >= 0], dtype=np.intp)
        qty, entry = self._f["qty"][known], self._f["entry"][known]
        per_unit = iter(np.sign(qty) * (to_float(mark_price) - entry))
        return [float(next(per_unit)) if r >= 0 else 0.0 for r in rows]

    def ranked(self, side: str) -> Iterator[RankedEntry]:
        """The side's queue at the last ranking, first to be deleveraged first (sizes and
        scores as they were then; a position closed since is still listed)."""
        ranking = self._ranking.get(side)
        if ranking is None:
            return
        names, codes = ranking.names, ranking.codes
        for place in range(len(codes)):  # often read only at its head: a name at a time
            yield RankedEntry(
                account=names.name(int(codes[place])),
                qty=int(ranking.sizes[place]),
                score=float(ranking.scores[place]),
                rank=place,
                light=int(ranking.lights[place]),
            )
