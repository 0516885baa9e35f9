"""``adl-monitor simulate``: a seeded market as input events, with the venue's reaction.

Population: wallets are Pareto (alpha 1.3), each account's leverage is Pareto (alpha 1.1,
from 2x, capped) and bounds its total notional; a share of accounts trade one symbol
isolated at that leverage; every opening trade is between two
accounts, so open interest is zero-sum from the start. Then the market runs (``market``):
marks every ``calm_mark_ms`` (every ``crash_mark_ms`` inside the crash window), a book
snapshot every ``depth_every_marks`` steps, the fund's balance every ``fund_snapshot_ms``,
funding on the hour; after every step the venue (``venue``) liquidates and deleverages.

Events are written in canonical order (``streams.pipeline.sequencer``): ``replay`` of
the file and the streaming worker apply them alike. Same spec, same bytes.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from streams.engine.fixed import SCALE, to_str
from streams.engine.instruments import Instrument
from streams.pipeline.sequencer import canonical_key
from streams.scenario.market import Market, book, in_crash
from streams.scenario.spec import ScenarioSpec, SymbolSpec
from streams.scenario.venue import MAKER, Venue, VenueStats, raw_levels


@dataclass(frozen=True, slots=True)
class SimulationResult:
    events: int
    stats: VenueStats
    fund_start: int  # raw
    fund_end: int  # raw


def fmt(value: float, dp: int) -> str:
    """A float as a decimal string of ``dp`` places (half-even): the wire's exact form."""
    # "f": never an exponent (str() writes 0.00000095 as 9.5E-7, which no decoder takes)
    return format(Decimal(repr(value)).quantize(Decimal(1).scaleb(-dp), ROUND_HALF_EVEN), "f")


