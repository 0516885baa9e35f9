"""The exchange's side of a simulated market: liquidation, insurance fund and ADL.

The venue keeps its own copy of every account (an ``Engine`` fed with every event the
scenario emits, its own included) and, after each mark step, closes the accounts that
crossed maintenance margin at least ``delay_ms`` earlier (its liquidation engine's
latency: the price runs on meanwhile), as USDⓈ-M venues do:

- the liquidation engine takes the position over at its **bankruptcy price** (for a cross
  account with several positions: the most losing one at its bankruptcy price, the others
  at the mark), so the account is left with zero equity: its remaining margin is the
  clearance fee;
- it closes the position through the **order book** (levels eaten by earlier closes of
  the same snapshot are gone); the difference ``qty * (book price - takeover price)`` is
  the insurance fund's gain (+) or loss (-); a market-making account takes the other side
  of each book trade, so open interest stays zero-sum between the accounts;
- when the fund cannot pay a position's loss, that position is **auto-deleveraged**
  instead: the opposite side's ADL queue (the venue profile's ranking, re-ranked when
  older than a second or when positions opened or closed since) is closed against it at
  its takeover price
  (``adl.deleverage_plan``), and the fund pays nothing; positions are closed gains
  first, so a cross account's winners help pay for its losers;
- a wallet left below zero by rounding is topped up from the fund (``transfer``);
- a symbol with a pool-drawdown rule (``Instrument.drawdown_rule``, Bybit's:
  ``engine.drawdown``) is deleveraged also when the fund could pay: when the loss of a
  close would take the symbol's PnL in the pool (kept per symbol, from 0 at the opening
  balance) below the rule's ratio of the pool's window maximum, and while it stays at or
  below the stop ratio. The whole position is deleveraged (Bybit makes up only the loss
  past the ratio: the monitor's plans, too, close whole positions). Each change of a
  symbol's PnL is written as an ``insurance_fund`` event with ``symbol`` and
  ``symbol_pnl`` (the venue's book-keeping the monitor's rule reads).

Venue events carry the mark step's time + 1 ms (fills), + 2 ms (transfers) and + 3 ms
(the fund's new balance), so the canonical order of the file is the venue's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.engine.adl import RankedEntry, deleverage_plan
from streams.engine.config import NEVER_MS, EngineConfig
from streams.engine.decode import decode_event
from streams.engine.drawdown import DrawdownPools, drawdown_triggered
from streams.engine.engine import Engine
from streams.engine.events import Event, Fill
from streams.engine.fixed import SCALE, div_ceil, div_floor, to_raw, to_str
from streams.engine.instruments import Instrument
from streams.engine.risk import Health, PositionRisk
from streams.engine.signals import BankruptcyDetected, BankruptPosition, LiquidationDetected

MAKER = "mm-book"  # the market maker behind the simulated order book
QUEUE_MAX_AGE_MS = 1_000  # the venue re-ranks a queue older than this before using it
BEYOND_BOOK_PENALTY = 100  # 1% beyond the last level, in basis points of its price
Levels = list[list[int]]  # [[price, qty], ...] best first, raw fixed point; eaten in place


@dataclass(slots=True)
class VenueStats:
    liquidations: int = 0  # positions closed through the book
    deleveraged: int = 0  # positions closed by ADL
    adl_fills: int = 0  # counterparty closes
    fund_paid: int = 0  # raw quote the fund lost on closes and top-ups
    fund_gained: int = 0  # raw quote the fund earned on closes
    uncovered: int = 0  # raw quote the fund could not pay and ADL could not absorb


@dataclass(slots=True)
class Venue:
    instruments: Mapping[str, Instrument]
    fund: str
    fund_balance: int  # raw
    sink: Callable[[dict[str, Any]], None]  # where the venue's events are written
    engine: Engine = field(init=False)
    books: dict[str, tuple[Levels, Levels]] = field(default_factory=dict)
    delay_ms: int = 0  # from a position crossing maintenance margin to its liquidation
    pending: dict[str, int] = field(default_factory=dict)  # account -> flagged at (ms)
    open_interest: dict[str, int] = field(default_factory=dict)  # raw base qty, long side
    stats: VenueStats = field(default_factory=VenueStats)
    _fills: int = 0
    drawdown: DrawdownPools = field(init=False)  # the symbols' drawdown rules, the pool's maxima
    symbol_pnl: dict[str, int] = field(init=False)  # raw: each drawdown symbol's PnL in the pool
    _pnl_moved: set[str] = field(default_factory=set)  # since the last ``act``
    _drawdown_on: set[str] = field(default_factory=set)  # symbols in drawdown ADL

    def __post_init__(self) -> None:
        # the venue's copy ranks a queue only when it deleverages from it (``_live_queue``)
        # and keeps its own fund: no periodic ranking, no fund projections
        self.engine = Engine(self.instruments, EngineConfig(rank_refresh_ms=NEVER_MS))
        rules = {s: i.drawdown_rule for s, i in self.instruments.items()}
        self.drawdown = DrawdownPools({self.fund: sorted(rules)}, rules)
        self.symbol_pnl = dict.fromkeys(self.drawdown.symbols[self.fund], 0)

    # ------------------------------------------------------------------ events
    def emit(self, obj: dict[str, Any]) -> None:
        """Write an event and apply it to the venue's accounts."""
        self.sink(obj)
        if obj["type"] == "insurance_fund":
            # the venue's own fund is ``fund_balance``; its copy projects nothing. The
            # opening balance starts every drawdown symbol's PnL in the pool at 0
            pool = self.drawdown.pools.get(self.fund)
            if pool is None:
                return
            if pool.balance.last is None:
                for sym in self.symbol_pnl:
                    pool.record(int(obj["ts"]), self.fund_balance, sym, 0)
                self._write_pnl(int(obj["ts"]), list(self.symbol_pnl))
            pool.record(int(obj["ts"]), self.fund_balance, None, None)
            return
        event = decode_event(obj, self.instruments)
        before = self._long_qty(event)
        for signal in self.engine.apply(event):
            if isinstance(signal, LiquidationDetected | BankruptcyDetected):
                self.pending.setdefault(signal.account, signal.ts_ms)
        if isinstance(event, Fill):
            change = self._long_qty(event) - before
            self.open_interest[event.symbol] = self.open_interest.get(event.symbol, 0) + change

    def _long_qty(self, event: Event) -> int:
        if not isinstance(event, Fill) or event.account not in self.engine.accounts:
            return 0
        pos = self.engine.accounts[event.account].position(event.symbol)
        return max(pos.qty, 0) if pos is not None else 0

    def set_book(self, symbol: str, bids: Levels, asks: Levels) -> None:
        self.books[symbol] = (bids, asks)

    # ------------------------------------------------------------------ liquidation
    def act(self, ts_ms: int) -> None:
        """Close every account flagged at least ``delay_ms`` ago (the liquidation engine's
        latency: in a fast market the price runs on meanwhile, past bankruptcy prices)."""
        fund_before = self.fund_balance
        due = sorted(a for a, t in self.pending.items() if ts_ms - t >= self.delay_ms)
        for acct in due:
            del self.pending[acct]
            self._liquidate(acct, ts_ms)
        if self.fund_balance != fund_before:
            self.emit(
                {
                    "type": "insurance_fund",
                    "ts": ts_ms + 3,
                    "fund": self.fund,
                    "balance": to_str(self.fund_balance),
                }
            )
        if self._pnl_moved:
            self._write_pnl(ts_ms + 3, sorted(self._pnl_moved))
            self._pnl_moved.clear()

    def _write_pnl(self, ts_ms: int, symbols: list[str]) -> None:
        for sym in symbols:
            self.sink(
                {
                    "type": "insurance_fund",
                    "ts": ts_ms,
                    "fund": self.fund,
                    "balance": to_str(self.fund_balance),
                    "symbol": sym,
                    "symbol_pnl": to_str(self.symbol_pnl[sym]),
                }
            )

    def _liquidate(self, acct: str, ts_ms: int) -> None:
        risk = self.engine.risks.get(acct)
        if risk is None or acct == MAKER:
            return
        flagged = [p for p in risk.positions if p.health >= Health.LIQUIDATABLE]
        groups = [[p] for p in flagged if p.isolated]
        if any(not p.isolated for p in flagged):
            groups.append([p for p in risk.positions if not p.isolated])
        for group in groups:
            self._close(acct, group, ts_ms)
        wallet = self.engine.accounts[acct].wallet_balance
        if wallet < 0:  # rounding dust of the takeover prices: the fund covers what it can
            paid = min(-wallet, self.fund_balance)
            self.stats.uncovered += -wallet - paid
            if paid == 0:
                return
            self._account_pnl(-paid)
            self.emit(
                {
                    "type": "balance",
                    "event_id": f"cover-{acct}-{ts_ms}",
                    "ts": ts_ms + 2,
                    "account": acct,
                    "amount": to_str(paid),
                    "reason": "transfer",
                }
            )

    def _close(self, acct: str, group: list[PositionRisk], ts_ms: int) -> None:
        """Take the group over and close each position through the book while the fund
        can pay its loss; a position whose loss it cannot pay is deleveraged instead.
        Gains for the fund first, so they help pay for the rest."""
        anchor = min(group, key=lambda p: p.unrealized_pnl)
        closes = []
        for p in group:
            takeover = _takeover_price(p, p is anchor)
            book = self._walk(p.symbol, -p.qty, commit=False)
            closes.append((div_floor(p.qty * (book - takeover), SCALE), p, takeover))
        for fund_pnl, p, takeover in sorted(closes, key=lambda c: (-c[0], c[1].symbol)):
            if self.fund_balance + fund_pnl < 0 or self._past_drawdown(p.symbol, fund_pnl, ts_ms):
                self._deleverage(acct, p, takeover, ts_ms)
                continue
            pnl = self._through_book(acct, p.symbol, p.qty, takeover, ts_ms)
            self._account_pnl(pnl, p.symbol, ts_ms)
            self.stats.liquidations += 1

    def _past_drawdown(self, sym: str, fund_pnl: int, ts_ms: int) -> bool:
        """Whether the symbol's drawdown rule deleverages a close costing the pool
        ``-fund_pnl`` (the rule's edges: ``engine.drawdown``)."""
        edges = self.drawdown.edges_of(self.fund, sym, self.fund_balance, ts_ms)
        if edges is None:
            return False
        adl = drawdown_triggered(max(0, -fund_pnl), edges, sym in self._drawdown_on)
        if adl:
            self._drawdown_on.add(sym)
        elif edges[1] > 0:  # back above the stop ratio
            self._drawdown_on.discard(sym)
        return adl

    def _deleverage(self, acct: str, p: PositionRisk, price: int, ts_ms: int) -> None:
        opposite = "short" if p.qty > 0 else "long"
        bankrupt = BankruptPosition(acct, p.symbol, p.side, abs(p.qty), price, 0)
        profile = self.engine.profiles[p.symbol]
        queue = self._live_queue(p.symbol, opposite, abs(p.qty), acct, ts_ms)
        tick = self.instruments[p.symbol].engine_tick
        steps = deleverage_plan([bankrupt], {opposite: queue}, profile, p.mark_price, tick)
        sign = 1 if p.qty > 0 else -1
        closed = 0
        for step in steps:
            self._fill(step.account, p.symbol, sign * step.qty, step.price, ts_ms, "adl", step.fee)
            self._fill(acct, p.symbol, -sign * step.qty, step.price, ts_ms, "adl")
            closed += step.qty
            self.stats.adl_fills += 1
        self.stats.deleveraged += 1
        rest = abs(p.qty) - closed
        if rest > 0:  # not enough healthy counterparties: the book, whatever it costs
            loss = self._through_book(acct, p.symbol, sign * rest, price, ts_ms)
            self.stats.uncovered += max(0, -loss - self.fund_balance)
            self._account_pnl(max(loss, -self.fund_balance), p.symbol, ts_ms)

    def _through_book(self, acct: str, symbol: str, qty: int, takeover: int, ts_ms: int) -> int:
        """Close ``qty`` (the account's signed position) at ``takeover`` and sell it on
        through the book to the maker; returns the fund's gain (+) or loss (-)."""
        book = self._walk(symbol, -qty, commit=True)
        self._fill(acct, symbol, -qty, takeover, ts_ms, "liquidation")
        self._fill(MAKER, symbol, qty, book, ts_ms, "trade")
        return div_floor(qty * (book - takeover), SCALE)

    def _live_queue(
        self, sym: str, side: str, qty: int, exclude: str, ts_ms: int
    ) -> list[RankedEntry]:
        """The last ranking of the side, sizes cut to what each account holds now (earlier
        closes of this step may have reduced them)."""
        ranked_at = self.engine.ranked_at_ms(sym)
        # positions opened or closed since the ranking: the venue ranks again, too
        stale = ranked_at is None or ts_ms - ranked_at > QUEUE_MAX_AGE_MS
        if stale or self.engine.queue_changed(sym):
            self.engine.rerank(sym, ts_ms)
        want = qty
        while True:
            ranked = self.engine.queue(sym, side, want)
            live: list[RankedEntry] = []
            for entry in ranked:
                pos = self.engine.accounts[entry.account].position(sym)
                if entry.account == exclude or pos is None or (pos.qty > 0) != (side == "long"):
                    continue
                live.append(
                    RankedEntry(entry.account, min(entry.qty, abs(pos.qty)), entry.score,
                                entry.rank, entry.light)
                )  # fmt: skip
            whole_queue = sum(e.qty for e in ranked) < want
            if sum(e.qty for e in live) >= qty or whole_queue:
                return live
            want *= 4

    # ------------------------------------------------------------------ helpers
    def _walk(self, symbol: str, signed_qty: int, commit: bool) -> int:
        """Average price of a market order of ``signed_qty`` (+ buys the asks, - sells the
        bids); rounded against the venue (down for a sale, up for a purchase)."""
        bids, asks = self.books[symbol]
        levels = asks if signed_qty > 0 else bids
        remaining, cost = abs(signed_qty), 0
        for level in levels:
            take = min(remaining, level[1])
            cost += take * level[0]
            remaining -= take
            if commit:
                level[1] -= take
            if remaining == 0:
                break
        if remaining:
            last = levels[-1][0]
            step = last * BEYOND_BOOK_PENALTY // 10_000
            cost += remaining * (last + step if signed_qty > 0 else last - step)
        total = abs(signed_qty)
        return div_ceil(cost, total) if signed_qty > 0 else div_floor(cost, total)

    def _fill(
        self, acct: str, symbol: str, signed_qty: int, price: int, ts_ms: int, kind: str,
        fee: int = 0,
    ) -> None:  # fmt: skip
        self._fills += 1
        self.emit(
            {
                "type": "fill",
                "fill_id": f"v-{self._fills}",
                "ts": ts_ms + 1,
                "account": acct,
                "symbol": symbol,
                "side": "buy" if signed_qty > 0 else "sell",
                "qty": to_str(abs(signed_qty)),
                "price": to_str(price),
                "fee": to_str(fee),
                "liquidity": "maker" if acct == MAKER else "taker",
                "kind": kind,
            }
        )

    def _account_pnl(self, pnl: int, symbol: str | None = None, ts_ms: int = 0) -> None:
        """The fund's gain (+) or loss (-), from ``symbol``'s close when it has one."""
        if pnl >= 0:
            self.stats.fund_gained += pnl
        else:
            self.stats.fund_paid += -pnl
        self.fund_balance += pnl
        if symbol in self.symbol_pnl:
            self.symbol_pnl[symbol] += pnl
            self.drawdown.record(
                self.fund, ts_ms, self.fund_balance, symbol, self.symbol_pnl[symbol]
            )
            self._pnl_moved.add(symbol)


def _takeover_price(p: PositionRisk, is_anchor: bool) -> int:
    if is_anchor and p.bankruptcy_price is not None and p.bankruptcy_price > 0:
        return p.bankruptcy_price
    return p.mark_price


def raw_levels(levels: list[list[str]]) -> Levels:
    return [[to_raw(price), to_raw(qty)] for price, qty in levels]
