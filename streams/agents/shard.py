"""Stage A for one partition, without Faust: the accounts hashed to the partition and
every mark, applied in canonical order (``pipeline.sequencer``) by an ``Engine`` that
never projects the fund and ranks only for its summaries (the fund and the lights need
every account: stage B's job; the lights come back as boundaries, ``light``).

Marks are the clock. The mark fan-out writes every mark, in time order, to every
partition of ``account_marks``; an account event is applied once a mark at or after its
time has been seen, and once every account input of the partition that still has data
to deliver has moved past it. So the order equals ``replay``'s whatever the lag between
the account topics and the marks. A heartbeat on ``account_marks`` (sent by the fan-out
when marks stop) releases what is left when the account inputs are caught up.

Re-delivery after a crash is recognised per account (the last offset of each source
topic-partition applied to it, kept in its changelog row) and per symbol for marks (the
last mark time), so an event is applied at most once to the state. Outputs are
at-least-once: each carries the source offset and its index among that event's outputs,
a consumer's dedupe key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from streams import wire
from streams.engine.account import AccountState
from streams.engine.config import NEVER_MS, EngineConfig
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError, EventFailed
from streams.engine.events import Event, Mark
from streams.engine.instruments import Instrument
from streams.engine.quantiles import RankCuts, reaches_from_cuts
from streams.engine.signals import BankruptcyDetected, LiquidationDetected
from streams.engine.summary import SummarisedRanking, Summarizer, to_wire
from streams.pipeline.intake import dead_letter
from streams.pipeline.sequencer import TYPE_RANK, Sequencer, canonical_key, clock_bound

log = logging.getLogger("adl_monitor.agents.shard")
ACCOUNT_TOPICS = ("fills", "balances", "position_config")
CLOCK_TOPIC = "account_marks"
BOUNDARY_TOPIC = "rank_boundaries"  # stage B -> every partition: light boundaries
T = TypeVar("T")
Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Source:
    topic: str  # base name
    partition: int
    offset: int

    @property
    def where(self) -> str:
        return f"{self.topic}:{self.partition}"

    @property
    def header(self) -> bytes:
        return f"{self.topic}:{self.partition}:{self.offset}".encode()


@dataclass(frozen=True, slots=True)
class AccountRow:
    """What the changelog keeps of an account (``agents.codec``)."""

    state: AccountState
    applied: dict[str, int]  # source "topic:partition" -> last offset applied to it
    partition: int
    # symbol -> (its position's opening number there, 0: none; the opening the last
    # light there was announced to; that light): ``Engine.announced_lights`` (a bare
    # light in a row written before openings were kept)
    lights: Mapping[str, int | tuple[int, int, int]]
    # its fill and balance ids still in the dedupe window -> event time: a venue's re-send
    # after a restart is recognised (an empty window would apply it a second time)
    seen: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    key: Key  # canonical order
    event: Event
    raw: Mapping[str, Any]  # the input object, for a dead letter if the engine rejects it
    source: Source
    token: T  # what the adapter needs back (its message, to acknowledge it)


@dataclass(frozen=True, slots=True)
class Output:
    stream: str  # replay file name: accounts | liquidations | bankruptcies | dead_letters
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Applied:
    outputs: list[Output]
    accounts: list[str]  # accounts whose changelog row must be written
    mark_symbol: str | None  # the symbol whose mark row (time, price) must be written


@dataclass(slots=True)
class ShardStats:
    applied: int = 0
    redelivered: int = 0  # already applied before a restart: skipped
    late: int = 0  # arrived after later events were applied: applied out of order
    rejected: int = 0  # valid alone, impossible for the account (to dead letters)
    unlit: int = 0  # light boundaries for a ranking no longer kept (summarised before a restart)


@dataclass(slots=True)
class Shard(Generic[T]):
    partition: int
    instruments: Mapping[str, Instrument]
    engine: Engine = field(init=False)
    sequencer: Sequencer[Pending[T]] = field(default_factory=Sequencer)
    applied: dict[str, dict[str, int]] = field(default_factory=dict)  # acct -> where -> offset
    mark_seen_ms: dict[str, int] = field(default_factory=dict)  # symbol -> last mark time
    last_ts: dict[str, int] = field(default_factory=dict)  # account source -> last event time
    clock_key: Key | None = None  # canonical key of the last mark seen
    applied_key: Key | None = None
    # the highest mark_prices offset among the marks delivered here (the fan-out's
    # chain, ``AccountAgents._check_chain``): kept with the shard, so a row written by
    # an apply that a revocation interrupted still carries it, and a shard taken up
    # again goes on from it
    chain_last: int | None = None
    stats: ShardStats = field(default_factory=ShardStats)
    summary_interval_ms: int | None = None  # stage B: a fund summary per interval, at marks
    summarizer: Summarizer | None = field(init=False, default=None)
    due_summaries: dict[str, Key] = field(default_factory=dict)  # fund -> its mark group
    # the adapter persists the rankings waiting for their lights (``ranking_changes``)
    persist_rankings: bool = False

    def __post_init__(self) -> None:
        # ranked when replay's engine ranks (the lit marks) and at summaries (the queue
        # heads); lit by the boundaries the desk sends back for the lit marks
        refresh = NEVER_MS if self.summary_interval_ms is None else EngineConfig().rank_refresh_ms
        config = EngineConfig(rank_refresh_ms=refresh, light_locally=False, dedupe_by_account=True)
        self.engine = Engine(self.instruments, config)
        if self.summary_interval_ms is not None:
            self.summarizer = Summarizer(self.engine, self.partition, self.summary_interval_ms)
            if self.persist_rankings:
                self.summarizer.kept_log = []

    # ------------------------------------------------------------------ recovery
    def restore(
        self,
        accounts: Iterable[AccountRow],
        marks: Iterable[tuple[str, int, int]],
        rankings: Iterable[tuple[str, SummarisedRanking]] = (),
    ) -> None:
        """From the changelog: each account's row, (symbol, time, price) of the last
        mark applied per symbol, and the rankings summarised and not yet lit."""
        engine = self.engine
        for symbol, ts_ms, price in marks:
            engine.marks[symbol] = price
            engine.symbols[symbol].mark_ts_ms = ts_ms
            self._marked(symbol, ts_ms)
        self._put_rows(accounts)
        self.resume(rankings)

    def resume(self, rankings: Iterable[tuple[str, SummarisedRanking]] = ()) -> None:
        """Before a restored shard or a warm copy taken over applies its first input:
        the rankings kept for the desk's lights (from their table), and the mark group
        its rows end in reopened where it stopped midway. A fund whose marked symbols'
        last marks are not all at one time stopped inside a group (the previous owner
        applied some of its marks, not all, and its summary goes out when the group
        completes): that summary is due again, and the symbols marked already rank for
        it if the group is the first of its refresh period (the others did not reach
        it: their last mark is of the period before). Without it, the rest of the
        group found its summary interval begun: the desk never got the partition's
        summary of that mark, nor its ranking, and lit nothing there (a failover run
        lost ~160 rank alerts of one second this way, 2026-12-05)."""
        if self.summarizer is None:  # no summaries, no lights
            return
        self.summarizer.restore(rankings)
        engine = self.engine
        refresh_ms = engine.config.rank_refresh_ms
        for fund, symbols in engine.fund_symbols.items():
            times = {s: engine.symbols[s].mark_ts_ms for s in symbols if s in engine.marks}
            if len(set(times.values())) < 2:  # the rows end between two groups
                continue
            ts_ms, before_ms = max(times.values()), min(times.values())
            at = sorted(s for s, t in times.items() if t == ts_ms)
            self.due_summaries[fund] = (ts_ms, TYPE_RANK["mark"], at[-1])
            if ts_ms // refresh_ms == before_ms // refresh_ms:  # not the period's first group
                for sym in at:
                    engine.symbols[sym].lit_at_ms = before_ms

    def refresh(
        self, accounts: Iterable[AccountRow], marks: Iterable[tuple[str, int, int]]
    ) -> None:
        """A warm copy brought up to rows read from the changelog since (``agents.warm``):
        the marks moved first (each to its latest row, however far: the positions it
        crossed evaluated again, as an applied mark does), then the accounts whose row
        changed replaced and evaluated at those marks. Its outputs are not wanted: the
        partition's owner sent them."""
        engine = self.engine
        for symbol, ts_ms, price in sorted(marks, key=lambda m: (m[1], m[0])):
            if symbol not in engine.marks or ts_ms > engine.symbols[symbol].mark_ts_ms:
                engine.move_mark(symbol, ts_ms, price)
                self._marked(symbol, ts_ms)
        self._put_rows(accounts)

    def _marked(self, symbol: str, ts_ms: int) -> None:
        """The last mark applied to ``symbol`` (a row's) is at ``ts_ms``: a mark at or
        before it is a copy, and the refresh period holding it had its lit ranking (the
        owner ranked at the period's first mark): the next is due in a later period, on
        every partition's grid. (Unset, a restored shard ranked at its first mark, off
        the grid: the desk lit that ranking alone when the grid's had been skipped.)"""
        self.mark_seen_ms[symbol] = ts_ms
        self.engine.symbols[symbol].lit_at_ms = ts_ms

    def _put_rows(self, accounts: Iterable[AccountRow]) -> None:
        """Each account as its row says, at the marks the engine holds."""
        engine = self.engine
        rows = list(accounts)
        for row in rows:
            self.applied[row.state.account] = dict(row.applied)
        engine.restore(row.state for row in rows)
        engine.seen_ids.restore(
            (key, ts_ms, row.state.account) for row in rows for key, ts_ms in row.seen.items()
        )
        for row in rows:
            engine.restore_announced(row.state.account, row.lights)
        engine.touched.clear()

    def rewind(self) -> int:
        """Forget what is buffered and not applied, as if it had never arrived: a
        rebalance took the partition away and gave it back unchanged, and its inputs are
        delivered again from their committed offsets (``AccountAgents.shard`` decides).
        The state, the rankings waiting for their lights and the summaries due are kept
        (a restore from the changelog loses the last two). Returns the events dropped."""
        dropped = len(self.sequencer)
        self.sequencer = Sequencer()
        engine = self.engine
        # push() counts a mark as seen when buffered: only applied marks stay seen
        self.mark_seen_ms = {s: engine.symbols[s].mark_ts_ms for s in engine.marks}
        self.last_ts.clear()
        self.clock_key = None
        return dropped

    def row(self, account: str) -> AccountRow:
        engine = self.engine
        return AccountRow(
            engine.accounts[account],
            self.applied.get(account, {}),
            self.partition,
            engine.announced_lights(account),
            engine.seen_ids.of(account),
        )

    # ------------------------------------------------------------------ intake
    def push(self, event: Event, raw: Mapping[str, Any], source: Source, token: T) -> bool:
        """Buffer a decoded event; ``False`` if it was applied before (re-delivered)."""
        if isinstance(event, Mark):
            # one symbol's marks come in time order: one not after the last is a copy (the
            # fan-out is at-least-once too: a copy has a new offset, not a new time)
            if event.ts_ms <= self.mark_seen_ms.get(event.symbol, -1):
                self.stats.redelivered += 1
                return False
            self.mark_seen_ms[event.symbol] = event.ts_ms
        else:
            account = getattr(event, "account", None)
            if account is not None and source.offset <= self.applied.get(account, {}).get(
                source.where, -1
            ):
                self.stats.redelivered += 1
                return False
        key = (*canonical_key(raw), source.topic, source.offset)
        if self.applied_key is not None and key < self.applied_key:
            self.stats.late += 1
        if source.topic == CLOCK_TOPIC:
            self.clock_key = key
        else:
            self.last_ts[source.where] = max(self.last_ts.get(source.where, -1), event.ts_ms)
        self.sequencer.push(key, Pending(key, event, raw, source, token))
        return True

    def release(self, pending_sources: Iterable[str], flush: bool = False) -> list[Pending[T]]:
        """Events now safe to apply, in canonical order. ``pending_sources``: account
        inputs ("topic:partition") with data not yet delivered; ``flush``: the inputs are
        caught up and the clock is idle, release everything."""
        if flush:
            return self.sequencer.release_through(None)
        bound = clock_bound(self.clock_key, self.last_ts, pending_sources)
        return [] if bound is None else self.sequencer.release_through(bound)

    # ------------------------------------------------------------------ applying
    def apply(self, item: Pending[T]) -> Applied:
        event, source = item.event, item.source
        self.stats.applied += 1
        self.applied_key = item.key if self.applied_key is None else max(self.applied_key, item.key)
        outputs = self.summaries(before=item.key)
        # as they were before a mark: the fund's last mark time, and whether it is the
        # symbol's first (others may still get theirs at this time)
        previous_mark_ms, first_mark = None, False
        if isinstance(event, Mark):
            previous_mark_ms = self._fund_mark_ms(self.instruments[event.symbol].fund)
            first_mark = event.symbol not in self.engine.marks
        try:
            signals = self.engine.apply(event)
        except Exception as exc:  # contained: see EventFailed
            error = exc if isinstance(exc, AdlMonitorError) else EventFailed(exc)
            if isinstance(error, EventFailed):
                log.exception("partition %d: applying %s failed: dead-lettered",
                              self.partition, source.header.decode())  # fmt: skip
            self.stats.rejected += 1
            signals = []
            value = orjson.dumps(item.raw)
            letter = dead_letter(source.topic, source.partition, source.offset, value, error)
            outputs.append(Output("dead_letters", letter))
        outputs.extend(
            Output(*wire.render(signal))
            for signal in signals
            if isinstance(signal, LiquidationDetected | BankruptcyDetected)
        )
        for acct in sorted(self.engine.touched):
            risk = self.engine.risks[acct]
            # ranks as last lit (none until stage B's boundaries come back)
            outputs.append(Output("accounts", wire.account_risk(risk, self.engine)))
        self.engine.touched.clear()
        if isinstance(event, Mark):
            self._note_mark(event, item.key, previous_mark_ms)
            if not first_mark:
                outputs.extend(self._group_complete(event))
            return Applied(outputs, [], event.symbol)
        account = getattr(event, "account", None)
        if account is None:
            return Applied(outputs, [], None)
        self.applied.setdefault(account, {})[source.where] = source.offset
        return Applied(outputs, [account], None)

    def _fund_mark_ms(self, fund: str) -> int | None:
        """Time of the fund's last mark (of any of its symbols)."""
        engine = self.engine
        times = [
            engine.symbols[s].mark_ts_ms for s in engine.fund_symbols[fund] if s in engine.marks
        ]
        return max(times, default=None)

    def _note_mark(self, mark: Mark, key: Key, previous_mark_ms: int | None) -> None:
        """A summary of the mark's fund is due after this mark's group (the marks at its
        time: in canonical order nothing else comes at that time after a mark) if the
        group opens a new summary interval."""
        fund = self.instruments[mark.symbol].fund
        due = self.due_summaries.get(fund)
        if due is not None and due[0] == mark.ts_ms:
            self.due_summaries[fund] = key  # a later mark of the same group
        elif self.summarizer is not None and self.summarizer.due(mark.ts_ms, previous_mark_ms):
            self.due_summaries[fund] = key

    def _group_complete(self, mark: Mark) -> list[Output]:
        """The mark's fund summary at once when every symbol of the fund that has a mark
        has one at this time (venues mark all symbols on one tick): no need to wait for
        a later event to know the group is over."""
        fund = self.instruments[mark.symbol].fund
        key = self.due_summaries.get(fund)
        engine = self.engine
        marked = [s for s in engine.fund_symbols[fund] if s in engine.marks]
        if key is None or any(engine.symbols[s].mark_ts_ms != mark.ts_ms for s in marked):
            return []
        del self.due_summaries[fund]
        return self._take(fund, key)

    def _take(self, fund: str, key: Key) -> list[Output]:
        if self.summarizer is None:  # never due without one
            return []
        summary = self.summarizer.summary(fund, (key[0], key[1], key[2]))
        return [Output("risk_summaries", to_wire(summary, len(self.summarizer.grid)))]

    def summaries(self, before: Key | None = None) -> list[Output]:
        """The summaries due once the state has passed their mark group: before applying
        an event at a later time (``before``), or all of them (``None``: caught up)."""
        if self.summarizer is None:
            return []
        out = []
        for fund, key in sorted(self.due_summaries.items(), key=lambda kv: kv[1]):
            if before is not None and before[0] <= key[0]:
                continue
            del self.due_summaries[fund]
            out.extend(self._take(fund, key))
        return out

    def light(self, cuts: RankCuts) -> Applied:
        """Light the ranking this partition summarised for ``cuts``' time by the
        boundaries of every partition's: the rank alerts that gives, and the accounts
        whose row must be written (what was announced to them changed)."""
        summarizer = self.summarizer
        ranking = None if summarizer is None else summarizer.ranking_at(cuts.symbol, cuts.ts_ms)
        if ranking is None:
            self.stats.unlit += 1
            return Applied([], [], None)
        signals = []
        for side, (side_ranking, buckets) in ranking.sides.items():
            boundaries = cuts.sides.get(side)
            if boundaries is None:
                continue
            reaches = reaches_from_cuts(
                buckets, self.engine.light_weights(cuts.symbol, side_ranking), boundaries
            )
            signals += self.engine.light(
                cuts.symbol, side_ranking, reaches, boundaries.total, cuts.ts_ms
            )
        signals.sort(key=lambda s: s.account)
        lit = sorted(self.engine.lit)
        self.engine.lit.clear()
        return Applied([Output(*wire.render(signal)) for signal in signals], lit, None)

    def ranking_changes(self) -> list[tuple[str, SummarisedRanking, bool]]:
        """The rankings kept (True) and forgotten (False) since the last call, in order
        (with ``persist_rankings``)."""
        summarizer = self.summarizer
        if summarizer is None or not summarizer.kept_log:
            return []
        changes, summarizer.kept_log = summarizer.kept_log, []
        return changes

    def mark_row(self, symbol: str) -> tuple[int, int]:
        """(time, price) of the last mark applied for ``symbol``."""
        return self.engine.symbols[symbol].mark_ts_ms, self.engine.marks[symbol]