class CanonicalWriter:
    """Buffers events and writes them in canonical order once time has moved past them;
    ties keep the order they were made in (a stable sort)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.buffer: list[dict[str, Any]] = []
        self.written = 0

    def __call__(self, event: dict[str, Any]) -> None:
        self.buffer.append(event)

    def flush_before(self, ts_ms: int | None = None) -> None:
        ready = [e for e in self.buffer if ts_ms is None or e["ts"] < ts_ms]
        self.buffer = [e for e in self.buffer if ts_ms is not None and e["ts"] >= ts_ms]
        for event in sorted(ready, key=canonical_key):
            self.out.write(orjson.dumps(event) + b"\n")
        self.written += len(ready)


def _population(
    spec: ScenarioSpec, rng: random.Random, venue: Venue, tick: Callable[[int], None]
) -> dict[str, float]:
    t = spec.start_ms
    venue.emit({"type": "insurance_fund", "ts": t, "fund": spec.fund,
                "balance": to_str(venue.fund_balance)})  # fmt: skip
    venue.emit({"type": "balance", "event_id": "dep-maker", "ts": t, "account": MAKER,
                "amount": fmt(spec.maker_wallet * spec.money_scale, spec.money_dp),
                "reason": "deposit"})  # fmt: skip
    room: dict[str, float] = {}
    width = max(5, len(str(spec.accounts - 1)))
    for i in range(spec.accounts):
        name = f"acct-{i:0{width}d}"
        wallet = round(min(250_000.0, 500 * rng.paretovariate(1.3)), 2) * spec.money_scale
        leverage = min(spec.max_leverage, 2.0 * rng.paretovariate(1.1))
        room[name] = wallet * leverage  # the account's appetite, total notional
        if i % 1000 == 999:
            tick(1000)
        venue.emit({"type": "balance", "event_id": f"dep-{i}", "ts": t, "account": name,
                    "amount": fmt(wallet, spec.money_dp), "reason": "deposit"})  # fmt: skip
        if rng.random() < spec.isolated_share:
            # at least the account's own leverage: its isolated margin fits in its wallet
            venue.emit({"type": "position_config", "ts": t, "account": name,
                        "symbol": rng.choice(spec.symbols).symbol, "margin_mode": "isolated",
                        "leverage": min(100, math.ceil(leverage))})  # fmt: skip
    tick(spec.accounts % 1000)
    return room


def _opening_trades(
    spec: ScenarioSpec,
    rng: random.Random,
    venue: Venue,
    writer: CanonicalWriter,
    room: dict[str, float],
    tick: Callable[[int], None],
) -> tuple[int, dict[str, Any]]:
    """Pairs of accounts open positions over the opening; (last time, the first fill)."""
    names = list(room)
    first_fill: dict[str, Any] = {}
    weights = [s.weight for s in spec.symbols]
    t = spec.start_ms
    for sym in spec.symbols:
        venue.emit({"type": "mark", "ts": t, "symbol": sym.symbol,
                    "mark_price": fmt(sym.start_price, sym.price_dp)})  # fmt: skip
    n = 0
    fee_dp = min(8, spec.money_dp + 2)  # cents of a cent in USDT
    trades = round(spec.accounts * spec.trades_per_account)
    for k in range(trades):
        t = spec.start_ms + 1 + k * spec.opening_ms // trades  # spread over the opening
        if k % 10_000 == 0:
            writer.flush_before(t)  # a million accounts' trades need not sit in memory
        if k % 1000 == 999:
            tick(1000)
        buyer, seller = rng.sample(names, 2)
        sym = rng.choices(spec.symbols, weights=weights)[0]
        price = sym.start_price * (1 + rng.uniform(-0.001, 0.001))
        notional = min(room[buyer], room[seller]) * rng.uniform(0.3, 0.9)
        qty = fmt(notional / price, sym.qty_dp)
        if Decimal(qty) <= 0:
            continue
        room[buyer] -= notional
        room[seller] -= notional
        for account, side, liquidity, fee_rate in (
            (buyer, "buy", "taker", 0.0005),
            (seller, "sell", "maker", 0.0002),
        ):
            n += 1
            fill = {"type": "fill", "fill_id": f"f-{n}", "ts": t, "account": account,
                    "symbol": sym.symbol, "side": side, "qty": qty,
                    "price": fmt(price, sym.price_dp), "fee": fmt(notional * fee_rate, fee_dp),
                    "liquidity": liquidity, "kind": "trade"}  # fmt: skip
            first_fill = first_fill or fill
            venue.emit(fill)
    tick(trades % 1000)
    opened = spec.start_ms + spec.opening_ms
    for sym in spec.symbols:
        _book(venue, sym, sym.start_price, 0.0, opened, rng, spec.money_scale)
    return opened, first_fill


def _bad_lines(ts: int, names: list[str], first_fill: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """What the input path must catch: the venue re-sending its first fill (same id, same
    account: ignored), a NaN mark, an unknown symbol, a negative quantity (dead letters)."""
    yield {**first_fill, "ts": ts}
    yield {"type": "mark", "ts": ts, "symbol": "BTCUSDT", "mark_price": "NaN"}
    yield {"type": "mark", "ts": ts, "symbol": "DOGEUSDT", "mark_price": "0.2"}
    yield {"type": "fill", "fill_id": "bad-qty", "ts": ts, "account": names[1],
           "symbol": "ETHUSDT", "side": "sell", "qty": "-3", "price": "3000"}  # fmt: skip


def _steps(spec: ScenarioSpec, t0_ms: int) -> Iterator[int]:
    """Mark times: every calm interval, every crash interval inside the crash window."""
    ts, end = t0_ms, spec.start_ms + int(spec.minutes * 60_000)
    while ts <= end:
        yield ts
        t_min = (ts - spec.start_ms) / 60_000
        ts += spec.crash_mark_ms if in_crash(spec, t_min) else spec.calm_mark_ms


def _funding(spec: ScenarioSpec, venue: Venue, ts: int, marks: dict[str, float]) -> None:
    """Longs pay shorts ``rate * notional`` at each funding time (rounded to the cent,
    against the payer)."""
    rate = Decimal(repr(spec.funding_rate))
    cent = Decimal(1).scaleb(-spec.money_dp)
    for acct in sorted(venue.engine.accounts):
        state = venue.engine.accounts[acct]
        total = Decimal(0)
        for pos in state.positions:
            mark = Decimal(repr(marks[pos.symbol]))
            total -= Decimal(pos.qty) / SCALE * mark * rate
        amount = total.quantize(cent, rounding="ROUND_FLOOR")
        if amount != 0:
            venue.emit({"type": "balance", "event_id": f"funding-{ts}-{acct}", "ts": ts,
                        "account": acct, "amount": format(amount, "f"),
                        "reason": "funding"})  # fmt: skip


def _book(
    venue: Venue,
    sym: SymbolSpec,
    mark: float,
    stress: float,
    ts: int,
    rng: random.Random,
    money_scale: float = 1.0,
) -> None:
    floor = 1_000.0 * money_scale
    open_interest = max(venue.open_interest.get(sym.symbol, 0) / SCALE * mark, floor)
    bids, asks = book(sym, mark, stress, open_interest, rng)
    lot = 10.0**-sym.qty_dp
    depth_bids = [[fmt(p, sym.price_dp), fmt(max(q, lot), sym.qty_dp)] for p, q in bids]
    depth_asks = [[fmt(p, sym.price_dp), fmt(max(q, lot), sym.qty_dp)] for p, q in asks]
    venue.emit({"type": "depth", "ts": ts, "symbol": sym.symbol, "bids": depth_bids,
                "asks": depth_asks})  # fmt: skip
    venue.set_book(sym.symbol, raw_levels(depth_bids), raw_levels(depth_asks))


def _market(
    spec: ScenarioSpec,
    rng: random.Random,
    venue: Venue,
    writer: CanonicalWriter,
    t0: int,
    tick: Callable[[int], None],
) -> None:
    market = Market(spec, rng)
    by_symbol: dict[str, SymbolSpec] = {s.symbol: s for s in spec.symbols}
    last_fund_ms = t0
    for step_no, ts in enumerate(_steps(spec, t0 + spec.calm_mark_ms)):
        writer.flush_before(ts)
        t_min = (ts - spec.start_ms) / 60_000
        marks = market.step(t_min)
        if ts - last_fund_ms >= spec.fund_snapshot_ms:
            last_fund_ms = ts
            venue.emit({"type": "insurance_fund", "ts": ts, "fund": spec.fund,
                        "balance": to_str(venue.fund_balance)})  # fmt: skip
        if ts // spec.funding_interval_ms != (ts - 1) // spec.funding_interval_ms:
            _funding(spec, venue, ts, marks)
        if step_no % spec.depth_every_marks == 0:
            for symbol, mark in marks.items():
                sym = by_symbol[symbol]
                _book(venue, sym, mark, market.stress(sym), ts, rng, spec.money_scale)
        for symbol, mark in marks.items():
            venue.emit({"type": "mark", "ts": ts, "symbol": symbol,
                        "mark_price": fmt(mark, by_symbol[symbol].price_dp),
                        "index_price": fmt(mark * (1 + rng.gauss(0, 0.0002)),
                                           by_symbol[symbol].price_dp)})  # fmt: skip
        venue.act(ts)
        tick(1)


def simulate(
    spec: ScenarioSpec,
    instruments: dict[str, Instrument],
    out_path: Path,
    progress: bool | None = None,
) -> SimulationResult:
    """Write the scenario's events to ``out_path`` (JSONL, canonical order)."""
    missing = sorted({s.symbol for s in spec.symbols} - set(instruments))
    if missing:
        raise ValueError(f"instruments lack {missing}")
    rng = random.Random(spec.seed)
    with out_path.open("wb") as out:
        writer = CanonicalWriter(out)
        fund_start = int(
            Decimal(repr(spec.fund_per_account * spec.money_scale)) * spec.accounts * SCALE
        )
        venue = Venue({s.symbol: instruments[s.symbol] for s in spec.symbols}, spec.fund,
                      fund_start, writer, delay_ms=spec.liquidation_delay_ms)  # fmt: skip
        bar = _progress(spec, progress)
        tick = bar.update if bar is not None else _no_tick
        try:
            room = _population(spec, rng, venue, tick)
            t, first_fill = _opening_trades(spec, rng, venue, writer, room, tick)
            if spec.bad_lines:
                for bad in _bad_lines(t, list(room), first_fill):
                    writer(bad)  # written, not applied: the venue never sees bad input
            _market(spec, rng, venue, writer, t, tick)
        finally:
            if bar is not None:
                bar.close()
        writer.flush_before(None)
    return SimulationResult(writer.written, venue.stats, fund_start, venue.fund_balance)


def _no_tick(_: int) -> None:
    pass


def _progress(spec: ScenarioSpec, enabled: bool | None) -> Any:
    """One bar over accounts, opening trades and market steps (a 1M-account opening
    alone takes minutes)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        return None
    from tqdm import tqdm

    steps = sum(1 for _ in _steps(spec, spec.start_ms + spec.opening_ms + spec.calm_mark_ms))
    trades = round(spec.accounts * spec.trades_per_account)
    return tqdm(total=spec.accounts + trades + steps, unit="item", unit_scale=True,
                desc="simulate", file=sys.stderr)  # fmt: skip
