"""The fund's end of the waterfall: loss now, ADL stages, trigger payloads, projections.

``FundWatch`` decides from a ``MarketView``: what it needs of each symbol's positions
(the mark, each side's deficit curve, the liquidatable and bankrupt positions, the ADL
queue's head). Two views exist: the engine's own indexes (one process holds every
account) and the merge of stage A's per-partition summaries (``engine.summary``, the
fund agent of stage B). The decisions are the same code either way.

Stage of a symbol (fund F, balance b, loss now L, the symbol's own loss l):
    triggered  L > b and l > 0
    imminent   l > 0 and b / L < ``imminent_coverage``, or an adverse move of
               ``imminent_distance`` of the symbol would make L > b
    cleared    announced once when a symbol leaves imminent/triggered
A venue whose ADL starts at a negative value (``VenueProfile.adl_on_negative_value``:
Hyperliquid), whatever its fund (the symbol's bankrupt deficit d, at the mark):
    triggered  d > 0
    imminent   positions under maintenance would lose closing into the book, or an
               adverse move of ``imminent_distance`` would make d > 0
and its ADL distance is the smallest adverse move that makes d > 0.
A symbol with a pool-drawdown rule (``Instrument.drawdown_rule``: Bybit's; the symbol's
drawdown budget B = the loss it can add before its pool ratio passes the trigger,
``engine.drawdown``), beside the fund rule, while the pool holds more than the rule's
minimum:
    triggered  l > B, and stays while l >= the rule's stop edge (hysteresis); l > 0
    imminent   B < 0 (any loss of the symbol is deleveraged), the pool's ratio at or below
               the stop ratio (where the venue's ADL, once started, goes on), B / l <
               ``imminent_coverage``, or an adverse move of ``imminent_distance`` would
               make l > B
and its ADL distance is the smaller of the two rules' (which drawdown symbols a check
looks at: ``drawdown.DrawdownPools``).
A triggered symbol is re-announced when more of its positions went bankrupt since, at
most every ``trigger_refresh_ms``; every stage change forces a fund projection.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streams.engine.adl import RankedEntry, deleverage_plan
from streams.engine.config import EngineConfig
from streams.engine.drawdown import (
    DrawdownPools,
    DrawdownRule,
    Edges,
    drawdown_triggered,
    pnl_ratio,
)
from streams.engine.errors import InvalidEvent
from streams.engine.events import Depth, InsuranceFund
from streams.engine.fund import (
    Curve,
    FundHistory,
    adl_distance,
    book_close_loss,
    coverage_ratio,
    ladder,
)
from streams.engine.instruments import Instrument
from streams.engine.inverse import adverse_moves, engine_move, price_move
from streams.engine.profiles import VenueProfile, profile_named
from streams.engine.second_opinion import SideWinners, second_opinion
from streams.engine.signals import (
    AdlStage,
    AdlTriggered,
    BankruptPosition,
    DeleverageStep,
    FundProjection,
    LadderPoint,
    RankAlert,
    Signal,
    SymbolProjection,
)

PerSymbol = dict[str, tuple[int, int]]  # symbol -> (bankrupt deficit, liquidatable loss)
_STRENGTH = {None: 0, AdlStage.IMMINENT: 1, AdlStage.TRIGGERED: 2}
FUND, DRAWDOWN, NEGATIVE_VALUE = "fund", "drawdown", "negative_value"  # ``AdlTriggered.rule``


@dataclass(frozen=True, slots=True)
class _SymbolFacts:
    """What every fund check reads of one symbol, at one version of it and its book."""

    version: Hashable
    depth: Depth | None
    losses: tuple[int, int]  # (bankrupt deficit, liquidatable loss)
    at_mark: tuple[int, int]  # (long, short) deficit at the mark
    after_move: tuple[int, int]  # (long, short) deficit after an adverse imminent move

    def __init__(
        self,
        version: Hashable,
        depth: Depth | None,
        losses: tuple[int, int],
        at_mark: tuple[int, int],
        after_move: tuple[int, int],
    ) -> None:  # written out: see signals.LadderPoint (one per symbol read)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "losses", losses)
        object.__setattr__(self, "at_mark", at_mark)
        object.__setattr__(self, "after_move", after_move)

    @property
    def move_gap(self) -> int:
        """What the worse side's adverse imminent move adds to the loss."""
        (long_at, short_at), (long_after, short_after) = self.at_mark, self.after_move
        return max(long_after - long_at, short_after - short_at)


