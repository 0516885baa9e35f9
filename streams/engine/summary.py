"""Stage A's summary of one partition for one fund, and the merge that stage B decides on.

A partition holds a share of the accounts; the fund's decisions (``engine.watch``) need
all of them. What they need is mergeable, so each partition sends, per symbol:

- each side's deficit curve on a fixed grid of moves (``move_grid``): sums, so the
  partitions' curves add up. The grid holds 0, the ladder's shocks and the imminent
  distance, so loss now, the ladder and the imminent test are exact at the fund (up to
  one raw unit of rounding per partition, upwards). Between grid points the merged
  curve is the chord: the curve is convex (a sum of hinges), so the chord lies above it
  and the ADL distance read from it is never larger than the true one (conservative,
  off by at most one grid step);
- the liquidatable positions and the bankrupt ones (a book walk and a trigger's list are
  not additive; both are few: the venue closes them);
- the bankruptcy counter and the fund's cross over-count (sums);
- the head of each side's ADL queue: the ``top_k`` first of the partition's own ranking.
  The global first k are among the partitions' first k, so the merged head is exact as
  far as k reaches;
- at the marks where a symbol is lit (``refresh_due``), each side's histogram of
  ranking scores (``engine.quantiles``): the desk turns the merged one into boundaries
  and the partition lights the ranking it summarised there (kept until then, within a
  budget of ``KEPT_ENTRIES`` positions: ``Summarizer.ranking_at``).

Summaries are taken at marks, at most one per ``interval_ms`` bucket of event time per
fund (the first mark of each bucket): every partition sees the same marks, so every
partition summarises at the same marks and the fund can wait for all of them.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.engine.adl import QueueEntry, RankedEntry
from streams.engine.config import EngineConfig, refresh_due
from streams.engine.engine import Engine
from streams.engine.fixed import to_float
from streams.engine.fund import MAX_UP_MOVE, Curve
from streams.engine.inverse import adverse_moves, engine_move
from streams.engine.quantiles import (
    DEFAULT_ACCURACY,
    Histogram,
    histogram,
    score_buckets,
    wire_int,
)
from streams.engine.queue import SideRanking
from streams.engine.second_opinion import NO_WINNERS, SideWinners
from streams.engine.signals import BankruptPosition, RankAlert

DEFAULT_TOP_K = 64
# positions of the rankings kept for their lights (the desk's boundaries come back as
# far behind as the desk lags: a backlog); beyond, the oldest are dropped (unlit)
KEPT_ENTRIES = 4_000_000
SIDES = ("long", "short")


def move_grid(config: EngineConfig, inverse: bool = False) -> tuple[float, ...]:
    """Moves at which curves are sent: 0, the shocks, +-the imminent distance, and a
    grid for the ADL distance: 1% steps to 10%, 2.5% to 30%, 10% to 100%, then 50% to
    +1000% (a short's distance is searched that far). With ``inverse`` symbols, also the
    moves of x the shocks and the imminent distance of their USD price are
    (``inverse.engine_move``): read there, exactly."""
    steps = [i * 0.01 for i in range(1, 11)]
    steps += [i * 0.025 for i in range(5, 13)]
    steps += [i * 0.1 for i in range(4, 11)]
    ups = [1.0 + i * 0.5 for i in range(1, int((MAX_UP_MOVE - 1.0) / 0.5) + 1)]
    moves = {0.0, *config.shocks, config.imminent_distance, -config.imminent_distance}
    moves.update(round(s, 6) for s in steps)
    moves.update(-round(s, 6) for s in steps)
    moves.update(ups)
    if inverse:
        moves.update(engine_move(s) for s in config.shocks)
        moves.update(adverse_moves(config.imminent_distance, True))
    return tuple(sorted(moves))


@dataclass(frozen=True, slots=True)
class SymbolDigest:
    symbol: str
    mark_price: int
    mark_ts_ms: int
    changes: int  # the engine's change counter when taken (a cache key, not sent)
    bankruptcies: int
    long_deficits: tuple[int, ...]  # on the move grid
    short_deficits: tuple[int, ...]
    liquidatable: tuple[tuple[str, int, int], ...]  # (account, bankruptcy price, signed qty)
    bankrupt: tuple[BankruptPosition, ...]
    long_head: tuple[QueueEntry, ...]  # the partition's ADL queue, first first
    short_head: tuple[QueueEntry, ...]
    long_scores: Histogram  # of the partition's ranking, best bucket first
    short_scores: Histogram
    long_winners: SideWinners = NO_WINNERS  # positive PnL and sizes at the mark
    short_winners: SideWinners = NO_WINNERS

    def scores(self, side: str) -> Histogram:
        return self.long_scores if side == "long" else self.short_scores


@dataclass(frozen=True, slots=True)
class RiskSummary:
    fund: str
    partition: int
    clock: tuple[int, int, str]  # canonical key of the mark it was taken at
    overcount: int
    symbols: tuple[SymbolDigest, ...]  # the fund's symbols that have a mark

    @property
    def ts_ms(self) -> int:
        return self.clock[0]


@dataclass(frozen=True, slots=True)
class SummarisedRanking:
    """A ranking a summary described: each side's queue and its positions' buckets."""

    ranked_at_ms: int  # the summary's mark
    sides: dict[str, tuple[SideRanking, npt.NDArray[np.int64]]]

    @property
    def size(self) -> int:
        return sum(len(buckets) for _, buckets in self.sides.values())


def summarised_ranking(engine: Engine, sym: str, accuracy: float, ts_ms: int) -> SummarisedRanking:
    sides = {}
    for side in SIDES:
        ranking = engine.ranking(sym, side)
        if ranking is not None:
            sides[side] = (ranking, score_buckets(ranking.scores, accuracy))
    return SummarisedRanking(ts_ms, sides)


def digest(
    engine: Engine,
    sym: str,
    grid: Sequence[float],
    top_k: int,
    ranking: SummarisedRanking | None,
) -> SymbolDigest:
    """``ranking``: at a lit mark, the ranking whose score histograms go with it."""
    sides = {} if ranking is None else ranking.sides

    def head(side: str) -> tuple[QueueEntry, ...]:
        ranked = engine.ranking(sym, side)  # as of the last ranking, like ``Engine.queue``
        if ranked is None:
            return ()
        # PnL per unit at the summary's mark, of each entry as ranked (as its size is)
        sign = 1.0 if side == "long" else -1.0
        return tuple(
            map(
                QueueEntry,
                ranked.names_at(slice(top_k)),
                ranked.sizes[:top_k].tolist(),
                ranked.scores[:top_k].tolist(),
                (sign * (to_float(mark) - ranked.entries[:top_k])).tolist(),
            )
        )

    def scores(side: str) -> Histogram:
        if side not in sides:
            return ()
        ranked, buckets = sides[side]
        return histogram(buckets, engine.light_weights(sym, ranked))

    mark = engine.marks[sym]
    winners = engine.winners(sym)
    long_deficits, short_deficits = engine.deficit_grid(sym, grid)
    return SymbolDigest(
        symbol=sym,
        mark_price=mark,
        mark_ts_ms=engine.symbols[sym].mark_ts_ms,
        changes=engine.symbol_changes(sym),
        bankruptcies=engine.bankruptcies(sym),
        long_deficits=tuple(long_deficits),
        short_deficits=tuple(short_deficits),
        liquidatable=tuple(engine.liquidatable(sym)),
        bankrupt=tuple(engine.bankrupt_positions(sym)),
        long_head=head("long"),
        short_head=head("short"),
        long_scores=scores("long"),
        short_scores=scores("short"),
        long_winners=winners["long"],
        short_winners=winners["short"],
    )


class Summarizer:
    """Takes one partition's summaries; re-digests only symbols that changed since."""

    def __init__(
        self,
        engine: Engine,
        partition: int,
        interval_ms: int,
        top_k: int = DEFAULT_TOP_K,
        accuracy: float = DEFAULT_ACCURACY,
    ) -> None:
        self.engine = engine
        self.partition = partition
        self.interval_ms = interval_ms
        self.top_k = top_k
        self.accuracy = accuracy
        self.grid = move_grid(engine.config, any(i.inverse for i in engine.instruments.values()))
        self._digests: dict[str, SymbolDigest] = {}
        # per symbol, the rankings at its lit marks, oldest first, until lit
        self._rankings: dict[str, list[SummarisedRanking]] = {}
        self._kept = 0  # positions in the kept rankings (a running total: a sum over
        # them per summary grew with the backlog and starved the desk of the event loop)
        self.kept_entries = KEPT_ENTRIES
        # rankings kept (True) and forgotten (False) since the caller last took them, in
        # order, if it asks (a list): an adapter that persists them follows
        self.kept_log: list[tuple[str, SummarisedRanking, bool]] | None = None

    @property
    def waiting(self) -> int:
        """Rankings kept until the desk's boundaries light them."""
        return sum(len(kept) for kept in self._rankings.values())

    def ranking_at(self, sym: str, ts_ms: int) -> SummarisedRanking | None:
        """The ranking of ``sym`` summarised at its lit mark ``ts_ms`` (and forget it
        and older ones): ``None`` if not kept (summarised before a restart, or dropped)."""
        kept = self._rankings.get(sym, [])
        while kept and kept[0].ranked_at_ms <= ts_ms:
            ranking = kept.pop(0)
            self._kept -= ranking.size
            self._log(sym, ranking, False)
            if ranking.ranked_at_ms == ts_ms:
                return ranking
        return None

    def restore(self, rankings: Iterable[tuple[str, SummarisedRanking]]) -> None:
        """After a restart: the rankings kept before it (persisted by the adapter), so
        the desk's boundaries for them light them as if nothing had happened. Their
        positions' opening numbers are reserved (``Engine.reserve_openings``)."""
        for sym, ranking in sorted(rankings, key=lambda r: (r[0], r[1].ranked_at_ms)):
            kept = self._rankings.setdefault(sym, [])
            if kept and kept[-1].ranked_at_ms >= ranking.ranked_at_ms:
                continue  # one per mark: a copy
            kept.append(ranking)
            self._kept += ranking.size
            for side_ranking, _ in ranking.sides.values():
                if len(side_ranking.opened):
                    self.engine.reserve_openings(sym, int(side_ranking.opened.max()))

    def _keep(self, sym: str, ranking: SummarisedRanking) -> None:
        self._rankings.setdefault(sym, []).append(ranking)
        self._kept += ranking.size
        self._log(sym, ranking, True)
        while self._kept > self.kept_entries:
            oldest_sym, oldest = min(
                ((s, k) for s, k in self._rankings.items() if k),
                key=lambda sk: sk[1][0].ranked_at_ms,
            )
            dropped = oldest.pop(0)
            self._kept -= dropped.size
            self._log(oldest_sym, dropped, False)

    def _log(self, sym: str, ranking: SummarisedRanking, kept: bool) -> None:
        if self.kept_log is not None:
            self.kept_log.append((sym, ranking, kept))

    def due(self, ts_ms: int, previous_mark_ms: int | None) -> bool:
        """Whether a fund's mark at ``ts_ms`` opens a new interval (the previous mark
        of any of the fund's symbols was at ``previous_mark_ms``)."""
        return refresh_due(ts_ms, previous_mark_ms, self.interval_ms)

    def summary(self, fund: str, clock: tuple[int, int, str]) -> RiskSummary:
        engine = self.engine
        digests = []
        for sym in engine.fund_symbols[fund]:
            if sym not in engine.marks:
                continue
            cached = self._digests.get(sym)
            if cached is None or cached.changes != engine.symbol_changes(sym):
                if engine.ranked_at_ms(sym) != clock[0]:
                    engine.rerank(sym, clock[0])  # the head as of the summary, like a trigger's
                ranking = None
                if engine.symbols[sym].lit_at_ms == clock[0]:  # the desk lights this one
                    ranking = summarised_ranking(engine, sym, self.accuracy, clock[0])
                    self._keep(sym, ranking)
                cached = self._digests[sym] = digest(engine, sym, self.grid, self.top_k, ranking)
            digests.append(cached)
        return RiskSummary(fund, self.partition, clock, engine.fund_overcount(fund), tuple(digests))


# ---------------------------------------------------------------------- merged view
@dataclass(frozen=True, slots=True)
class GridCurve:
    """A deficit curve known on a grid: exact there, the chord in between (above the
    convex curve: conservative), flat beyond the ends."""

    grid: Sequence[float]
    values: Sequence[int]

    def __call__(self, move: float) -> int:
        grid = self.grid
        i = bisect_left(grid, move)
        if i < len(grid) and grid[i] == move:
            return self.values[i]
        if i == 0:
            return self.values[0]
        if i == len(grid):
            return self.values[-1]
        m0, m1 = grid[i - 1], grid[i]
        v0, v1 = self.values[i - 1], self.values[i]
        return v0 + math.ceil((v1 - v0) * ((move - m0) / (m1 - m0)))


class MergedView:
    """Every partition's summary of one fund at one mark, as the watch's ``MarketView``."""

    def __init__(self, summaries: Iterable[RiskSummary], grid: Sequence[float]) -> None:
        self.summaries = list(summaries)
        self.grid = grid
        self._by_symbol: dict[str, list[SymbolDigest]] = {}
        for summary in self.summaries:
            for d in summary.symbols:
                self._by_symbol.setdefault(d.symbol, []).append(d)
        self._curves: dict[tuple[str, bool], Curve] = {}

    def digests(self, symbol: str) -> list[SymbolDigest]:
        return self._by_symbol.get(symbol, [])

    def version(self, symbol: str) -> None:
        return None  # one view per mark group: nothing to keep across them

    def changed(self, fund: str) -> None:
        return None

    def mark(self, symbol: str) -> int | None:
        """The mark of the group: the oldest digest's. A partition that skipped the
        group (applied before a restart, its summary not sent) stands in with a later
        mark's summary (``FundDesk._complete``), and it may be the first partition."""
        digests = self._by_symbol.get(symbol)
        return min(digests, key=lambda d: d.mark_ts_ms).mark_price if digests else None

    def curve(self, symbol: str, is_long: bool) -> Curve:
        curve = self._curves.get((symbol, is_long))
        if curve is None:
            columns = [
                d.long_deficits if is_long else d.short_deficits
                for d in self._by_symbol.get(symbol, [])
            ]
            values = [sum(col) for col in zip(*columns, strict=True)] or [0] * len(self.grid)
            curve = self._curves[(symbol, is_long)] = GridCurve(self.grid, values)
        return curve

    def liquidatable(self, symbol: str) -> list[tuple[str, int, int]]:
        return [row for d in self._by_symbol.get(symbol, []) for row in d.liquidatable]

    def bankrupt(self, symbol: str) -> list[BankruptPosition]:
        return [b for d in self._by_symbol.get(symbol, []) for b in d.bankrupt]

    def bankruptcies(self, symbol: str) -> int:
        return sum(d.bankruptcies for d in self._by_symbol.get(symbol, []))

    def overcount(self, fund: str) -> int:
        return sum(s.overcount for s in self.summaries if s.fund == fund)

    def prepare_queue(self, symbol: str, ts_ms: int) -> list[RankAlert]:
        return []  # the heads are as of each partition's summary

    def winners(self, symbol: str) -> dict[str, SideWinners]:
        digests = self._by_symbol.get(symbol, [])
        return {
            "long": SideWinners.merge(d.long_winners for d in digests),
            "short": SideWinners.merge(d.short_winners for d in digests),
        }

    def unit_profits(self, symbol: str, side: str, accounts: Sequence[str]) -> dict[str, float]:
        wanted = set(accounts)
        return {
            e.account: e.unit_profit
            for d in self._by_symbol.get(symbol, [])
            for e in (d.long_head if side == "long" else d.short_head)
            if e.account in wanted
        }

    def queue(self, symbol: str, side: str, qty_needed: int) -> list[RankedEntry]:
        entries = [
            e
            for d in self._by_symbol.get(symbol, [])
            for e in (d.long_head if side == "long" else d.short_head)
        ]
        entries.sort(key=lambda e: (-e.score, -e.qty, e.account))
        out: list[RankedEntry] = []
        covered = 0
        for place, e in enumerate(entries):
            out.append(RankedEntry(e.account, e.qty, e.score, place, 0))
            covered += e.qty
            if covered >= qty_needed:
                break
        return out


# ---------------------------------------------------------------------- wire
def to_wire(summary: RiskSummary, grid_size: int) -> dict[str, Any]:
    """JSON form; integers as decimal strings of raw units (they may pass 2**63)."""
    return {
        "fund": summary.fund,
        "partition": summary.partition,
        "clock": list(summary.clock),
        "overcount": str(summary.overcount),
        "grid_size": grid_size,
        "symbols": [
            {
                "symbol": d.symbol,
                "mark_price": str(d.mark_price),
                "mark_ts": d.mark_ts_ms,
                "bankruptcies": d.bankruptcies,
                "long_deficits": list(map(str, d.long_deficits)),
                "short_deficits": list(map(str, d.short_deficits)),
                "liquidatable": [[a, str(b), str(q)] for a, b, q in d.liquidatable],
                "bankrupt": [
                    [b.account, b.side, str(b.qty), str(b.bankruptcy_price), str(b.deficit)]
                    for b in d.bankrupt
                ],
                "long_head": [list(_head_row(e)) for e in d.long_head],
                "short_head": [list(_head_row(e)) for e in d.short_head],
                "long_scores": [[b, wire_int(n)] for b, n in d.long_scores],
                "short_scores": [[b, wire_int(n)] for b, n in d.short_scores],
                "long_winners": _winners_to_wire(d.long_winners),
                "short_winners": _winners_to_wire(d.short_winners),
            }
            for d in summary.symbols
        ],
    }


def _head_row(e: QueueEntry) -> tuple[str, str, float, float]:
    return (e.account, str(e.qty), e.score, e.unit_profit)


def _winners_to_wire(w: SideWinners) -> dict[str, Any]:
    return {
        "profit": str(w.profit),
        "top_profits": list(map(str, w.top_profits)),
        "size": str(w.size),
        "top_sizes": list(map(str, w.top_sizes)),
    }


def _winners_from_wire(obj: dict[str, Any] | None) -> SideWinners:
    if obj is None:
        return NO_WINNERS
    return SideWinners(
        profit=int(obj["profit"]),
        top_profits=tuple(map(int, obj["top_profits"])),
        size=int(obj["size"]),
        top_sizes=tuple(map(int, obj["top_sizes"])),
    )


def from_wire(obj: dict[str, Any]) -> RiskSummary:
    def head(rows: list[list[Any]]) -> tuple[QueueEntry, ...]:
        # a row of a summary from before second opinions has no unit profit: 0
        return tuple(
            QueueEntry(r[0], int(r[1]), float(r[2]), float(r[3] if len(r) > 3 else 0.0))
            for r in rows
        )

    symbols = []
    for d in obj["symbols"]:
        sym = d["symbol"]
        symbols.append(
            SymbolDigest(
                symbol=sym,
                mark_price=int(d["mark_price"]),
                mark_ts_ms=int(d["mark_ts"]),
                changes=-1,
                bankruptcies=int(d["bankruptcies"]),
                long_deficits=tuple(map(int, d["long_deficits"])),
                short_deficits=tuple(map(int, d["short_deficits"])),
                liquidatable=tuple((a, int(b), int(q)) for a, b, q in d["liquidatable"]),
                bankrupt=tuple(
                    BankruptPosition(a, sym, side, int(q), int(b), int(deficit))
                    for a, side, q, b, deficit in d["bankrupt"]
                ),
                long_head=head(d["long_head"]),
                short_head=head(d["short_head"]),
                long_scores=tuple((int(b), int(n)) for b, n in d["long_scores"]),
                short_scores=tuple((int(b), int(n)) for b, n in d["short_scores"]),
                # a summary from before second opinions has none: no winners known
                long_winners=_winners_from_wire(d.get("long_winners")),
                short_winners=_winners_from_wire(d.get("short_winners")),
            )
        )
    ts, rank, key = obj["clock"]
    return RiskSummary(
        fund=obj["fund"],
        partition=int(obj["partition"]),
        clock=(int(ts), int(rank), str(key)),
        overcount=int(obj["overcount"]),
        symbols=tuple(symbols),
    )
