"""A pool-drawdown ADL rule (Bybit's "contract PnL drawdown ADL") and the history it reads.

Bybit, v5 API "Get ADL Alert" (bybit-exchange.github.io/docs/v5/market/adl-alert), for
grouped insurance pools::

    pnlRatio = (symbol's current PnL - symbol's 8 h max PnL) / pool's 8 h max balance
    trigger:  balance > adlTriggerThreshold  and  pnlRatio < insurancePnlRatio
    stop:     pnlRatio > adlStopRatio
    (and, as before, trigger at balance <= 0, stop at balance > 0: the fund rule)

Its example 1: three symbols share a pool whose balance 8 h ago was 1M USDT; symbol A
loses 350K -> pnlRatio -35% < -30% -> ADL for A, which takes 50K from A's winners so
that A's ratio stays at -30%. The published parameters (the ADL alert stream's example):
``insurancePnlRatio`` -0.3, ``adlStopRatio`` -0.25, ``adlTriggerThreshold`` 10,000.

The monitor projects: with ``l`` the symbol's loss now (its bankrupt deficit and the
loss of closing its liquidatable positions into the book, not yet booked by the pool),
``X`` = symbol PnL - its window max, ``M`` = the pool's window max balance::

    ratio after l  = (X - l) / M
    triggered when ratio after l < trigger ratio   <=>  l > budget = X - trigger x M
    stays until    ratio after l > stop ratio      <=>  l < X - stop x M

Both edges exact in raw units (``budget`` rounded down, the stop's edge up: an integer
loss passes a fractional edge exactly when it passes its floor / ceiling).

The symbol's PnL in the pool is the venue's book-keeping (the ``symbol_pnl`` of an
``insurance_fund`` input: the pool's cumulative PnL from that symbol, "not provided by
the API" to traders, known to the venue a monitor runs beside). A symbol the input never
gave one is measured by the pool's own drawdown, ``X = balance - M``: exact for a pool
of one symbol without transfers; for a shared pool it charges the whole pool's drawdown
to each of its symbols (earlier warnings, never later).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from streams.engine.fixed import SCALE, div_ceil, div_floor, ratio

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class DrawdownRule:
    """A pool-drawdown trigger (module docstring); ratios are raw (``SCALE`` = 1)."""

    trigger_ratio: int = -30 * SCALE // 100  # insurancePnlRatio (raw rate)
    stop_ratio: int = -25 * SCALE // 100  # adlStopRatio (raw rate)
    min_balance: int = 10_000 * SCALE  # adlTriggerThreshold (raw money)
    window_ms: int = 8 * HOUR_MS

    def applies(self, balance: int) -> bool:
        """The rule is in force only while the pool holds more than ``min_balance``."""
        return balance > self.min_balance

    def budget(self, drawdown: int, max_balance: int) -> int:
        """The largest loss the symbol can add without triggering: ``X - trigger x M``,
        rounded down (``drawdown`` = X, raw; negative when ADL is due without a loss)."""
        return div_floor(drawdown * SCALE - self.trigger_ratio * max_balance, SCALE)

    def stop_edge(self, drawdown: int, max_balance: int) -> int:
        """A triggered symbol's ADL stops once its loss is below this: ``X - stop x M``,
        rounded up."""
        return div_ceil(drawdown * SCALE - self.stop_ratio * max_balance, SCALE)


BYBIT_DRAWDOWN = DrawdownRule()  # the published parameters (module docstring)


_OPEN = 2**62  # an entry still in force has no end (an int64 for the desk's row)


@dataclass(slots=True)
class RollingMax:
    """The largest value in force over a trailing window of a step series (a value holds
    from its record until the next record). Kept: ``(since, value, until)`` of the
    records no later one exceeds, so values fall and times rise along the deque; the
    window's maximum is the first entry still in force at the window's start (a record
    dropped for a larger later one was in force in the window only if that one is).
    Pruned by the longest window asked (``keep_ms``)."""

    keep_ms: int
    entries: deque[tuple[int, int, int]] = field(default_factory=deque)

    def record(self, ts_ms: int, value: int) -> None:
        if self.entries:
            since, last, _ = self.entries[-1]
            self.entries[-1] = (since, last, ts_ms)  # the previous record ends here
        while self.entries and self.entries[-1][1] <= value:
            self.entries.pop()
        self.entries.append((ts_ms, value, _OPEN))
        start = ts_ms - self.keep_ms
        while self.entries and self.entries[0][2] <= start:
            self.entries.popleft()

    @property
    def last(self) -> int | None:
        return self.entries[-1][1] if self.entries else None

    def max_since(self, start_ms: int) -> int | None:
        """The largest value in force at any time from ``start_ms`` on."""
        if not self.entries:
            return None
        first = bisect_right(self.entries, start_ms, key=lambda e: e[2])
        return self.entries[first][1]  # the last entry never ends: always found


@dataclass(slots=True)
class PoolDrawdown:
    """One pool's balance and its symbols' PnL over the trailing window, as recorded
    from ``insurance_fund`` inputs; answers ``(X, M)`` of the module docstring."""

    keep_ms: int
    balance: RollingMax = field(init=False)
    symbol_pnl: dict[str, RollingMax] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.balance = RollingMax(self.keep_ms)

    def record(self, ts_ms: int, balance: int, symbol: str | None, pnl: int | None) -> None:
        self.balance.record(ts_ms, balance)
        if symbol is not None and pnl is not None:
            self.symbol_pnl.setdefault(symbol, RollingMax(self.keep_ms)).record(ts_ms, pnl)

    def drawdown(self, symbol: str, ts_ms: int, window_ms: int) -> tuple[int, int] | None:
        """``(X, M)`` for the symbol at ``ts_ms`` over ``window_ms``; ``None`` before any
        balance."""
        start = ts_ms - window_ms
        max_balance = self.balance.max_since(start)
        if max_balance is None:
            return None
        pnl = self.symbol_pnl.get(symbol)
        if pnl is None:  # the pool's own drawdown stands for the symbol's
            return (self.balance.last or 0) - max_balance, max_balance
        return (pnl.last or 0) - (pnl.max_since(start) or 0), max_balance


Edges = tuple[int, int]  # a drawdown symbol's (budget, stop edge), raw


def pnl_ratio(found: tuple[int, int] | None, loss: int) -> float | None:
    """Bybit's ``pnlRatio`` of a symbol whose ``(X, M)`` is ``found``, once the pool books
    ``loss`` more: (X - loss) / M (a float, for dashboards; ``None``: no rule in force)."""
    if found is None or found[1] <= 0:
        return None
    drawdown, max_balance = found
    return ratio(drawdown - loss, max_balance)


def drawdown_triggered(loss: int, edges: Edges, held: bool) -> bool:
    """Whether a loss of the symbol starts its drawdown ADL (past the budget) or, for one
    already ``held`` in it, keeps it going (at or past the stop edge)."""
    budget, stop_edge = edges
    return loss > 0 and (loss > budget or (held and loss >= stop_edge))


DRAWDOWN_RESCAN_MS = 1_000  # every drawdown symbol looked at again (the window's expiry)


class DrawdownPools:
    """Every fund's drawdown rules, its pool's trailing maxima, and which of its symbols
    a fund check must look at. Budgets move only with the pool's records and the
    window's expiry: a check looks at every drawdown symbol after a record and once per
    ``DRAWDOWN_RESCAN_MS`` of event time, and between at those the caller names near
    (staged, losing, or whose adverse move passes the least non-negative budget of the
    last look at all: one below 0 holds a stage)."""

    def __init__(
        self, fund_symbols: Mapping[str, Sequence[str]], rules: Mapping[str, DrawdownRule | None]
    ) -> None:
        self.rules = {sym: rule for sym, rule in rules.items() if rule is not None}
        self.symbols = {
            fund: [s for s in symbols if s in self.rules] for fund, symbols in fund_symbols.items()
        }
        self.pools = {
            fund: PoolDrawdown(max(self.rules[s].window_ms for s in symbols))
            for fund, symbols in self.symbols.items()
            if symbols
        }
        self._rescan_at_ms: dict[str, int] = {}
        self._least_budget: dict[str, int] = {}

    def record(
        self, fund: str, ts_ms: int, balance: int, symbol: str | None, pnl: int | None
    ) -> None:
        pool = self.pools.get(fund)
        if pool is not None:
            pool.record(ts_ms, balance, symbol, pnl)
            self._rescan_at_ms.pop(fund, None)  # budgets moved: look at all again

    def drawdown_of(self, fund: str, sym: str, balance: int, ts_ms: int) -> tuple[int, int] | None:
        """One symbol's ``(X, M)`` (module docstring) when its rule is in force (a read)."""
        rule, pool = self.rules.get(sym), self.pools.get(fund)
        if rule is None or pool is None or not rule.applies(balance):
            return None
        return pool.drawdown(sym, ts_ms, rule.window_ms)

    def edges_of(self, fund: str, sym: str, balance: int, ts_ms: int) -> Edges | None:
        """One symbol's (budget, stop edge) when its rule is in force (a read)."""
        found = self.drawdown_of(fund, sym, balance, ts_ms)
        return None if found is None else self.edges_at(sym, found)

    def edges_at(self, sym: str, found: tuple[int, int]) -> Edges:
        """The (budget, stop edge) of a drawdown symbol's ``(X, M)``."""
        rule = self.rules[sym]
        return rule.budget(*found), rule.stop_edge(*found)

    def edges(
        self,
        fund: str,
        balance: int,
        ts_ms: int,
        near: Callable[[int], Collection[str]] | None,
    ) -> dict[str, Edges]:
        """The fund's drawdown symbols that may hold a stage now and their edges: all of
        them when due (or ``near`` is None: every symbol is checked), else those
        ``near(least budget)`` names."""
        if fund not in self.pools:
            return {}
        rescan = ts_ms >= self._rescan_at_ms.get(fund, ts_ms)
        whole = rescan or near is None
        symbols: Iterable[str] = self.symbols[fund]
        if not whole and near is not None:
            symbols = [s for s in near(self._least_budget.get(fund, 0)) if s in self.rules]
        edges: dict[str, Edges] = {}
        for sym in symbols:
            found = self.edges_of(fund, sym, balance, ts_ms)
            if found is not None:
                edges[sym] = found
        if rescan:
            self._rescan_at_ms[fund] = ts_ms + DRAWDOWN_RESCAN_MS
        if whole:
            self._least_budget[fund] = min((b for b, _ in edges.values() if b >= 0), default=0)
        return edges