@dataclass(slots=True)
class _FundLosses:
    """One fund's loss kept up to date symbol by symbol, and which of its symbols a
    stage check must look at: a fund of 160 symbols is checked after every event of
    any of them, and most of them did not move (``benchmarks/bench_symbols.py``)."""

    order: dict[str, int]  # symbol -> place in the fund's (sorted) symbols
    per_symbol: PerSymbol = field(default_factory=dict)
    facts: dict[str, _SymbolFacts] = field(default_factory=dict)  # as summed in ``total``
    total: int = 0  # sum of every symbol's bankrupt deficit and liquidatable loss
    losing: set[str] = field(default_factory=set)  # symbols with a loss now
    # (move gap, place, symbol), sorted: a plain list and C bisection (a fund's symbols
    # are ~160; ``SortedList`` is pure Python, called from the compiled engine: the
    # same answers, no speed-up measured, docs/benchmarks.md)
    gaps: list[tuple[int, int, str]] = field(default_factory=list)

    def update(self, sym: str, facts: _SymbolFacts) -> None:
        old = self.facts.get(sym)
        if old is facts:
            return
        if old is not None:
            self.total -= sum(old.losses)
            gaps = self.gaps
            del gaps[bisect_left(gaps, (old.move_gap, self.order[sym], sym))]
        self.facts[sym] = facts
        self.per_symbol[sym] = facts.losses
        self.total += sum(facts.losses)
        insort(self.gaps, (facts.move_gap, self.order[sym], sym))
        if sum(facts.losses) > 0:
            self.losing.add(sym)
        else:
            self.losing.discard(sym)

    def moved_past(self, slack: int) -> list[str]:
        """Symbols whose adverse imminent move adds more than ``slack`` to the loss."""
        start = bisect_right(self.gaps, (slack, len(self.order), ""))
        return [sym for _, _, sym in self.gaps[start:]]


class Books(dict[str, Depth]):
    """The last order book of each symbol; remembers which symbols got a new one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: set[str] = set()

    def __setitem__(self, symbol: str, depth: Depth) -> None:
        super().__setitem__(symbol, depth)
        self.changed.add(symbol)

    def __reduce__(self) -> tuple[object, ...]:
        # pickle sets a dict subclass's items before its attributes (``changed`` would
        # not be there yet for ``__setitem__``): rebuilt from both instead (a snapshot)
        return (_books, (dict(self), set(self.changed)))


def _books(depths: dict[str, Depth], changed: set[str]) -> Books:
    books = Books()
    books.update(depths)  # dict.update: not through ``__setitem__``
    books.changed = changed
    return books


class MarketView(Protocol):
    """What the fund needs to know of one fund's positions, symbol by symbol."""

    def version(self, symbol: str) -> Hashable | None:
        """Changes whenever the symbol's mark or positions do (``None``: unknown, ask
        again every time); the watch keeps what it read of a symbol until then."""
        ...

    def changed(self, fund: str) -> Collection[str] | None:
        """The fund's symbols whose version moved since the last call (each call takes
        them); ``None``: not known, every symbol is read again."""
        ...

    def mark(self, symbol: str) -> int | None: ...

    def curve(self, symbol: str, is_long: bool) -> Curve: ...

    def liquidatable(self, symbol: str) -> Iterable[tuple[str, int, int]]:
        """(account, bankruptcy price, signed qty) of positions under maintenance, not
        bankrupt."""
        ...

    def bankrupt(self, symbol: str) -> list[BankruptPosition]:
        """Positions past their bankruptcy price at the mark (cross deficits shared)."""
        ...

    def bankruptcies(self, symbol: str) -> int:
        """Positions of the symbol that went bankrupt, ever (a counter)."""
        ...

    def overcount(self, fund: str) -> int:
        """Deficit counted more than once by accounts with several cross positions."""
        ...

    def prepare_queue(self, symbol: str, ts_ms: int) -> list[RankAlert]:
        """Before a triggered symbol's plan: bring its ADL queue up to ``ts_ms`` (the
        rank alerts that re-ranking gives, if any)."""
        ...

    def queue(self, symbol: str, side: str, qty_needed: int) -> list[RankedEntry]:
        """The side's ADL queue, first to be deleveraged first, covering ``qty_needed``."""
        ...

    def winners(self, symbol: str) -> Mapping[str, SideWinners]:
        """Each side's positive PnL at the mark and sizes (a triggered plan's second
        opinion)."""
        ...

    def unit_profits(self, symbol: str, side: str, accounts: Sequence[str]) -> Mapping[str, float]:
        """The accounts' positions' unrealised PnL per base unit at the mark (the plan's
        counterparties, for its second opinion)."""
        ...


