"""Stage B without Faust: the fund desk merges the partitions' summaries (``risk_summaries``)
with the fund balances and order books, and decides stages, triggers and projections
with the same ``FundWatch`` as the single-process engine.

Order: a mark's summaries count once every partition has sent its own (a barrier: every
partition sees every mark, see ``engine.summary``); complete marks, fund updates and
books are applied in canonical order, released like the shard's inputs (an input with
data still to deliver holds back what comes after its last event). Between two complete
marks the fund and the books move on their own; the accounts are as of the last one.
A summary at or before the last complete mark of its fund is a re-delivered copy; so is
a fund or book update at or before the last offset of its input applied to its fund
(kept in the desk's changelog row: an old fund balance applied again after a newer one
would stand as the fund's balance until the next update).

Rank lights: when ``replay``'s engine lights a symbol (its first mark of every
``rank_refresh_ms`` of event time, ``refresh_due``) the desk sends the light boundaries
of the partitions' merged score histograms (``engine.quantiles``) to every partition,
which lights the ranking it summarised at that mark (``Summarizer.ranking_at``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from streams.engine.config import EngineConfig, refresh_due
from streams.engine.events import Depth, InsuranceFund
from streams.engine.instruments import Instrument
from streams.engine.inverse import Settlements
from streams.engine.quantiles import RankCuts, side_cuts
from streams.engine.queue import ALERT_MARGIN
from streams.engine.signals import AdlStage, AdlTriggered, FundProjection, Signal
from streams.engine.summary import SIDES, MergedView, RiskSummary, move_grid
from streams.engine.watch import FundWatch
from streams.pipeline.sequencer import Sequencer, canonical_key, clock_bound

T = TypeVar("T")
Key = tuple[Any, ...]
SUMMARY_TOPIC = "risk_summaries"


@dataclass(frozen=True, slots=True)
class DeskItem(Generic[T]):
    key: Key
    event: InsuranceFund | Depth | None  # None: a complete mark (``summaries``)
    summaries: tuple[RiskSummary, ...]
    tokens: tuple[T, ...]  # what the adapter acknowledges once applied


@dataclass(frozen=True, slots=True)
class DeskResult:
    signals: list[Signal]  # adl_triggers, insurance_projection
    cuts: list[RankCuts]  # light boundaries, for every partition


@dataclass(slots=True)
class DeskStats:
    marks: int = 0  # complete marks applied
    summaries: int = 0
    redelivered: int = 0


@dataclass(slots=True)
class FundDesk(Generic[T]):
    instruments: Mapping[str, Instrument]
    partitions: int
    config: EngineConfig = field(default_factory=EngineConfig)
    watch: FundWatch = field(init=False)
    grid: tuple[float, ...] = field(init=False)
    settlements: Settlements = field(init=False)
    sequencer: Sequencer[DeskItem[T]] = field(default_factory=Sequencer)
    # fund -> partition -> summaries not yet complete, in mark order
    waiting: dict[str, dict[int, list[tuple[Key, RiskSummary, T]]]] = field(default_factory=dict)
    latest: dict[str, tuple[RiskSummary, ...]] = field(default_factory=dict)  # fund -> mark
    complete_key: dict[str, Key] = field(default_factory=dict)  # fund -> last complete mark
    applied_key: dict[str, Key] = field(default_factory=dict)  # fund -> last mark applied
    # fund -> fund/book input (its topic: one partition) -> last offset applied to the fund
    applied: dict[str, dict[str, int]] = field(default_factory=dict)
    clock_key: Key | None = None  # the last complete mark of any fund
    last_ts: dict[str, int] = field(default_factory=dict)  # fund/book source -> last time
    fund_moved: set[str] = field(default_factory=set)  # balance changed since last check
    lights_at_ms: dict[str, int] = field(default_factory=dict)  # symbol -> last lights sent
    stats: DeskStats = field(default_factory=DeskStats)

    def __post_init__(self) -> None:
        self.watch = FundWatch.for_instruments(self.instruments, self.config)
        self.grid = move_grid(self.config, any(i.inverse for i in self.instruments.values()))
        # the shards' digests are in the engine's terms (an inverse symbol in x): books
        # come in, signals and reads go out, through the engine's own edge
        self.settlements = Settlements(self.instruments)

    # ------------------------------------------------------------------ intake
    def push_summary(self, summary: RiskSummary, token: T) -> bool:
        """Hold a partition's summary until every partition has reported this mark or a
        later one; ``False`` for a copy of one already counted."""
        fund = summary.fund
        key: Key = (*summary.clock, SUMMARY_TOPIC, 0)
        done = self.complete_key.get(fund)
        if done is not None and key <= done:
            self.stats.redelivered += 1
            return False
        queue = self.waiting.setdefault(fund, {}).setdefault(summary.partition, [])
        if queue and key <= queue[-1][0]:
            self.stats.redelivered += 1
            return False
        self.stats.summaries += 1
        queue.append((key, summary, token))
        self._complete(fund)
        return True

    def _complete(self, fund: str) -> None:
        """Marks every partition has reached, oldest first. A partition that skipped a
        mark (it was applied before a restart, its summary not yet sent) counts with
        its next summary."""
        queues = self.waiting[fund]
        while len(queues) == self.partitions and all(queues.values()):
            # every partition's oldest summary is at or after the oldest mark waiting
            key = min(q[0][0] for q in queues.values())
            parts = [queues[p][0] for p in sorted(queues)]
            for queue in queues.values():
                if queue[0][0] == key:
                    queue.pop(0)
            self.complete_key[fund] = key
            self.clock_key = key if self.clock_key is None else max(self.clock_key, key)
            summaries = tuple(summary for _, summary, _ in parts)
            tokens = tuple(token for k, _, token in parts if k == key)
            self.sequencer.push(key, DeskItem(key, None, summaries, tokens))

    def push_event(
        self,
        event: InsuranceFund | Depth,
        raw: Mapping[str, Any],
        where: str,
        offset: int,
        token: T,
    ) -> bool:
        """Hold a fund or book update until it is safe to apply; ``False`` for one
        applied before (re-delivered)."""
        if isinstance(event, InsuranceFund):
            self.watch.validate(event)
        if self._applied_before(self._fund_of_event(event), where, offset):
            self.stats.redelivered += 1
            return False
        key = (*canonical_key(raw), where, offset)
        self.last_ts[where] = max(self.last_ts.get(where, -1), event.ts_ms)
        self.sequencer.push(key, DeskItem(key, event, (), (token,)))
        return True

    def _applied_before(self, fund: str, where: str, offset: int) -> bool:
        return offset <= self.applied.get(fund, {}).get(where, -1)

    def rewind(self) -> None:
        """Forget what is buffered and not applied, as if it had never arrived: a
        rebalance took the desk's inputs away and gave them back unchanged, and they are
        delivered again from their committed offsets (``Shard.rewind``'s twin). A mark
        completed but not applied is completed again by its summaries."""
        self.sequencer = Sequencer()
        self.waiting.clear()
        self.last_ts.clear()
        self.complete_key = dict(self.applied_key)
        self.clock_key = max(self.applied_key.values(), default=None)

    def release(self, pending_sources: Iterable[str], flush: bool = False) -> list[DeskItem[T]]:
        """What is safe to apply, in order; ``pending_sources``: fund/book inputs with
        data not yet delivered; ``flush``: every input is caught up."""
        if flush:
            return self.sequencer.release_through(None)
        bound = clock_bound(self.clock_key, self.last_ts, pending_sources)
        return [] if bound is None else self.sequencer.release_through(bound)

    # ------------------------------------------------------------------ applying
    def view(self, fund: str) -> MergedView:
        return MergedView(self.latest.get(fund, ()), self.grid)

    def fund_of(self, item: DeskItem[T]) -> str:
        event = item.event
        return item.summaries[0].fund if event is None else self._fund_of_event(event)

    def _fund_of_event(self, event: InsuranceFund | Depth) -> str:
        if isinstance(event, InsuranceFund):
            return event.fund
        return self.instruments[event.symbol].fund

    def apply(self, item: DeskItem[T]) -> DeskResult:
        """Fund updates and books are recorded and judged at the next complete mark: the
        accounts they would be judged against are as of the last mark, and the venue's
        fills between (closing the positions the fund paid for) would be missing."""
        event = item.event
        if event is not None:
            where, offset = item.key[-2], item.key[-1]
            fund = self._fund_of_event(event)
            if self._applied_before(fund, where, offset):  # pushed twice (a re-read)
                self.stats.redelivered += 1
                return DeskResult([], [])
            self.applied.setdefault(fund, {})[where] = offset
        if isinstance(event, InsuranceFund):
            self.watch.record(event)
            self.fund_moved.add(event.fund)
            return DeskResult([], [])
        if isinstance(event, Depth):
            self.watch.depth[event.symbol] = self.settlements.book(event)
            return DeskResult([], [])
        fund = item.summaries[0].fund
        last = self.applied_key.get(fund)
        if last is not None and item.key <= last:  # completed twice (a re-read)
            self.stats.redelivered += 1
            return DeskResult([], [])
        # the mark's own time: a partition that skipped it stands in with a later summary
        # (``_complete``), and the first partition may be that one
        ts_ms = item.key[0]
        self.latest[fund] = item.summaries
        self.applied_key[fund] = item.key
        done = self.complete_key.get(fund)
        if done is None or done < item.key:  # released before a rewind, applied after it
            self.complete_key[fund] = item.key
        self.stats.marks += 1
        force = fund in self.fund_moved
        self.fund_moved.discard(fund)
        view = self.view(fund)
        signals = [self.settlements.outward(s) for s in self.watch.check(view, fund, ts_ms, force)]
        return DeskResult(signals, self._rank_cuts(view, fund, ts_ms))

    def projection(self, fund: str, ts_ms: int) -> FundProjection:
        """The fund as the desk sees it now (a read), in the venue's terms."""
        return self.settlements.projection(self.watch.projection(self.view(fund), fund, ts_ms))

    def plan_now(
        self, fund: str, symbol: str, ts_ms: int
    ) -> tuple[AdlTriggered, AdlStage | None] | None:
        """What ADL would do to the symbol now (a read), in the venue's terms."""
        planned = self.watch.plan_now(self.view(fund), symbol, ts_ms)
        return None if planned is None else (self.settlements.trigger(planned[0]), planned[1])

    def _rank_cuts(self, view: MergedView, fund: str, ts_ms: int) -> list[RankCuts]:
        """Light boundaries of the symbols whose refresh is due at this mark. Only where
        every partition's digest is of this mark: where one stands in with a later mark's
        (it skipped this one), its histogram is of another ranking; the lights of that
        refresh then come at the next mark where they are due (none, if the shards
        ranked only at this one: the lights wait a refresh period)."""
        out = []
        for sym in self.watch.fund_symbols[fund]:
            digests = view.digests(sym)
            if not digests or any(d.mark_ts_ms != ts_ms for d in digests):
                continue
            if not refresh_due(ts_ms, self.lights_at_ms.get(sym), self.config.rank_refresh_ms):
                continue
            self.lights_at_ms[sym] = ts_ms
            profile = self.watch.profiles[sym]
            sides = {
                side: side_cuts((d.scores(side) for d in digests), profile, ALERT_MARGIN)
                for side in SIDES
            }
            out.append(RankCuts(sym, ts_ms, sides))
        return out
