"""The engine: one reducer over all input events, returning signals.

``Engine.apply(event) -> list[Signal]`` is the only way state changes. Account state
changes go through the pure account reducer (``account.apply``); the market-wide
indexes beside it are mutable for speed (a million positions cannot be copied per
tick), but are only touched here, and replaying the same events gives the same signals.

Cost of a mark tick: the positions whose liquidation or bankruptcy price lies between
the old and the new mark (``ThresholdIndex``), plus accounts with several cross
positions whose band the mark left (their thresholds move with every mark), plus wide
accounts whose move budget it used up (``MoveBudget``), plus O(log n) fund queries
(``DeficitIndex``). The ADL queue is re-ranked and lit at the first mark of every
``rank_refresh_ms`` of event time (``refresh_due``), and for a trigger's plan.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.engine import account as account_reducer
from streams.engine.account import AccountState
from streams.engine.adl import RankedEntry
from streams.engine.budget import MoveBudget
from streams.engine.config import EngineConfig, refresh_due
from streams.engine.dedupe import DedupeWindow
from streams.engine.events import (
    Balance,
    Depth,
    Event,
    Fill,
    InsuranceFund,
    IsolatedMargin,
    Mark,
)
from streams.engine.fixed import SCALE, div_ceil, div_floor, to_float
from streams.engine.fund import Curve, index_curve, shocked_price, shocked_prices
from streams.engine.index import DeficitIndex, ThresholdIndex, rounding_tolerance
from streams.engine.instruments import HOME_SETTLEMENT, Instrument
from streams.engine.inverse import (
    Settlements,
    account_of,
    adverse_moves,
    other_side,
    venue_qty,
)
from streams.engine.margin import bankruptcy_reach
from streams.engine.marks import Marks
from streams.engine.queue import (
    OtherPosition,
    QueueTable,
    SharedPositions,
    SideRanking,
    fixed_maintenance,
)
from streams.engine.risk import AccountRisk, Health, PositionRisk, evaluate, evaluate_moved
from streams.engine.sanity import MarketSanity
from streams.engine.second_opinion import NO_WINNERS, SideWinners
from streams.engine.signals import (
    AdlStage,
    AdlTriggered,
    BankruptcyDetected,
    BankruptPosition,
    FundProjection,
    LiquidationDetected,
    RankAlert,
    SideSummary,
    Signal,
)
from streams.engine.tier_columns import TierColumns
from streams.engine.watch import FundWatch


@dataclass(slots=True)
class EngineStats:
    events: int = 0
    duplicates: int = 0
    stale_marks: int = 0
    reevaluations: int = 0
    moved_reevaluations: int = 0  # of them, wide accounts' in O(positions that moved)


class _Latest:
    """A wide account's latest evaluation, one cell shared by all its symbols' deferred
    deficit entries: a re-evaluation sets it once (``version`` + 1), not once per symbol."""

    __slots__ = ("risk", "version")

    def __init__(self, risk: AccountRisk) -> None:
        self.risk = risk
        self.version = 0

    def set(self, risk: AccountRisk) -> None:
        if risk is not self.risk:
            self.risk = risk
            self.version += 1


@dataclass(slots=True)
class _SymbolState:
    name: str
    moved_for_fund: set[str]  # the fund's symbols that moved since its last check
    thresholds: ThresholdIndex = field(default_factory=ThresholdIndex)
    longs: DeficitIndex = field(default_factory=lambda: DeficitIndex(is_long=True))
    shorts: DeficitIndex = field(default_factory=lambda: DeficitIndex(is_long=False))
    queue: QueueTable = field(default_factory=QueueTable)  # open positions, for ranking
    # liquidatable but not bankrupt: account -> (bankruptcy price, signed qty)
    liquidatable: dict[str, tuple[int, int]] = field(default_factory=dict)
    mark_ts_ms: int = -1
    bankruptcies: int = 0  # positions that went bankrupt on this symbol, ever
    ranked_at_ms: int | None = None
    lit_at_ms: int | None = None  # the last periodic ranking (the refresh grid)
    changes: int = 0  # bumped on every re-index or mark (with ``deferred``: ``version``)
    # bumped when what the fund reads changes: the mark, the deficit indexes, the
    # liquidatable positions, the bankruptcy count (``FundWatch`` keeps its reads till then)
    fund_changes: int = 0
    # wide accounts whose position's bankruptcy price is indexed from their latest
    # evaluation, with the version of it last put (-1: none yet): put again before a read
    # of the indexes (``side_index``) when newer, not on each of the account's fills (nor
    # made: ``AccountRisk.position``)
    deferred: dict[str, tuple[_Latest, int]] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """Changes whenever the symbol's positions or mark do (a summary of it is stale):
        its own count plus the versions of the wide evaluations it reads. Never decreases
        (an entry that leaves adds its version to ``changes``): no two states share one."""
        return self.changes + sum(latest.version for latest, _ in self.deferred.values())

    def side_index(self, is_long: bool) -> DeficitIndex:
        """One side's deficit index, up to date (deferred entries put first)."""
        deferred = self.deferred
        if deferred:  # (most symbols hold no wide account: no loop made)
            for acct, (latest, put) in deferred.items():
                if put != latest.version:
                    pos = latest.risk.position(self.name)
                    if pos is not None:  # always: a closed position's entry is not deferred
                        self.put_deficit(acct, pos)
                    deferred[acct] = (latest, latest.version)  # a value replaced: no resize
        return self.longs if is_long else self.shorts

    def defer_deficit(self, acct: str, latest: _Latest) -> None:
        held = self.deferred.get(acct)
        if held is None or held[0] is not latest:
            self.undefer(acct)
            self.deferred[acct] = (latest, -1)

    def undefer(self, acct: str) -> None:
        held = self.deferred.pop(acct, None)
        if held is not None:
            self.changes += held[0].version  # ``version`` does not go back

    def put_deficit(self, acct: str, pos: PositionRisk) -> None:
        own, other = (self.longs, self.shorts) if pos.qty > 0 else (self.shorts, self.longs)
        own.put(acct, pos.bankruptcy_price, abs(pos.qty))
        other.remove(acct)

    def remove_deficit(self, acct: str) -> None:
        self.undefer(acct)
        self.longs.remove(acct)
        self.shorts.remove(acct)

    def fund_changed(self) -> None:
        self.fund_changes += 1
        self.moved_for_fund.add(self.name)