class FundWatch:
    """Stages, announcements and projections of every fund; state is the funds' balance
    history, the last books and what was announced."""

    def __init__(
        self,
        fund_symbols: Mapping[str, Sequence[str]],
        profiles: Mapping[str, VenueProfile],
        config: EngineConfig,
        drawdown_rules: Mapping[str, DrawdownRule | None] | None = None,
        inverse_symbols: Collection[str] = (),
        ticks: Mapping[str, int] | None = None,
    ) -> None:
        """``drawdown_rules``: per symbol (the profiles' when not given);
        ``inverse_symbols``: priced in x = U / P (``engine.inverse``): their ADL distances
        are given as moves of P; ``ticks``: each symbol's price tick in engine units (the
        plan's prices go on it; none: as computed)."""
        self.fund_symbols = {fund: list(symbols) for fund, symbols in fund_symbols.items()}
        self.profiles = dict(profiles)
        self.config = config
        self.funds = {fund: FundHistory(config.runway_window_ms) for fund in self.fund_symbols}
        self.depth = Books()
        self.stages: dict[tuple[str, str], AdlStage] = {}
        self.triggered: dict[tuple[str, str], tuple[int, int]] = {}  # -> (bankruptcies, ts)
        self.stage_rules: dict[tuple[str, str], str | None] = {}  # the rule of each stage
        self.projected_at_ms: dict[str, int] = {}
        self._facts: dict[str, _SymbolFacts] = {}
        self._losses: dict[str, _FundLosses] = {}
        # per fund, whether any of its symbols' venues starts ADL at a negative value
        self._negative_funds = {
            fund
            for fund, symbols in self.fund_symbols.items()
            if any(self.profiles[sym].adl_on_negative_value for sym in symbols)
        }
        if drawdown_rules is None:
            drawdown_rules = {sym: p.drawdown_rule for sym, p in self.profiles.items()}
        self.drawdown = DrawdownPools(self.fund_symbols, drawdown_rules)
        self.inverse_symbols = frozenset(inverse_symbols)
        self.ticks = dict(ticks or {})

    @classmethod
    def for_instruments(
        cls, instruments: Mapping[str, Instrument], config: EngineConfig
    ) -> FundWatch:
        """Each fund's symbols (sorted) and each symbol's venue profile, from the
        instruments file."""
        fund_symbols: dict[str, list[str]] = {}
        for sym in sorted(instruments):
            fund_symbols.setdefault(instruments[sym].fund, []).append(sym)
        profiles = {sym: profile_named(inst.profile) for sym, inst in instruments.items()}
        rules = {sym: inst.drawdown_rule for sym, inst in instruments.items()}
        inverse = {sym for sym, inst in instruments.items() if inst.inverse}
        ticks = {sym: inst.engine_tick for sym, inst in instruments.items()}
        return cls(fund_symbols, profiles, config, rules, inverse, ticks)

    def validate(self, event: InsuranceFund) -> None:
        """``InvalidEvent`` for a fund update the watch cannot take (nothing recorded)."""
        if event.fund not in self.funds:
            raise InvalidEvent("fund", f"unknown fund {event.fund!r}; known: {sorted(self.funds)}")
        if event.symbol is not None and event.symbol not in self.fund_symbols[event.fund]:
            raise InvalidEvent("symbol", f"{event.symbol!r} is not in fund {event.fund!r}")

    def record(self, event: InsuranceFund) -> None:
        self.validate(event)
        self.funds[event.fund].record(event.ts_ms, event.balance)
        self.drawdown.record(event.fund, event.ts_ms, event.balance, event.symbol, event.symbol_pnl)

    # ------------------------------------------------------------------ loss
    def _liquidatable_loss(self, view: MarketView, sym: str, depth: Depth | None) -> int:
        """The loss of closing the symbol's liquidatable positions into its book."""
        if depth is None:
            return 0
        positions = list(view.liquidatable(sym))
        if not positions:
            return 0
        longs = [(b, q) for _, b, q in positions if q > 0]
        shorts = [(b, -q) for _, b, q in positions if q < 0]
        return book_close_loss(longs, depth.bids, True) + book_close_loss(shorts, depth.asks, False)

    def _read(self, view: MarketView, sym: str) -> _SymbolFacts:
        """The symbol's losses and imminent-move deficits, read again only when the
        symbol or its book changed since (a fund check follows every event of any of
        the fund's symbols; most symbols did not move)."""
        version = view.version(sym)
        depth = self.depth.get(sym)
        known = self._facts.get(sym)
        if (
            known is not None
            and version is not None
            and known.version == version
            and known.depth is depth
        ):
            return known
        down, up = adverse_moves(self.config.imminent_distance, sym in self.inverse_symbols)
        at_mark = after_move = (0, 0)
        losses = (0, 0)  # (bankrupt deficit at the mark, loss of closing liquidatable ones)
        if view.mark(sym) is not None:
            longs, shorts = view.curve(sym, True), view.curve(sym, False)
            at_mark, after_move = (longs(0.0), shorts(0.0)), (longs(down), shorts(up))
            losses = (sum(at_mark), self._liquidatable_loss(view, sym, depth))
        facts = _SymbolFacts(version, depth, losses, at_mark, after_move)
        if version is not None:
            self._facts[sym] = facts
        return facts

    def loss_now(self, view: MarketView, fund: str) -> tuple[int, PerSymbol]:
        loss, losses, _ = self._loss(view, fund)
        return loss, dict(losses.per_symbol)

    def _loss(self, view: MarketView, fund: str) -> tuple[int, _FundLosses, bool]:
        """The fund's loss now, reading again only the symbols that moved since; and
        whether the view said which moved (else every symbol was read)."""
        losses = self._losses.get(fund)
        changed = view.changed(fund)
        if losses is None or changed is None:
            symbols: Iterable[str] = self.fund_symbols[fund]
            if losses is None:
                order = {sym: k for k, sym in enumerate(self.fund_symbols[fund])}
                losses = self._losses[fund] = _FundLosses(order)
        else:
            books = self.depth.changed
            symbols = set(changed) | {sym for sym in books if sym in losses.order}
        self.depth.changed.difference_update(symbols)
        for sym in symbols:
            losses.update(sym, self._read(view, sym))
        return losses.total - view.overcount(fund), losses, changed is not None

    # ------------------------------------------------------------------ stages
    def check(
        self, view: MarketView, fund: str, ts_ms: int, force_projection: bool = False
    ) -> list[Signal]:
        """Stage changes of the fund's symbols (as triggers) and, when due or forced, a
        projection."""
        balance = self.funds[fund].balance
        if balance is None:
            return []
        loss, losses, incremental = self._loss(view, fund)
        per_symbol = losses.per_symbol
        coverage = coverage_ratio(balance, loss)
        signals: list[Signal] = []
        symbols: Iterable[str] = self.fund_symbols[fund]
        near = (lambda least: self._near(fund, losses, least)) if incremental else None
        edges = self.drawdown.edges(fund, balance, ts_ms, near)
        if incremental:
            symbols = self._candidates(fund, losses, balance - loss, edges)
        for sym in symbols:
            mark = view.mark(sym)
            if mark is None:
                continue
            sym_loss = sum(per_symbol[sym])
            key = (fund, sym)
            stage, rule = self._stage(view, key, (loss, per_symbol[sym]), balance, coverage, edges)
            bankruptcies = view.bankruptcies(sym)
            if stage is self.stages.get(key) and not self._grew(key, stage, bankruptcies, ts_ms):
                continue
            if stage is AdlStage.TRIGGERED:
                signals.extend(view.prepare_queue(sym, ts_ms))  # the plan needs today's queue
            if stage is None:
                self.stages.pop(key, None)
                self.triggered.pop(key, None)
                self.stage_rules.pop(key, None)
                stage = AdlStage.CLEARED
            else:
                self.stages[key] = stage
                self.triggered[key] = (bankruptcies, ts_ms)
                self.stage_rules[key] = rule
            signals.append(
                self._trigger(
                    view,
                    fund,
                    sym,
                    mark,
                    stage,
                    balance,
                    (loss, sym_loss),
                    coverage,
                    ts_ms,
                    edges.get(sym),
                )
            )
            force_projection = True
        last = self.projected_at_ms.get(fund)
        if force_projection or last is None or ts_ms - last >= self.config.projection_interval_ms:
            self.projected_at_ms[fund] = ts_ms
            signals.append(self.projection(view, fund, ts_ms, loss, per_symbol))
        return signals

    def _stage(
        self,
        view: MarketView,
        key: tuple[str, str],
        losses: tuple[int, tuple[int, int]],  # (the fund's loss now, the symbol's two)
        balance: int,
        coverage: float | None,
        edges: Mapping[str, Edges],
    ) -> tuple[AdlStage | None, str | None]:
        """The symbol's stage by its venue's rules (module docstring), and the rule that
        set it (the fund's first when both do)."""
        sym = key[1]
        loss, sym_losses = losses
        sym_loss = sum(sym_losses)
        stage: AdlStage | None = None
        if self._on_negative(sym):
            stage = self._negative_value_stage(view, sym, sym_losses)
            return stage, None if stage is None else NEGATIVE_VALUE
        if loss > balance and sym_loss > 0:
            return AdlStage.TRIGGERED, FUND
        if (
            sym_loss > 0 and coverage is not None and coverage < self.config.imminent_coverage
        ) or self._within_distance(view, sym, loss, balance):
            stage = AdlStage.IMMINENT
        if sym in edges:
            drawdown = self._drawdown_stage(view, sym, sym_loss, edges[sym], key)
            if _STRENGTH[drawdown] > _STRENGTH[stage]:
                return drawdown, DRAWDOWN
        return stage, None if stage is None else FUND

    def _candidates(
        self, fund: str, losses: _FundLosses, slack: int, edges: Mapping[str, Edges]
    ) -> list[str]:
        """The only symbols whose stage can be set or cleared, in the fund's order: any
        other has no loss, no move that would exhaust the fund (by more than ``slack``)
        or its drawdown budget, and no stage (the loop would skip it)."""
        staged = {sym for f, sym in self.stages if f == fund}
        candidates = losses.losing | staged | set(losses.moved_past(slack))
        if fund in self._negative_funds:  # any move that would make a deficit
            candidates |= {s for s in losses.moved_past(0) if self._on_negative(s)}
        candidates |= edges.keys()
        return sorted(candidates, key=losses.order.__getitem__)

    def _near(self, fund: str, losses: _FundLosses, least_budget: int) -> set[str]:
        """The fund's symbols a drawdown stage may move at: staged, losing, or whose
        adverse move passes ``least_budget``."""
        moved = losses.moved_past(least_budget)
        return {s for f, s in self.stages if f == fund} | losses.losing | set(moved)

    def _drawdown_stage(
        self, view: MarketView, sym: str, sym_loss: int, edges: Edges, key: tuple[str, str]
    ) -> AdlStage | None:
        """The stage by the symbol's drawdown rule (module docstring)."""
        budget, stop_edge = edges
        if drawdown_triggered(sym_loss, edges, self.stages.get(key) is AdlStage.TRIGGERED):
            return AdlStage.TRIGGERED
        facts = self._read(view, sym)
        if (
            budget < 0
            or stop_edge <= 0  # at or below the stop ratio: an ADL once started goes on
            or (sym_loss > 0 and budget < self.config.imminent_coverage * sym_loss)
            or any(
                sym_loss - at_mark + after > budget
                for at_mark, after in zip(facts.at_mark, facts.after_move, strict=True)
            )
        ):
            return AdlStage.IMMINENT
        return None

    def _grew(
        self, key: tuple[str, str], stage: AdlStage | None, bankruptcies: int, ts_ms: int
    ) -> bool:
        """A triggered symbol is re-announced when new positions went bankrupt since its
        last announcement, at most once per ``trigger_refresh_ms``."""
        if stage is not AdlStage.TRIGGERED or key not in self.triggered:
            return False
        count, at_ms = self.triggered[key]
        return bankruptcies > count and ts_ms - at_ms >= self.config.trigger_refresh_ms

    def _on_negative(self, sym: str) -> bool:
        return self.profiles[sym].adl_on_negative_value

    def _negative_value_stage(
        self, view: MarketView, sym: str, losses: tuple[int, int]
    ) -> AdlStage | None:
        """The stage at a venue where ADL starts at a negative value (module docstring)."""
        bankrupt_deficit, liquidatable_loss = losses
        if bankrupt_deficit > 0:
            return AdlStage.TRIGGERED
        if liquidatable_loss > 0 or any(after > 0 for after in self._read(view, sym).after_move):
            return AdlStage.IMMINENT
        return None

    def _distance(
        self,
        view: MarketView,
        sym: str,
        losses: tuple[int, int],  # (the fund's loss now, the symbol's own)
        balance: int,
        is_long: bool,
        edges: Edges | None,
    ) -> float | None:
        """The side's ADL distance by the symbol's venue rule: the smallest adverse move
        that exhausts the fund or passes the symbol's drawdown budget (``edges``), or
        (negative values) that makes a deficit on the side. A move of the price in USD:
        an inverse symbol's move of x is converted (``inverse.price_move``)."""
        curve = view.curve(sym, is_long)
        if self._on_negative(sym):
            distance = adl_distance(curve(0.0), 0, curve, is_long)
        else:
            loss, sym_loss = losses
            distance = adl_distance(loss, balance, curve, is_long)
            if edges is not None:
                by_drawdown = adl_distance(sym_loss, edges[0], curve, is_long)
                distance = min((d for d in (distance, by_drawdown) if d is not None), default=None)
        if distance is None or sym not in self.inverse_symbols:
            return distance
        return price_move(distance, is_long)

    def _within_distance(self, view: MarketView, sym: str, loss: int, balance: int) -> bool:
        """An adverse move of ``imminent_distance`` of the symbol makes the loss exceed
        the fund: loss - deficit at the mark + deficit after the move, per side, from the
        symbol's facts."""
        facts = self._read(view, sym)
        return any(
            loss - at_mark + after > balance
            for at_mark, after in zip(facts.at_mark, facts.after_move, strict=True)
        )

    def _trigger(
        self,
        view: MarketView,
        fund: str,
        sym: str,
        mark: int,
        stage: AdlStage,
        balance: int,
        losses: tuple[int, int],  # (the fund's loss now, the symbol's own)
        coverage: float | None,
        ts_ms: int,
        edges: Edges | None = None,
        plan_anyway: bool = False,
    ) -> AdlTriggered:
        """``edges``: the symbol's drawdown budget and stop edge, when its rule is in
        force; ``plan_anyway``: the plan and its second opinion whatever the stage (a
        read: what ADL would do now)."""
        loss, sym_loss = losses
        # what ADL must find: the fund's shortfall, or under a drawdown rule the loss past
        # the budget (all of it while a triggered symbol is held between its two edges)
        shortfall = max(0, loss - balance)
        if edges is not None:
            held = self.stages.get((fund, sym)) is AdlStage.TRIGGERED
            past = sym_loss - edges[0]
            shortfall = max(shortfall, past if past > 0 or not held else sym_loss)
        bankrupt = sorted(view.bankrupt(sym), key=lambda b: (-b.deficit, b.account, b.side))
        # positions being liquidated: the fund takes over their close through the book;
        # when it cannot pay, the venue deleverages them too, at their bankruptcy price
        liquidating = [
            BankruptPosition(acct, sym, "long" if q > 0 else "short", abs(q), price, 0, True)
            for acct, price, q in view.liquidatable(sym)
            if not self._on_negative(sym)  # there the vault takes them, not ADL
        ]
        bankrupt.extend(sorted(liquidating, key=lambda b: (-b.qty, b.account)))
        plan: tuple[DeleverageStep, ...] = ()
        if (stage is AdlStage.TRIGGERED or plan_anyway) and bankrupt:
            need = {"long": 0, "short": 0}
            for b in bankrupt:
                need["short" if b.side == "long" else "long"] += b.qty
            queues = {side: view.queue(sym, side, qty) for side, qty in need.items() if qty}
            tick = self.ticks.get(sym, 0)
            plan = deleverage_plan(bankrupt, queues, self.profiles[sym], mark, tick)
        opinion = None
        if plan:
            # D: what ADL must find for this symbol (the shortfall, at most the symbol's
            # own loss)
            deficit = min(shortfall, sym_loss)
            if self._on_negative(sym):  # ADL covers what is negative, whatever the fund
                deficit = sum(b.deficit for b in bankrupt)
            sides = view.winners(sym)
            profits: dict[str, float] = {}
            for side in {step.side for step in plan}:
                accounts = sorted({step.account for step in plan if step.side == side})
                profits.update(view.unit_profits(sym, side, accounts))
            opinion = second_opinion(plan, mark, deficit, sides, profits)
        distances = [
            d
            for d in (
                self._distance(view, sym, losses, balance, True, edges),
                self._distance(view, sym, losses, balance, False, edges),
            )
            if d is not None
        ]
        return AdlTriggered(
            ts_ms=ts_ms,
            fund=fund,
            symbol=sym,
            stage=stage,
            fund_balance=balance,
            projected_loss=loss,
            shortfall=shortfall,
            coverage_ratio=coverage,
            adl_distance_pct=min(distances) * 100 if distances else None,
            bankrupt=tuple(bankrupt) if stage is not AdlStage.CLEARED else (),
            plan=plan,
            second_opinion=opinion,
            rule=self.stage_rules.get((fund, sym)),
        )

    def fund_of(self, symbol: str) -> str | None:
        return next((f for f, syms in self.fund_symbols.items() if symbol in syms), None)

    def plan_now(
        self, view: MarketView, symbol: str, ts_ms: int
    ) -> tuple[AdlTriggered, AdlStage | None] | None:
        """What ADL would do to the symbol now, triggered or not: its bankrupt and
        liquidating positions, the plan against its queue as last ranked, the plan's
        second opinion; and the stage last announced. A read (``None``: no fund balance
        or mark yet)."""
        fund = self.fund_of(symbol)
        mark = view.mark(symbol)
        balance = None if fund is None else self.funds[fund].balance
        if fund is None or mark is None or balance is None:
            return None
        loss, losses, _ = self._loss(view, fund)
        stage = self.stages.get((fund, symbol))
        coverage = coverage_ratio(balance, loss)
        shown = AdlStage.TRIGGERED if stage is None else stage
        sym_loss = sum(losses.per_symbol[symbol])
        edges = self.drawdown.edges_of(fund, symbol, balance, ts_ms)
        planned = self._trigger(
            view,
            fund,
            symbol,
            mark,
            shown,
            balance,
            (loss, sym_loss),
            coverage,
            ts_ms,
            edges,
            plan_anyway=True,
        )
        return planned, stage

    # ------------------------------------------------------------------ projection
    def projection(
        self,
        view: MarketView,
        fund: str,
        ts_ms: int,
        loss: int | None = None,
        per_symbol: PerSymbol | None = None,
    ) -> FundProjection:
        """A pure read: callers may ask at any time."""
        if loss is None or per_symbol is None:
            loss, per_symbol = self.loss_now(view, fund)
        history = self.funds[fund]
        balance = history.balance or 0
        symbols = []
        for sym in self.fund_symbols[fund]:
            mark = view.mark(sym)
            bankrupt, liquidatable = per_symbol[sym]
            if mark is None:
                symbols.append(SymbolProjection(sym, None, None, None, 0, 0, ()))
                continue
            longs, shorts = view.curve(sym, True), view.curve(sym, False)
            found = self.drawdown.drawdown_of(fund, sym, balance, ts_ms)
            edges = None if found is None else self.drawdown.edges_at(sym, found)
            sym_losses = (loss, bankrupt + liquidatable)
            long_d = self._distance(view, sym, sym_losses, balance, True, edges)
            short_d = self._distance(view, sym, sym_losses, balance, False, edges)
            shocks = self.config.shocks
            if sym in self.inverse_symbols:  # the venue's price moves by the shocks, not x
                shocks = tuple(engine_move(s) for s in shocks)
            values = [v for _, v in ladder(loss, longs, shorts, shocks)]
            points = list(zip(self.config.shocks, values, strict=True))
            symbols.append(
                SymbolProjection(
                    symbol=sym,
                    mark_price=mark,
                    adl_distance_long_pct=None if long_d is None else long_d * 100,
                    adl_distance_short_pct=None if short_d is None else short_d * 100,
                    bankrupt_deficit=bankrupt,
                    liquidatable_loss=liquidatable,
                    ladder=tuple(LadderPoint(s * 100, v) for s, v in points),
                    pool_pnl_ratio=pnl_ratio(found, 0),
                    pool_pnl_ratio_after_loss=pnl_ratio(found, bankrupt + liquidatable),
                )
            )
        return FundProjection(
            ts_ms=ts_ms,
            fund=fund,
            fund_balance=balance,
            projected_loss=loss,
            coverage_ratio=coverage_ratio(balance, loss),
            runway_seconds=history.runway_seconds(),
            symbols=tuple(symbols),
        )