@dataclass(frozen=True, slots=True)
class _Layout:
    """An account's positions as one re-index lays them out in the indexes."""

    every: list[OtherPosition]  # every position, in the account's order
    place: dict[str, int]  # symbol -> its place in ``every``
    cross_count: int
    shared: SharedPositions | None  # a wide account's shared queue row value
    was_shared: bool  # it was wide already: its rows hold ``shared``
    cross_fixed: int  # its cross positions' ``fixed_maintenance``, for a ranking

    def __init__(
        self,
        every: list[OtherPosition],
        place: dict[str, int],
        cross_count: int,
        shared: SharedPositions | None,
        was_shared: bool,
        cross_fixed: int,
    ) -> None:  # written out: see signals.LadderPoint (one per re-index)
        object.__setattr__(self, "every", every)
        object.__setattr__(self, "place", place)
        object.__setattr__(self, "cross_count", cross_count)
        object.__setattr__(self, "shared", shared)
        object.__setattr__(self, "was_shared", was_shared)
        object.__setattr__(self, "cross_fixed", cross_fixed)

    @property
    def multi(self) -> bool:
        return self.cross_count >= 2

    @property
    def budgeted(self) -> bool:
        """Wide and cross on several symbols: one ``MoveBudget``, no band per position."""
        return self.shared is not None and self.multi


class Engine:
    def __init__(self, instruments: Mapping[str, Instrument], config: EngineConfig | None = None):
        # inverse symbols and wallets outside USDT: converted at ``apply``'s edges
        settlements = Settlements(instruments)
        self.settlements = settlements if settlements.active else None
        self.instruments = dict(instruments)
        self.config = config or EngineConfig()
        self.watch = FundWatch.for_instruments(self.instruments, self.config)
        self.profiles = self.watch.profiles
        self.fund_symbols = self.watch.fund_symbols
        self.accounts: dict[str, AccountState] = {}
        self.risks: dict[str, AccountRisk] = {}
        self.symbol_names = sorted(self.instruments)  # a symbol's index in columns
        self.marks = Marks(self.symbol_names)
        self.symbol_index = self.marks.index  # one map: the marks' column is in this order
        self.view = _IndexView(self)
        self.funds = self.watch.funds
        self.depth = self.watch.depth
        self.fund_moved: dict[str, set[str]] = {fund: set() for fund in self.fund_symbols}
        self.symbols = {
            s: _SymbolState(
                s,
                self.fund_moved[inst.fund],
                longs=DeficitIndex(is_long=True, slope=inst.slope_long),
                shorts=DeficitIndex(is_long=False, slope=inst.slope_short),
            )
            for s, inst in self.instruments.items()
        }
        # each symbol's fee to close as a rate, by symbol index (none: no symbol has one)
        fees = [to_float(self.instruments[s].closing_fee_rate) for s in self.symbol_names]
        self.fees_by_index = np.array(fees) if any(fees) else None
        # margin tiers by symbol index, for a ranking that reads the maintenance at the
        # current marks (Binance's); the part on the entry value comes from evaluations
        self.tiers = TierColumns([self.instruments[s] for s in self.symbol_names])
        self.fixed_maintenance_ranked = any(
            inst.maintenance_base == "entry" for inst in self.instruments.values()
        ) and any(profile.reads_maintenance for profile in self.profiles.values())
        # a position's boundary functions move by at most |q| (1 + r + mmr_max) per unit
        # of its price (r: the fee to close, which moves its equity too): bands, budgets
        self.mmr_max = {
            s: max(t.mmr for t in inst.tiers) + inst.closing_fee_rate
            for s, inst in self.instruments.items()
        }
        # wide accounts (``config.wide_after``): one move budget instead of a band per
        # cross position, one shared row value instead of a queue row put per symbol
        self.budget = MoveBudget()
        self.shared: dict[str, SharedPositions] = {}
        self.overcount: dict[str, dict[str, int]] = {}  # account -> fund -> double-counted
        self.overcount_total: dict[str, int] = dict.fromkeys(self.fund_symbols, 0)  # per fund
        self.seen_ids = DedupeWindow(
            self.config.dedupe_window_ms,
            self.config.dedupe_max_ids,
            by_owner=self.config.dedupe_by_account,
        )
        self.sanity = MarketSanity(self.config.sanity)
        self.touched: set[str] = set()  # accounts changed since the caller last cleared it
        self.lit: set[str] = set()  # accounts whose announced light changed (``light``), same
        # account -> symbols where a light stays announced to a closed position
        # (``announced_lights``; empty unless lights come later, ``light``)
        self._lit_closed: dict[str, set[str]] = {}
        self.stats = EngineStats()
        self.last_ts_ms = 0
        self._shocks: dict[str, tuple[int, int, int]] = {}  # symbol -> (mark, down, up)
        self._one_fund = next(iter(self.fund_symbols)) if len(self.fund_symbols) == 1 else None
        self._reach: dict[str, dict[str, float]] = {}  # ``_reach_of``
        self._latest: dict[str, _Latest] = {}  # wide accounts' (``_SymbolState.deferred``)
        # ``_reevaluate_moved`` on; off only to hold it to the full path in tests
        self.wide_moves = True

    # ------------------------------------------------------------------ reducer
    def apply(self, event: Event) -> list[Signal]:
        """Apply one validated event; raises ``InvalidEvent`` if it cannot apply."""
        settlements = self.settlements
        if settlements is not None:
            return self._outward(self._apply(settlements.inward(event)))
        return self._apply(event)

    def _apply(self, event: Event) -> list[Signal]:
        dedupe = _dedupe_key(event)
        if dedupe is not None and dedupe in self.seen_ids:
            self.stats.duplicates += 1
            return []
        self.sanity.check(event, self.last_ts_ms if self.stats.events else None)
        if isinstance(event, Mark):
            signals = self._on_mark(event)
        elif isinstance(event, InsuranceFund):
            signals = self._on_fund(event)
        elif isinstance(event, Depth):
            self.depth[event.symbol] = event
            signals = self._check_fund(self.instruments[event.symbol].fund, event.ts_ms)
        else:
            signals = self._on_account_event(event)
        if dedupe is not None:
            self.seen_ids.add_unseen(dedupe, event.ts_ms, getattr(event, "account", ""))
        self.stats.events += 1
        self.last_ts_ms = max(self.last_ts_ms, event.ts_ms)
        return signals

    def risk_now(self, account: str) -> AccountRisk | None:
        """The account evaluated at the latest marks (a pure read: ``risks`` holds its
        last evaluation, which a mark that crossed none of its thresholds left as is)."""
        state = self.accounts.get(account)
        if state is None:
            return None
        return evaluate(state, self.marks, self.instruments, self.config.warning_ratio)

    def restore(self, states: Iterable[AccountState]) -> None:
        """Load account states in bulk (a snapshot, a recovered table): evaluated and
        indexed at the current marks, with no signals and no fund checks. An account
        already here is replaced (a warm copy brought up to date, ``agents.warm``): its
        entries move as its last evaluation says, like after any of its events."""
        for state in states:
            self.accounts[state.account] = state
            self._reevaluate(state.account, state.last_ts_ms, whole=True)

    def finish(self) -> list[Signal]:
        """Final ranking and projections at the last event time (end of a replay)."""
        ts = self.last_ts_ms
        signals: list[Signal] = []
        for sym in sorted(self.symbols):
            if sym in self.marks:
                signals.extend(self._rank(sym, ts))
        signals.extend(
            self.watch.projection(self.view, fund, ts)
            for fund in sorted(self.fund_symbols)
            if self.funds[fund].balance is not None
        )
        return self._outward(signals)

    def _outward(self, signals: list[Signal]) -> list[Signal]:
        """Signals as the venue states them (``Settlements.outward``)."""
        settlements = self.settlements
        return signals if settlements is None else [settlements.outward(s) for s in signals]

    # ------------------------------------------------------------------ events
    def _on_account_event(self, event: account_reducer.AccountEvent) -> list[Signal]:
        acct = event.account
        state = self.accounts.get(acct) or AccountState(acct)
        new_state = account_reducer.apply(state, event)
        self.accounts[acct] = new_state
        self.touched.add(acct)
        symbol = getattr(event, "symbol", None)  # every account event but a balance has one
        signals = self._reevaluate(acct, event.ts_ms, symbol)
        if self._one_fund is not None:  # no need to list the funds of 162 symbols
            funds = [self._one_fund] if state.positions or new_state.positions or symbol else []
        else:
            touched = {p.symbol for p in state.positions} | {p.symbol for p in new_state.positions}
            if symbol is not None:
                touched.add(symbol)
            funds = sorted({self.instruments[s].fund for s in touched})
        for fund in funds:
            signals.extend(self._check_fund(fund, event.ts_ms))
        return signals

    def _on_mark(self, event: Mark) -> list[Signal]:
        sym = event.symbol
        st = self.symbols[sym]
        if event.ts_ms < st.mark_ts_ms:
            self.stats.stale_marks += 1
            return []
        self.sanity.check_mark(event, self.marks.get(sym))
        signals = self.move_mark(sym, event.ts_ms, event.mark_price)
        if refresh_due(event.ts_ms, st.lit_at_ms, self.config.rank_refresh_ms):
            st.lit_at_ms = event.ts_ms
            signals.extend(self._rank(sym, event.ts_ms))
        signals.extend(self._check_fund(self.instruments[sym].fund, event.ts_ms))
        return signals

    def move_mark(self, sym: str, ts_ms: int, mark_price: int) -> list[Signal]:
        """A mark's move on the state alone: the positions it crossed (and the wide
        accounts whose move budget it spent) evaluated again, with their signals. No
        sanity check, ranking or fund check: ``_on_mark`` adds them; a warm copy moves
        its marks to the changelog's with it (``agents.warm``), however far."""
        st = self.symbols[sym]
        st.mark_ts_ms = ts_ms
        st.changes += 1
        st.fund_changed()
        old = self.marks.get(sym)
        self.marks[sym] = mark_price
        affected = set(st.queue.accounts) if old is None else st.thresholds.crossed(old, mark_price)
        affected.update(self.budget.moved(sym, mark_price))
        signals: list[Signal] = []
        for acct in sorted(affected):
            signals.extend(self._reevaluate(acct, ts_ms))
        return signals

    def _on_fund(self, event: InsuranceFund) -> list[Signal]:
        self.watch.record(event)  # validated first: an unknown fund or symbol records nothing
        return self._check_fund(event.fund, event.ts_ms, force_projection=True)

    # ------------------------------------------------------------------ accounts
    def _reevaluate(
        self, acct: str, ts_ms: int, symbol: str | None = None, whole: bool = False
    ) -> list[Signal]:
        """``symbol``: the one whose position the event may have changed (none: only the
        wallet, the settings or the marks changed); ``whole``: any position may have
        (a state replaced: every position evaluated again)."""
        state = self.accounts.get(acct)
        if state is None:
            return []
        self.stats.reevaluations += 1
        old = self.risks.get(acct)
        if (
            not whole
            and old is not None
            and old.health < Health.LIQUIDATABLE
            and acct in self.shared
            and acct in self.budget
            and self.wide_moves
            and self._reevaluate_moved(acct, state, old, symbol)
        ):
            return []
        self._reach.pop(acct, None)
        new = evaluate(state, self.marks, self.instruments, self.config.warning_ratio, old)
        self.risks[acct] = new
        return self._reindex(acct, old, new, ts_ms)

    def _reevaluate_moved(
        self, acct: str, state: AccountState, old: AccountRisk, symbol: str | None
    ) -> bool:
        """A wide, budgeted, cross-only account whose health does not change, in
        O(positions that moved): what ``_reindex`` does then, without a step per position
        (its fills are most of a crash's re-evaluations: a market maker on 155 symbols).
        The positions that moved are the event's and those whose mark its move budget saw
        move; every other one changed only by what the cross equity gives it, which
        ``_reindex``'s skip handles (queue row shared, no threshold, deferred bankruptcy
        price, fund told only if the price lies where it reads). Whether it may apply is
        known only after the sums: ``False`` (nothing changed) where it does not."""
        changed = self.budget.moved_since(acct) | ({symbol} if symbol is not None else set())
        new = evaluate_moved(state, self.marks, old, changed)
        if new is None or new.health is not old.health:
            return False
        self.risks[acct] = new
        self.stats.moved_reevaluations += 1
        rows = new.rows or {}
        symbols = self.symbols
        # each of its symbols reads it from there: rows the shared value, deficit entries
        # (and a summary's version) the latest evaluation
        self._latest[acct].set(new)
        moved = [
            (sym, pos, before)
            for sym in changed
            if (pos := new.position(sym)) is not None and (before := old.position(sym)) is not None
        ]
        self._tell_fund(acct, old, new, changed, moved)
        shared = self.shared[acct]
        for sym, pos, before in moved:
            index = self.symbol_index[sym]
            shared.set_position(
                shared.place[index], OtherPosition(index, to_float(pos.qty), pos.mark_price, True)
            )
            if before.qty != pos.qty or before.entry_price != pos.entry_price:
                st = symbols[sym]
                st.queue.put_shared(acct, pos, shared, index)
                if acct in st.thresholds:
                    st.thresholds.remove(acct)
        count = len(shared.positions)
        shared.backing = [to_float(new.cross_equity)] * count
        shared.equity = to_float(new.equity)
        shared.wallet = [to_float(new.wallet_balance)] * count
        shared.fixed_maintenance = [to_float(self._cross_fixed(new))] * count
        mmr_max = self.mmr_max
        self.budget.put_moved(
            acct,
            self._cushion(new),
            [
                (sym, row.qty, mmr_max[sym], row.mark_price)
                for sym in changed
                if (row := rows.get(sym)) is not None
            ],
        )
        self._update_overcount(acct, new, True)
        return True

    def _tell_fund(
        self,
        acct: str,
        old: AccountRisk,
        new: AccountRisk,
        changed: set[str],
        moved: list[tuple[str, PositionRisk, PositionRisk]],
    ) -> None:
        """``_reindex``'s fund test (``_deficit_moved``) for every position of a wide
        account re-evaluated by ``_reevaluate_moved``. For a position whose size and mark
        did not move, only the cross equity Q moved its bankruptcy price B, and the entry
        matters to the fund's reads iff B lies beyond the shocked price, iff Q * SCALE is
        below a bound of the position (``margin.bankruptcy_reach``, kept in ``_reach``).
        So when the smaller Q of the two evaluations reaches past every
        position's bound (a healthy market maker: always), no entry matters, with no step
        per position. ``moved``: (symbol, new, old) of the positions in ``changed``."""
        for sym, pos, before in moved:
            if self._deficit_moved(pos, before):
                self.symbols[sym].fund_changed()
        reach = self._reach_of(acct, new, changed)  # kept up to date even if not read
        if old.cross_equity == new.cross_equity:
            return  # no bankruptcy price moved but the ones above
        scaled = min(old.cross_equity, new.cross_equity) * SCALE
        if scaled >= max(reach.values(), default=0):
            return
        for sym, bound in reach.items():  # some position may matter: each one's own test
            if scaled < bound and sym not in changed:
                after, earlier = new.position(sym), old.position(sym)
                if (
                    after is not None
                    and earlier is not None
                    and self._deficit_moved(after, earlier)
                ):
                    self.symbols[sym].fund_changed()

    def _reach_of(self, acct: str, risk: AccountRisk, changed: set[str]) -> dict[str, float]:
        """Per position of a wide account, the scaled cross equity below which its
        bankruptcy price matters to the fund's reads (``_tell_fund``); kept per account,
        updated for the positions that moved (dropped at a full re-evaluation)."""
        reach = self._reach.get(acct)
        if reach is None:
            reach = self._reach[acct] = {}
            changed = set(risk.rows or ())
        rows = risk.rows or {}
        for sym in changed:
            row = rows.get(sym)
            if row is None:
                continue
            mark = self.marks.get(sym)
            if mark is None:
                reach[sym] = math.inf  # the fund is told whenever its price moves
                continue
            slope = row.instrument.slope(row.qty)
            reach[sym] = bankruptcy_reach(row.qty, mark, *self._shocked(sym, mark), slope)
        return reach

    def _reindex(
        self, acct: str, old: AccountRisk | None, new: AccountRisk, ts_ms: int
    ) -> list[Signal]:
        was_budgeted = acct in self.budget
        layout = self._layout(acct, new)
        # a wide account's cross positions that only its equity moved can skip the
        # indexes (below): decided once, not per position
        # (its deficit entries read ``latest``: also when it may not skip)
        latest = self._wide_latest(acct, new) if layout.shared else None
        skip_into = latest if was_budgeted and layout.budgeted and layout.was_shared else None
        signals: list[Signal] = []
        symbols = self.symbols
        for sym, before, pos in _pairs(old.positions if old else (), new.positions):
            st = symbols[sym]
            st.changes += 1
            if (
                skip_into is not None
                and pos is not None
                and before is not None
                and before.health is pos.health < Health.LIQUIDATABLE
                and not pos.isolated
                and not before.isolated
                and before.qty == pos.qty
                and before.entry_price == pos.entry_price
            ):
                # a wide account's cross position that only its equity moved (most of
                # its positions at each of its fills): its queue row reads the shared
                # value, it is in no threshold index (the budget), not liquidatable,
                # nothing to announce; only its bankruptcy price, at the next read
                st.defer_deficit(acct, skip_into)
                # (in the crash, half the time its bankruptcy price did not move: no call)
                if pos.bankruptcy_price != before.bankruptcy_price and self._deficit_moved(
                    pos, before
                ):
                    st.fund_changed()
                continue
            if pos is None:
                if acct in st.queue.announced:  # lit later, restored: ``announced_lights``
                    self._lit_closed.setdefault(acct, set()).add(sym)
                st.queue.remove(acct)
                st.thresholds.remove(acct)
                st.remove_deficit(acct)
                st.liquidatable.pop(acct, None)
                st.fund_changed()
                continue
            self._put_queue(acct, st, pos, before, new, layout)
            self._put_thresholds(acct, st, pos, new, layout)
            moved = self._put_deficit(acct, st, pos, before, latest)
            before_liquidatable = st.liquidatable.get(acct)
            if pos.health is Health.LIQUIDATABLE and pos.bankruptcy_price is not None:
                st.liquidatable[acct] = (pos.bankruptcy_price, pos.qty)
            else:
                st.liquidatable.pop(acct, None)
            if moved or st.liquidatable.get(acct) != before_liquidatable:
                st.fund_changed()
            if before is None or before.health is not pos.health:
                self.touched.add(acct)
            changes = _transitions(acct, before, pos, new, ts_ms)
            bankrupt = sum(isinstance(c, BankruptcyDetected) for c in changes)
            if bankrupt:
                st.bankruptcies += bankrupt
                st.fund_changed()
            signals.extend(changes)
        self._put_budget(acct, new, layout.budgeted)
        self._update_overcount(acct, new, layout.multi)
        return signals

    def _layout(self, acct: str, risk: AccountRisk) -> _Layout:
        """How the account's positions are indexed, worked out once per re-index."""
        cross_count = risk.cross_position_count  # O(positions): asked once, not per position
        # each position's others are every position but itself, in the account's order:
        # made once per account (an account on 162 symbols made 162 x 161 of them)
        every = [
            OtherPosition(
                self.symbol_index[p.symbol], to_float(p.qty), p.mark_price, not p.isolated
            )
            for p in risk.positions
        ]
        shared = None
        was_shared = False
        cross_fixed = self._cross_fixed(risk)  # O(positions) where it counts: once
        if len(every) > self.config.wide_after + 1:
            place = {}  # its rows read ``shared.place``
            was_shared = acct in self.shared
            shared = self._share(acct, risk, every, cross_fixed)
        else:
            place = {p.symbol: k for k, p in enumerate(risk.positions)}
            self.shared.pop(acct, None)
            self._latest.pop(acct, None)  # its entries are put now (``_put_deficit``)
        return _Layout(every, place, cross_count, shared, was_shared, cross_fixed)

    def _put_queue(
        self,
        acct: str,
        st: _SymbolState,
        pos: PositionRisk,
        before: PositionRisk | None,
        risk: AccountRisk,
        layout: _Layout,
    ) -> None:
        if layout.shared is None:
            k = layout.place[pos.symbol]
            others = layout.every[:k] + layout.every[k + 1 :]
            st.queue.put(acct, pos, risk.equity, others, risk.wallet_balance, layout.cross_fixed)
        elif not (
            layout.was_shared
            and before is not None
            and (before.qty, before.entry_price, before.isolated)
            == (pos.qty, pos.entry_price, pos.isolated)
        ):  # a wide account's row reads the shared value: put only if the position moved
            st.queue.put_shared(acct, pos, layout.shared, self.symbol_index[pos.symbol])

    def _put_thresholds(
        self, acct: str, st: _SymbolState, pos: PositionRisk, risk: AccountRisk, layout: _Layout
    ) -> None:
        if layout.budgeted and not pos.isolated:
            if acct in st.thresholds:  # its band or thresholds from before: the budget now
                st.thresholds.remove(acct)
        elif layout.multi and not pos.isolated:
            # several marks move its thresholds: re-evaluated when one leaves its band
            st.thresholds.put(acct, self._band(risk, pos, layout.cross_count), 0, pos.mark_price)
        else:
            thresholds = (pos.warning_price, pos.liquidation_price, pos.bankruptcy_price)
            st.thresholds.put(
                acct,
                tuple(p for p in thresholds if p is not None),
                rounding_tolerance(pos.qty),
                pos.mark_price,
            )

    def _put_deficit(
        self,
        acct: str,
        st: _SymbolState,
        pos: PositionRisk,
        before: PositionRisk | None,
        defer: _Latest | None,
    ) -> bool:
        """Index the position's bankruptcy price (``defer``: at the next read, from this
        evaluation of a wide account); whether the fund must read the symbol again. The
        fund check reads each side's deficit at the mark and after an adverse move of
        ``imminent_distance`` (``FundWatch._read``): an entry that moved but lies beyond
        both prices, before and after, adds nothing to what it read (a wide account's
        fill moves its bankruptcy price on every symbol it holds, mostly far away: 162
        symbols were read again after each of its fills, for nothing)."""
        if defer is not None:
            st.defer_deficit(acct, defer)
        else:
            st.undefer(acct)  # from when it was wide
            st.put_deficit(acct, pos)
        return before is None or self._deficit_moved(pos, before)

    def _wide_latest(self, acct: str, risk: AccountRisk) -> _Latest:
        """The wide account's latest-evaluation cell, set to ``risk``."""
        latest = self._latest.get(acct)
        if latest is None:
            latest = self._latest[acct] = _Latest(risk)
        latest.set(risk)
        return latest

    def _deficit_moved(self, pos: PositionRisk, before: PositionRisk) -> bool:
        """Whether the fund's reads of the symbol change from ``before`` to ``pos`` (the
        last evaluation's entry in the deficit index, and the new one). Asked for each
        position of a wide account at each of its fills: no list, no tuple made."""
        if (before.qty > 0) != (pos.qty > 0):
            return True
        now, then = pos.bankruptcy_price, before.bankruptcy_price
        if now == then and abs(before.qty) == abs(pos.qty):
            return False
        if now is None and then is None:
            return False  # not indexed, before or after
        mark = self.marks.get(pos.symbol)
        if mark is None:
            return True
        low, high = self._shocked(pos.symbol, mark)
        # a long entry adds to a read at price P iff its price is above P; a short's iff below
        if pos.qty > 0:
            return (now is not None and now >= low) or (then is not None and then >= low)
        return (now is not None and now <= high) or (then is not None and then <= high)

    def _shocked(self, sym: str, mark: int) -> tuple[int, int]:
        """The mark moved down and up by ``imminent_distance`` (what the fund reads),
        kept per symbol till its mark moves."""
        kept = self._shocks.get(sym)
        if kept is None or kept[0] != mark:
            down, up = adverse_moves(self.config.imminent_distance, self.instruments[sym].inverse)
            kept = self._shocks[sym] = (mark, shocked_price(mark, down), shocked_price(mark, up))
        return kept[1], kept[2]

    def _put_budget(self, acct: str, risk: AccountRisk, budgeted: bool) -> None:
        if budgeted:
            mmr_max = self.mmr_max
            self.budget.put(
                acct,
                self._cushion(risk),
                [
                    (p.symbol, p.qty, mmr_max[p.symbol], p.mark_price)
                    for p in risk.positions
                    if not p.isolated
                ],
            )
        elif acct in self.budget:
            self.budget.remove(acct)

    def _cushion(self, risk: AccountRisk) -> int:
        """The cross part's distance from its nearest health boundary, for its band or move
        budget: less a few raw units per position, the rounded values may sit that far off."""
        return max(0, risk.cross_cushion(self.config.warning_ratio) - 4 * risk.position_count)

    def _cross_fixed(self, risk: AccountRisk) -> int:
        """The account's cross positions' maintenance no mark moves (``fixed_maintenance``:
        on their entry value), where a ranking reads it; else 0."""
        if not self.fixed_maintenance_ranked:
            return 0
        return sum(fixed_maintenance(p) for p in risk.positions if not p.isolated)

    def _share(
        self, acct: str, risk: AccountRisk, every: list[OtherPosition], cross_fixed: int
    ) -> SharedPositions:
        """The wide account's shared row value, updated in place (its rows hold it)
        or made and kept."""
        positions = risk.positions
        backing = [to_float(p.backing_equity) for p in positions]
        equity = to_float(risk.equity)
        cross_wallet = to_float(risk.wallet_balance)
        wallet = [
            to_float(p.backing_equity - p.unrealized_pnl) if p.isolated else cross_wallet
            for p in positions
        ]
        maintenance = [
            to_float(fixed_maintenance(p) if p.isolated else cross_fixed) for p in positions
        ]
        shared = self.shared.get(acct)
        place = {other.symbol_index: k for k, other in enumerate(every)}
        if shared is None:
            shared = SharedPositions(every, place, backing, equity, wallet, maintenance)
            self.shared[acct] = shared
            return shared
        shared.replace(every, place, backing, equity, wallet, maintenance)
        return shared

    def _band(self, risk: AccountRisk, pos: PositionRisk, n: int) -> tuple[int, int]:
        """Mark band within which a multi-symbol cross account cannot change health
        (a wide account, ``config.wide_after``: ``MoveBudget``, one sum for all).

        Each cross position j moves the account's boundary functions (equity, equity -
        maintenance, w * equity - maintenance) by at most |q_j| * (1 + mmr_max_j) per unit
        of its mark. Splitting the cushion evenly over the n cross positions, no mix of
        moves that keeps every mark within +-cushion / (n * |q_j| * (1 + mmr_max_j)) can
        reach a boundary, so the account is re-evaluated only when a mark leaves its band.

        This holds under water too (the cushion is then the distance to recovery), and the
        fund's loss stays exact without re-evaluating: each of the account's n deficit-index
        entries carries the deficit with only its own symbol moved, at least d0 - d0/n >= 0
        within the band, so the n entries sum to the true deficit plus (n - 1) * d0, the
        over-count fixed at evaluation (``_update_overcount``). ``n``: the account's cross
        positions (the caller counts them once per re-index).
        """
        cushion = self._cushion(risk)
        mmr_max = self.mmr_max[pos.symbol]
        half_width = div_floor(cushion * SCALE * SCALE, n * abs(pos.qty) * (SCALE + mmr_max))
        return (pos.mark_price - half_width, pos.mark_price + half_width)

    def _update_overcount(self, acct: str, risk: AccountRisk, multi: bool) -> None:
        """A bankrupt account with n cross positions appears n times in the deficit
        indexes (each position's bankruptcy price carries the whole account deficit);
        keep the excess per fund so fund totals count it once."""
        deficit = max(0, -risk.cross_equity)
        for fund, part in self.overcount.pop(acct, {}).items():
            self.overcount_total[fund] -= part
        if not multi or deficit == 0:
            return
        counts: dict[str, int] = defaultdict(int)
        for pos in risk.positions:
            if not pos.isolated:
                counts[self.instruments[pos.symbol].fund] += 1
        total = sum(counts.values())
        self.overcount[acct] = parts = {
            fund: deficit * n - div_floor(deficit * n, total) for fund, n in counts.items()
        }
        for fund, part in parts.items():
            self.overcount_total[fund] += part

    # ------------------------------------------------------------------ fund
    def loss_now(self, fund: str) -> tuple[int, dict[str, tuple[int, int]]]:
        return self.watch.loss_now(self.view, fund)

    def _check_fund(self, fund: str, ts_ms: int, force_projection: bool = False) -> list[Signal]:
        return self.watch.check(self.view, fund, ts_ms, force_projection)

    def projection(self, fund: str, ts_ms: int) -> FundProjection:
        """A pure read: the API may call it at any time."""
        projected = self.watch.projection(self.view, fund, ts_ms)
        return projected if self.settlements is None else self.settlements.projection(projected)

    def plan_now(self, sym: str) -> tuple[AdlTriggered, AdlStage | None] | None:
        """A read: what ADL would do to the symbol now (``FundWatch.plan_now``)."""
        planned = self.watch.plan_now(self.view, sym, self.last_ts_ms)
        if planned is None or self.settlements is None:
            return planned
        return self.settlements.trigger(planned[0]), planned[1]

    def _cross_share(self, acct: str, sym: str, account_deficit: int) -> int:
        """A cross account's deficit split over its cross positions by notional, so
        that a trigger's per-position deficits add up to the account's once."""
        risk = self.risks[acct]
        cross = [p for p in risk.positions if not p.isolated]
        total = sum(p.notional for p in cross)
        mine = next((p.notional for p in cross if p.symbol == sym), 0)
        return div_ceil(account_deficit * mine, total) if total else account_deficit

    def bankrupt_positions(self, sym: str) -> list[BankruptPosition]:
        """Positions of ``sym`` past their bankruptcy price at the mark, each with its
        deficit (a cross account's shared by notional over its cross positions)."""
        mark = self.marks.get(sym)
        if mark is None:
            return []
        st = self.symbols[sym]
        bankrupt: list[BankruptPosition] = []
        for is_long in (True, False):
            index = st.side_index(is_long)
            for price, acct, qty in index.beyond(mark):
                deficit = index.deficit_of(qty, price - mark if is_long else mark - price)
                if self.risks[acct].cross_position_count >= 2:
                    deficit = self._cross_share(acct, sym, deficit)
                bankrupt.append(
                    BankruptPosition(
                        account=acct,
                        symbol=sym,
                        side="long" if is_long else "short",
                        qty=qty,
                        bankruptcy_price=price,
                        deficit=deficit,
                    )
                )
        return bankrupt

    # ------------------------------------------------------------------ ranking
    def _rank(self, sym: str, ts_ms: int) -> list[RankAlert]:
        st = self.symbols[sym]
        st.ranked_at_ms = ts_ms
        # an account's equity moves with all its positions' marks, not just this symbol's:
        # without this, its score would depend on when it was last evaluated
        return st.queue.rank(
            self.marks[sym],
            self.profiles[sym],
            symbol=sym,
            ts_ms=ts_ms,
            light=self.config.light_locally,
            marks_by_index=self.marks.by_index,
            fees_by_index=self.fees_by_index,
            fee=to_float(self.instruments[sym].closing_fee_rate),
            tiers=self.tiers,
            symbol_index=self.symbol_index[sym],
        )

    def ranking(self, sym: str, side: str) -> SideRanking | None:
        """The side's queue at the symbol's last ranking."""
        return self.symbols[sym].queue.ranking(side)

    def light(
        self,
        sym: str,
        ranking: SideRanking,
        reaches: npt.NDArray[Any],
        total: int,
        ts_ms: int,
    ) -> list[RankAlert]:
        """Light an earlier ranking of the symbol by its positions' reaches out of
        ``total`` (every partition's; ``VenueProfile.light``); the rank alerts that
        gives, at ``ts_ms``."""
        queue = self.symbols[sym].queue
        alerts, changed = queue.light_at(
            ranking, reaches, total, self.profiles[sym], symbol=sym, ts_ms=ts_ms
        )
        self.lit.update(changed)
        for account in changed:
            if account not in queue:  # lit after it closed: kept for ``announced_lights``
                self._lit_closed.setdefault(account, set()).add(sym)
        settlements = self.settlements
        return alerts if settlements is None else [settlements.rank_alert(a) for a in alerts]

    def light_weights(self, sym: str, ranking: SideRanking) -> npt.NDArray[np.int64] | None:
        """What each position of ``ranking`` weighs in the symbol's lights: its size
        where the venue's lights go by quantity, else ``None`` (each weighs 1)."""
        return ranking.sizes if self.profiles[sym].light_by_quantity else None

    def announced_lights(self, account: str) -> dict[str, tuple[int, int, int]]:
        """Symbol -> (opening number of the account's position there, 0: none; opening
        the last light announced there (``light``) was announced to; that light), for
        its positions and for the symbols where it was lit after a position closed:
        what a restart needs to light a ranking kept across it as it would have been."""
        risk = self.risks.get(account)
        symbols = {p.symbol for p in risk.positions} if risk is not None else set()
        symbols.update(self._lit_closed.get(account, ()))
        out = {}
        for sym in sorted(symbols):
            queue = self.symbols[sym].queue
            opened = queue.opening(account)
            announced_opened, light = queue.announced.get(account, (0, 0))
            if opened or light:
                out[sym] = (opened, announced_opened, light)
        return out

    def restore_announced(self, account: str, lights: Mapping[str, int | Sequence[int]]) -> None:
        """After a restart, what ``announced_lights`` said (a bare light: a row written
        before openings were kept; it goes to the restored position)."""
        for sym, value in lights.items():
            queue = self.symbols[sym].queue
            if isinstance(value, int):
                queue.restore_announced(account, value)
                continue
            opened, announced_opened, light = value
            queue.restore_opening(
                account, opened, (announced_opened, light) if announced_opened else None
            )
            if not opened and announced_opened:
                self._lit_closed.setdefault(account, set()).add(sym)

    def reserve_openings(self, sym: str, upto: int) -> None:
        """Positions of ``sym`` opened from now on get numbers past ``upto`` (the
        highest a ranking kept across a restart names)."""
        self.symbols[sym].queue.reserve_openings(upto)

    def rerank(self, sym: str, ts_ms: int) -> list[RankAlert]:
        """Rank the symbol's ADL queue now (a caller that needs today's queue between
        refreshes); returns the rank alerts like a refresh would."""
        return self._rank(sym, ts_ms)

    def symbol_changes(self, sym: str) -> int:
        """A counter that moves whenever the symbol's mark or one of its positions does."""
        return self.symbols[sym].version

    def liquidatable(self, sym: str) -> list[tuple[str, int, int]]:
        """(account, bankruptcy price, signed qty) of the symbol's liquidatable positions."""
        rows = self.symbols[sym].liquidatable
        return [(acct, price, qty) for acct, (price, qty) in rows.items()]

    def side_curve(self, sym: str, is_long: bool) -> Curve:
        """The exact deficit curve of one side around the mark."""
        return index_curve(self.symbols[sym].side_index(is_long), self.marks[sym])

    def deficit_grid(self, sym: str, moves: Sequence[float]) -> tuple[list[int], list[int]]:
        """Each side's deficit (long, short) with the mark moved by each of ``moves``."""
        prices = shocked_prices(self.marks[sym], moves)
        st = self.symbols[sym]
        return st.side_index(True).deficits_at(prices), st.side_index(False).deficits_at(prices)

    def bankruptcies(self, sym: str) -> int:
        return self.symbols[sym].bankruptcies

    def fund_overcount(self, fund: str) -> int:
        return self.overcount_total[fund]

    def ranked_at_ms(self, sym: str) -> int | None:
        return self.symbols[sym].ranked_at_ms

    def queue_changed(self, sym: str) -> bool:
        """Whether positions of the symbol opened or closed since its last ranking."""
        return self.symbols[sym].queue.structure_changed

    def queue(
        self, sym: str, side: str, qty_needed: int | None = None, limit: int | None = None
    ) -> list[RankedEntry]:
        """The side's ADL queue at the last ranking, first to be deleveraged first; only as
        far as ``qty_needed`` is covered, or ``limit`` entries, when given."""
        out: list[RankedEntry] = []
        covered = 0
        for entry in self.symbols[sym].queue.ranked(side):
            if limit is not None and len(out) >= limit:
                break
            out.append(entry)
            covered += entry.qty
            if qty_needed is not None and covered >= qty_needed:
                break
        return out

    def venue_queue(self, sym: str, side: str, limit: int | None = None) -> list[RankedEntry]:
        """``queue`` as the venue names it (the read APIs, reports): an inverse symbol's
        USD side, contracts, and the accounts of coin wallets."""
        inst = self.instruments[sym]
        if inst.settlement == HOME_SETTLEMENT:
            return self.queue(sym, side, limit=limit)
        if inst.inverse:
            side = other_side(side)
        size = inst.contract_size
        return [
            replace(
                e,
                account=account_of(e.account),
                qty=venue_qty(e.qty, size) if inst.inverse else e.qty,
            )
            for e in self.queue(sym, side, limit=limit)
        ]

    def side_summary(self, sym: str, side: str) -> SideSummary:
        """Dashboard numbers of one side of a symbol: O(n) in numpy, for a metrics tick.
        ``side`` as the venue names it (an inverse symbol's USD longs are shorts in x)."""
        st = self.symbols[sym]
        inst = self.instruments[sym]
        if inst.inverse:
            side = other_side(side)
        is_long = side == "long"
        open_interest, lights, top = st.queue.side_totals(side)
        if inst.inverse:
            open_interest = venue_qty(open_interest, inst.contract_size)
        mark = self.marks.get(sym)
        bankrupt = list(st.side_index(is_long).beyond(mark)) if mark is not None else []
        return SideSummary(
            open_interest=open_interest,
            positions_by_light=lights,
            liquidatable=sum(1 for _, q in st.liquidatable.values() if (q > 0) == is_long),
            bankrupt=len(bankrupt),
            bankrupt_deficit=st.side_index(is_long).deficit_at(mark) if mark else 0,
            top_scores=top,
        )

    def winners(self, sym: str) -> dict[str, SideWinners]:
        """Each side's positive PnL at the mark and sizes (a second opinion's inputs)."""
        mark = self.marks.get(sym)
        if mark is None:
            return {"long": NO_WINNERS, "short": NO_WINNERS}
        return self.symbols[sym].queue.winners(mark)

    def unit_profits(self, sym: str, accounts: Sequence[str]) -> dict[str, float]:
        """The accounts' positions' unrealised PnL per base unit at the symbol's mark."""
        mark = self.marks.get(sym)
        if mark is None:
            return {}
        profits = self.symbols[sym].queue.unit_profits(accounts, mark)
        return dict(zip(accounts, profits, strict=True))

    def rank_view(self, account: str, sym: str) -> tuple[float, int] | None:
        """(score, light) of an account's position at the last ranking of its symbol."""
        return self.symbols[sym].queue.view(account)


def _pairs(
    old: Sequence[PositionRisk], new: Sequence[PositionRisk]
) -> Iterable[tuple[str, PositionRisk | None, PositionRisk | None]]:
    """(symbol, before, after) for every symbol of either evaluation, in symbol order
    (both are: an account's positions are sorted by symbol). Mostly the same symbols
    (a fill changes one position of many): then a zip, no dictionaries and no sort."""
    if len(old) == len(new) and [a.symbol for a in old] == [b.symbol for b in new]:
        # lengths just checked; a zip without keywords is a compiled loop (with: a call)
        return [(b.symbol, a, b) for a, b in zip(old, new)]  # noqa: B905
    before = {p.symbol: p for p in old}
    after = {p.symbol: p for p in new}
    return [(s, before.get(s), after.get(s)) for s in sorted(before.keys() | after.keys())]


def _dedupe_key(event: Event) -> str | None:
    # per account: venues give both sides of a trade the same id (Binance's tradeId), and
    # a partitioned worker sees only its own accounts
    if isinstance(event, Fill):
        return f"fill:{event.account}:{event.fill_id}"
    if isinstance(event, Balance | IsolatedMargin):
        return f"{type(event).__name__}:{event.account}:{event.event_id}"
    return None


def _transitions(
    acct: str, before: PositionRisk | None, pos: PositionRisk, risk: AccountRisk, ts_ms: int
) -> list[Signal]:
    old = before.health if before is not None else Health.HEALTHY
    if pos.health is old or pos.health < Health.LIQUIDATABLE:
        return []  # nothing to announce: most re-evaluations
    common = {
        "ts_ms": ts_ms,
        "account": acct,
        "symbol": pos.symbol,
        "side": pos.side,
        "qty": abs(pos.qty),
        "mark_price": pos.mark_price,
        "bankruptcy_price": pos.bankruptcy_price_on_tick,
        "isolated": pos.isolated,
    }
    out: list[Signal] = []
    if pos.health >= Health.LIQUIDATABLE > old:
        maintenance = pos.maintenance_margin if pos.isolated else risk.cross_maintenance
        out.append(
            LiquidationDetected(
                **common,  # type: ignore[arg-type]  # the shared fields, typed above
                liquidation_price=pos.liquidation_price_on_tick,
                equity=pos.backing_equity,
                maintenance_margin=maintenance,
            )
        )
    if pos.health is Health.BANKRUPT and old is not Health.BANKRUPT:
        out.append(BankruptcyDetected(**common, deficit=pos.deficit))  # type: ignore[arg-type]
    return out


class _IndexView:
    """The engine's indexes as the fund watch's ``MarketView``: exact curves."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def version(self, symbol: str) -> int:
        return self._engine.symbols[symbol].fund_changes

    def changed(self, fund: str) -> set[str]:
        moved = self._engine.fund_moved[fund]
        out = set(moved)
        moved.clear()
        return out

    def mark(self, symbol: str) -> int | None:
        return self._engine.marks.get(symbol)

    def curve(self, symbol: str, is_long: bool) -> Curve:
        return self._engine.side_curve(symbol, is_long)

    def liquidatable(self, symbol: str) -> list[tuple[str, int, int]]:
        return self._engine.liquidatable(symbol)

    def bankrupt(self, symbol: str) -> list[BankruptPosition]:
        return self._engine.bankrupt_positions(symbol)

    def bankruptcies(self, symbol: str) -> int:
        return self._engine.bankruptcies(symbol)

    def overcount(self, fund: str) -> int:
        return self._engine.fund_overcount(fund)

    def prepare_queue(self, symbol: str, ts_ms: int) -> list[RankAlert]:
        if self._engine.ranked_at_ms(symbol) == ts_ms:
            return []
        return self._engine.rerank(symbol, ts_ms)

    def queue(self, symbol: str, side: str, qty_needed: int) -> list[RankedEntry]:
        return self._engine.queue(symbol, side, qty_needed)

    def winners(self, symbol: str) -> dict[str, SideWinners]:
        return self._engine.winners(symbol)

    def unit_profits(self, symbol: str, side: str, accounts: Sequence[str]) -> dict[str, float]:
        return self._engine.unit_profits(symbol, accounts)
