"""``simulate --preset hyperliquid-2025-10-10``: a cascade at the scale of Hyperliquid's
10 October 2025, 21:15-21:27 UTC, with its own instruments file.

Sized on the published figures (the issue's yardstick; public forensic replay
github.com/ConejoCapital/HyperMultiAssetedADL): 437,723 accounts, 162 assets sharing one
fund, 3,239,706 clearinghouse events in 12 minutes, 63,637 liquidations, 34,983 ADL
fills, and one block (21:16:04.83) of 11,279 liquidations followed by 11,279 ADL fills.
What it is not: the venue's real books, prices or accounts. Those are drawn (seeded):

- assets: BTC, ETH, SOL and 159 alts in three liquidity classes (``AssetClass``: price
  range, maximum leverage, crash depth, book depth). Hyperliquid's maintenance margin is
  half the initial margin at the asset's maximum leverage (docs, Trading > Liquidations):
  one bracket, ``mmr = 1 / (2 * max_leverage)``; the ``hyperliquid`` venue profile;
- accounts: Pareto wallets and leverage (as ``simulate``), 1-3 cross positions each,
  opened in pairs (zero-sum) over the minute before the window;
- the window: marks every 100 ms in the 6-minute crash (every second after it), a book
  snapshot every 10 steps, the fund every 10 s; order flow (accounts trimming positions
  against the book's market maker) and deposits at every step;
- the block: one step at 21:16:04.33 in which the mid-cap class gaps down; the venue's
  500 ms liquidation delay closes every account it crossed at 21:16:04.83, at one
  timestamp, most of them past bankruptcy with the fund already spent: liquidation fills
  followed by the ADL fills that close them.

The venue here is columns (numpy), not an ``Engine`` as in ``venue``: the engine-backed
venue replays every event through the monitor's own engine, so at this scale generating
the scenario would cost what replaying it costs. Liquidation rule (every step, vectorised
over all positions, cross margin): equity = wallet + sum of unrealized PnL at the marks,
maintenance = sum of notional * mmr; an account at or under maintenance is flagged and
closed ``liquidation_delay_ms`` later if still under. With equity left, its positions
close at the marks against the book's maker and it keeps the rest. Past bankruptcy, its
most losing position is taken over at its bankruptcy price (the account ends at zero
equity), the others at the mark, and the fund pays the deficit; when the fund cannot, the
positions are auto-deleveraged instead: the opposite side's accounts ranked by
Hyperliquid's index (``(mark / entry) * notional / account value``, the ratio inverted
for shorts) close against them at the same prices, most profitable first.

Same seed, same bytes. Floats drive the venue's decisions (a simulation); every event it
writes is a decimal string of whole ticks and lots, so the monitor reads it exactly.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import orjson

from streams.pipeline.sequencer import canonical_key

MAKER = "mm-book"  # the book's market maker: the other side of trims and liquidations
TAKER_FEE = 0.00045  # Hyperliquid's base tier, share of notional
MAKER_FEE = 0.00015
FUND = "USDC"
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class AssetClass:
    """Assets alike in liquidity: drawn prices, leverage, crash and book."""

    name: str
    count: int
    price_low: float  # start prices log-uniform in [low, high]
    price_high: float
    max_leverage: int
    crash_depth: float  # fraction lost at the bottom of the crash
    volatility: float  # noise per sqrt(minute), calm
    book_share: float  # quote per book level in calm, as a share of open interest
    weight: float  # share of all positions, the whole class


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    start_price: float
    max_leverage: int
    crash_depth: float
    volatility: float
    book_share: float
    weight: float
    price_dp: int  # decimals of a price: about 5 significant digits
    qty_dp: int  # decimals of a size: a lot is about $0.01-0.1 at the start price
    gaps_in_block: bool = False


MAJORS = (
    # the day's prices before the fall, approximately; Hyperliquid's maximum leverage
    AssetClass("BTC", 1, 121_000.0, 121_000.0, 40, 0.14, 0.0008, 0.002, 0.24),
    AssetClass("ETH", 1, 4_350.0, 4_350.0, 25, 0.20, 0.0010, 0.0015, 0.14),
    AssetClass("SOL", 1, 222.0, 222.0, 20, 0.26, 0.0013, 0.001, 0.07),
)
ALT_CLASSES = (
    AssetClass("large", 20, 1.0, 50.0, 10, 0.25, 0.0016, 0.0007, 0.25),
    AssetClass("mid", 50, 0.05, 20.0, 5, 0.30, 0.0020, 0.0005, 0.24),
    AssetClass("small", 89, 0.001, 5.0, 3, 0.35, 0.0025, 0.0003, 0.12),
)


@dataclass(frozen=True, slots=True)
class PresetSpec:
    name: str
    seed: int = 10_10
    accounts: int = 437_723
    start_ms: int = 1_760_130_840_000  # 2025-10-10 21:14:00 UTC: the opening minute
    opening_ms: int = 60_000  # positions opened over the minute before the window
    window_minutes: float = 12.0  # 21:15-21:27
    crash_minutes: float = 6.0  # from the window's start
    rebound: float = 0.4
    crash_mark_ms: int = 100
    calm_mark_ms: int = 1_000
    grid_offset_ms: int = 29  # crash steps at .x29: the block's fills land at .830
    depth_every_steps: int = 10
    fund_snapshot_ms: int = 10_000
    fund_start: float = 1_000_000.0  # thin: spent early in the crash, as on the day
    liquidation_delay_ms: int = 500
    positions_per_account: tuple[float, float, float] = (0.35, 0.35, 0.30)  # 1, 2, 3
    flow_per_step: int = 130  # accounts trimming a position against the book, per step
    deposits_per_step: int = 10
    block_at_ms: int = 64_329  # after the window's start: the gap step (21:16:04.329)
    block_class: str = "mid"
    block_gap: float = 0.42  # the class's marks fall this much in the block's step
    block_recovery_min: float = 1.5  # then recover toward the path with this time constant
    leverage_scale: float = 2.0  # accounts' leverage: this * Pareto(1.2), capped
    jump_chance: float = 0.004  # per class and crash step: a wick down
    jump_size: tuple[float, float] = (0.04, 0.15)  # its depth, uniform
    jump_recovery_min: float = 0.5
    classes: tuple[AssetClass, ...] = MAJORS + ALT_CLASSES

    @property
    def window_start_ms(self) -> int:
        return self.start_ms + self.opening_ms


HYPERLIQUID_2025_10_10 = PresetSpec("hyperliquid-2025-10-10")
PRESETS = {HYPERLIQUID_2025_10_10.name: HYPERLIQUID_2025_10_10}


@dataclass(slots=True)
class PresetStats:
    events: int = 0
    accounts: int = 0
    symbols: int = 0
    positions: int = 0  # opened
    liquidations: int = 0  # liquidation fills (positions taken over)
    adl_fills: int = 0  # counterparty fills of auto-deleveraged positions
    deleveraged: int = 0  # positions closed by ADL
    fund_start: float = 0.0
    fund_end: float = 0.0
    uncovered: float = 0.0  # what neither the fund nor ADL covered (quote)
    busiest_ts: int = 0  # the timestamp with the most liquidation and ADL fills
    busiest_fills: int = 0
    fills_at: dict[int, int] = field(default_factory=dict)


def assets(spec: PresetSpec, rng: np.random.Generator) -> list[Asset]:
    """The preset's assets: the majors by name, alts ``<CLASS><n>`` (e.g. ``MID007``)."""
    out: list[Asset] = []
    for cls in spec.classes:
        prices = np.exp(rng.uniform(math.log(cls.price_low), math.log(cls.price_high), cls.count))
        for k, price in enumerate(prices):
            name = cls.name if cls.count == 1 else f"{cls.name.upper()}{k + 1:03d}"
            digits = math.floor(math.log10(price))
            out.append(
                Asset(
                    symbol=name,
                    start_price=float(f"{price:.5g}"),
                    max_leverage=cls.max_leverage,
                    crash_depth=cls.crash_depth,
                    volatility=cls.volatility,
                    book_share=cls.book_share,
                    weight=cls.weight / cls.count,
                    price_dp=min(8, max(0, 4 - digits)),
                    qty_dp=min(8, max(0, digits + 2)),
                    gaps_in_block=cls.name == spec.block_class,
                )
            )
    return out


def instruments_toml(spec: PresetSpec, symbols: list[Asset]) -> str:
    """The preset's instruments: one fund, the ``hyperliquid`` profile, one bracket each."""
    lines = [
        f"# Instruments of the {spec.name} preset (adl-monitor simulate --preset).",
        "# Hyperliquid: maintenance margin is half the initial margin at the asset's maximum",
        "# leverage (docs, Trading > Liquidations): one bracket, mmr = 1 / (2 * max_leverage).",
        "",
    ]
    for a in symbols:
        mmr = f"{1 / (2 * a.max_leverage):.8f}".rstrip("0")
        lines += [
            f"[symbols.{a.symbol}]",
            f'fund = "{FUND}"',
            'profile = "hyperliquid"',
            f'tiers = [{{ max_notional = "10000000000", mmr = "{mmr}", '
            f'maintenance_amount = "0", max_leverage = {a.max_leverage} }}]',
            "",
        ]
    return "\n".join(lines)


def decimal(units: int, dp: int) -> str:
    """``units`` of 10^-dp as a decimal string (exact: no float)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**dp)
    return f"{sign}{whole}.{frac:0{dp}d}" if dp else f"{sign}{whole}"


@dataclass(slots=True)
class _Book:
    """The venue's columns: positions (account, symbol, signed lots, entry) and wallets."""

    acct: Ints
    sym: Ints
    lots: Ints
    entry: Floats
    wallet: Floats
    flagged_ms: Ints  # per account: when it was found under maintenance (-1: not)

    @classmethod
    def empty(cls, accounts: int) -> _Book:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, np.zeros(0), np.zeros(accounts), np.full(accounts, -1))


class _Writer:
    """Events of one time step, written in canonical order (stable: ties keep the order
    they were made in)."""

    def __init__(self, out: IO[bytes], stats: PresetStats) -> None:
        self.out = out
        self.stats = stats
        self.pending: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.pending.append(event)

    def flush(self) -> None:
        for event in sorted(self.pending, key=canonical_key):
            self.out.write(orjson.dumps(event))
            self.out.write(b"\n")
        self.stats.events += len(self.pending)
        self.pending.clear()


class _Venue:
    def __init__(self, spec: PresetSpec, symbols: list[Asset], rng: np.random.Generator,
                 write: _Writer, stats: PresetStats) -> None:  # fmt: skip
        self.spec = spec
        self.symbols = symbols
        self.rng = rng
        self.write = write
        self.stats = stats
        self.names = [a.symbol for a in symbols]
        self.lot = np.array([10.0**-a.qty_dp for a in symbols])
        self.mmr = np.array([1 / (2 * a.max_leverage) for a in symbols])
        self.price_dp = [a.price_dp for a in symbols]
        self.qty_dp = [a.qty_dp for a in symbols]
        self.fund = spec.fund_start
        self.fills = 0
        self.accounts = [f"0x{k:06x}" for k in range(spec.accounts)]
        self.book = _Book.empty(spec.accounts)  # until ``open``

    # ------------------------------------------------------------------ writing
    def price_str(self, s: int, price: float) -> str:
        dp = self.price_dp[s]
        return decimal(max(1, round(price * 10**dp)), dp)

    def fill(self, account: str, s: int, lots: int, price: str, ts: int, kind: str,
             fee: float = 0.0, liquidity: str = "taker") -> None:  # fmt: skip
        """``lots`` signed: + buys."""
        self.fills += 1
        self.write(
            {"type": "fill", "fill_id": f"h-{self.fills}", "ts": ts, "account": account,
             "symbol": self.names[s], "side": "buy" if lots > 0 else "sell",
             "qty": decimal(abs(lots), self.qty_dp[s]), "price": price,
             "fee": decimal(round(fee * 10**6), 6), "liquidity": liquidity, "kind": kind}
        )  # fmt: skip
        if kind != "trade" and account != MAKER:
            self.stats.fills_at[ts] = self.stats.fills_at.get(ts, 0) + 1

    def balance(self, account: str, amount: float, ts: int, reason: str, event_id: str) -> None:
        self.write({"type": "balance", "event_id": event_id, "ts": ts, "account": account,
                    "amount": decimal(round(amount * 100), 2), "reason": reason})  # fmt: skip

    def fund_snapshot(self, ts: int) -> None:
        self.write({"type": "insurance_fund", "ts": ts, "fund": FUND,
                    "balance": decimal(round(max(self.fund, 0.0) * 100), 2)})  # fmt: skip

    # ------------------------------------------------------------------ opening
    def open(self, ts0: int) -> None:
        """Deposits, then pairs of accounts opening positions over the opening minute."""
        spec, rng, n = self.spec, self.rng, self.spec.accounts
        wallet = np.minimum(250_000.0, 500.0 * (rng.pareto(1.3, n) + 1)).round(2)
        leverage = np.minimum(50.0, spec.leverage_scale * (rng.pareto(1.2, n) + 1))
        self.fund_snapshot(ts0)
        for s, a in enumerate(self.symbols):
            self.write({"type": "mark", "ts": ts0, "symbol": a.symbol,
                        "mark_price": self.price_str(s, a.start_price)})  # fmt: skip
        for k in range(5):  # the maker's wallet: deep enough for every close of the day
            self.balance(MAKER, 9e9, ts0, "deposit", f"dep-maker-{k}")
        for k in range(n):
            self.balance(self.accounts[k], float(wallet[k]), ts0, "deposit", f"dep-{k}")
        self.write.flush()

        per_account = rng.choice(3, n, p=spec.positions_per_account) + 1
        trades = int(per_account.sum()) // 2
        weights = np.array([a.weight for a in self.symbols])
        sym = rng.choice(len(self.symbols), trades, p=weights / weights.sum())
        # each account takes part in about per_account trades: draw both sides by it
        owners = np.repeat(np.arange(n), per_account)
        rng.shuffle(owners)
        buyer, seller = owners[:trades], owners[trades : 2 * trades]
        same = buyer == seller
        seller[same] = (seller[same] + 1 + rng.integers(0, n - 1, int(same.sum()))) % n
        start = np.array([a.start_price for a in self.symbols])
        max_lev = np.array([float(a.max_leverage) for a in self.symbols])
        price = start[sym] * (1 + rng.uniform(-0.001, 0.001, trades))
        # an account's appetite: wallet * leverage (at most 0.9x the asset's maximum),
        # spread over its trades; the trade takes the smaller of the two appetites
        room_b = wallet[buyer] * np.minimum(leverage[buyer], 0.9 * max_lev[sym])
        room_s = wallet[seller] * np.minimum(leverage[seller], 0.9 * max_lev[sym])
        share = np.minimum(room_b / per_account[buyer], room_s / per_account[seller])
        notional = share * rng.uniform(0.6, 1.0, trades)
        lots = np.floor(notional / price / self.lot[sym]).astype(np.int64)
        kept = lots > 0
        buyer, seller, sym, price, lots = (
            buyer[kept],
            seller[kept],
            sym[kept],
            price[kept],
            lots[kept],
        )
        ticks = [10**dp for dp in self.price_dp]
        price_ticks = np.array(
            [max(1, round(p * ticks[s])) for p, s in zip(price.tolist(), sym.tolist(), strict=True)]
        )
        price = price_ticks / np.array(ticks, dtype=np.float64)[sym]
        fee_b = lots * self.lot[sym] * price * TAKER_FEE
        fee_s = lots * self.lot[sym] * price * MAKER_FEE
        count = len(lots)
        last_ts = None
        for k in range(count):
            ts = ts0 + 1 + k * spec.opening_ms // count
            if last_ts is not None and ts != last_ts:
                self.write.flush()
            last_ts = ts
            s = int(sym[k])
            p = decimal(int(price_ticks[k]), self.price_dp[s])
            q = int(lots[k])
            self.fill(self.accounts[buyer[k]], s, q, p, ts, "trade", float(fee_b[k]))
            self.fill(self.accounts[seller[k]], s, -q, p, ts, "trade", float(fee_s[k]), "maker")
        self.write.flush()
        np.subtract.at(wallet, buyer, fee_b)
        np.subtract.at(wallet, seller, fee_s)
        self.book = _merge(n, len(self.symbols), buyer, seller, sym, lots, price, wallet)
        self.stats.positions = len(self.book.lots)

    # ------------------------------------------------------------------ a step
    def step(self, ts: int, marks: Floats) -> None:
        book = self.book
        rng, spec = self.rng, self.spec
        self._flow(ts, marks)
        for k in rng.integers(0, spec.accounts, spec.deposits_per_step).tolist():
            amount = float(round(min(50_000.0, 200.0 * (rng.pareto(1.5) + 1)), 2))
            book.wallet[k] += amount
            self.balance(self.accounts[k], amount, ts + 1, "deposit", f"dep-{ts}-{k}")
        equity, maintenance, held = self._margins(marks)
        under = held & (equity <= maintenance)
        book.flagged_ms[~under] = -1
        book.flagged_ms[under & (book.flagged_ms < 0)] = ts
        due = np.flatnonzero(under & (ts - book.flagged_ms >= spec.liquidation_delay_ms))
        fund_before = self.fund
        if len(due):
            self._close(due, ts, marks, equity)
        if self.fund != fund_before:
            self.fund_snapshot(ts + 3)

    def _margins(self, marks: Floats) -> tuple[Floats, Floats, npt.NDArray[np.bool_]]:
        book = self.book
        n = self.spec.accounts
        mark = marks[book.sym]
        qty = book.lots * self.lot[book.sym]
        upnl = qty * (mark - book.entry)
        equity = book.wallet + np.bincount(book.acct, upnl, minlength=n)
        requirement = np.abs(qty) * mark * self.mmr[book.sym]
        maintenance = np.bincount(book.acct, requirement, minlength=n).astype(np.float64)
        held = np.bincount(book.acct, book.lots != 0, minlength=n) > 0
        return equity, maintenance, held

    def _flow(self, ts: int, marks: Floats) -> None:
        """Accounts trimming a position against the book's maker, at the mark +- 2 bp."""
        book = self.book
        picked = self.rng.integers(0, len(book.lots), self.spec.flow_per_step)
        cut = self.rng.uniform(0.05, 0.5, len(picked))
        for slot, share in zip(picked.tolist(), cut.tolist(), strict=True):
            lots = int(book.lots[slot])
            if lots == 0:
                continue
            s = int(book.sym[slot])
            trim = max(1, int(abs(lots) * share)) * (1 if lots > 0 else -1)
            price = float(marks[s]) * (1 - 0.0002 if lots > 0 else 1 + 0.0002)
            text = self.price_str(s, price)
            exact = float(text)
            acct = int(book.acct[slot])
            fee = abs(trim) * self.lot[s] * exact * TAKER_FEE
            self._realize(acct, slot, trim, exact, fee)
            self.fill(self.accounts[acct], s, -trim, text, ts + 1, "trade", fee)
            self.fill(MAKER, s, trim, text, ts + 1, "trade", 0.0, "maker")

    def _close(self, due: Ints, ts: int, marks: Floats, equity: Floats) -> None:
        """Take every due account over: through the book while the fund pays, else ADL."""
        book = self.book
        # positions are held sorted by account (``_merge``): each account's are one run
        starts = np.searchsorted(book.acct, due)
        ends = np.searchsorted(book.acct, due, side="right")
        queues = _Queues(self, marks, equity, set(due.tolist()))
        for acct, lo, hi in zip(due.tolist(), starts.tolist(), ends.tolist(), strict=True):
            slots = [x for x in range(lo, hi) if book.lots[x] != 0]
            if not slots:
                continue
            e = float(equity[acct])
            if e >= 0:  # closed at the marks: the account keeps what is left
                for x in slots:
                    s = int(book.sym[x])
                    self._through_book(acct, x, self.price_str(s, float(marks[s])), ts, marks)
            else:
                self._bankrupt(acct, slots, e, ts, marks, queues)
            book.flagged_ms[acct] = -1

    def _bankrupt(self, acct: int, slots: list[int], equity: float, ts: int, marks: Floats,
                   queues: _Queues) -> None:  # fmt: skip
        """Past bankruptcy: the fund pays the deficit if it can, else ADL."""
        book = self.book
        upnl = [book.lots[x] * self.lot[book.sym[x]] * (marks[book.sym[x]] - book.entry[x])
                for x in slots]  # fmt: skip
        anchor = slots[int(np.argmin(upnl))]
        prices = {x: self._takeover_price(x, anchor, equity, marks) for x in slots}
        if self.fund + equity >= 0:
            for x in slots:
                self._through_book(acct, x, prices[x], ts, marks)
            self.fund += equity
        else:
            for x in slots:
                self._deleverage(acct, x, prices[x], ts, queues, marks)

    def _takeover_price(self, slot: int, anchor: int, equity: float, marks: Floats) -> str:
        """The anchor (most losing position) at its bankruptcy price, the rest at the mark;
        rounded in the account's favour (left at zero equity or a hair above: no deficit
        made of rounding)."""
        book = self.book
        s = int(book.sym[slot])
        mark = float(marks[s])
        if slot != anchor:
            return self.price_str(s, mark)
        qty = float(book.lots[slot] * self.lot[s])
        bankruptcy = mark - equity / qty
        if bankruptcy <= 0:
            return self.price_str(s, mark)
        ticks = bankruptcy * 10 ** self.price_dp[s]
        rounded = math.ceil(ticks) if qty > 0 else math.floor(ticks)
        return decimal(max(1, rounded), self.price_dp[s])

    def _realize(self, acct: int, slot: int, lots: int, price: float, fee: float = 0.0) -> None:
        """Close ``lots`` (signed, as held) of a position at ``price``, paying ``fee``."""
        book = self.book
        s = int(book.sym[slot])
        book.wallet[acct] += lots * self.lot[s] * (price - book.entry[slot]) - fee
        book.lots[slot] -= lots

    def _through_book(self, acct: int, slot: int, price: str, ts: int, marks: Floats) -> None:
        book = self.book
        s, lots = int(book.sym[slot]), int(book.lots[slot])
        self.fill(self.accounts[acct], s, -lots, price, ts + 1, "liquidation")
        self.fill(MAKER, s, lots, self.price_str(s, float(marks[s])), ts + 1, "trade", 0.0,
                  "maker")  # fmt: skip
        self._realize(acct, slot, lots, float(price))
        self.stats.liquidations += 1

    def _deleverage(self, acct: int, slot: int, price: str, ts: int, queues: _Queues,
                    marks: Floats) -> None:  # fmt: skip
        """The position closes against the opposite side's queue at its takeover price:
        one liquidation fill, then the counterparties' ADL fills."""
        book = self.book
        s, lots = int(book.sym[slot]), int(book.lots[slot])
        exact = float(price)
        self.fill(self.accounts[acct], s, -lots, price, ts + 1, "liquidation")
        self._realize(acct, slot, lots, exact)
        self.stats.liquidations += 1
        self.stats.deleveraged += 1
        left = abs(lots)
        for other, take in queues.take(s, lots < 0, left):
            signed = take if lots > 0 else -take  # the counterparty holds the other side
            self.fill(self.accounts[int(book.acct[other])], s, signed, price, ts + 1, "adl")
            self._realize(int(book.acct[other]), other, -signed, exact)
            self.stats.adl_fills += 1
            left -= take
        if left:  # nobody left to take it: the maker, and the loss stays uncovered
            rest = left if lots > 0 else -left
            self.fill(MAKER, s, rest, price, ts + 1, "trade", 0.0, "maker")
            self.stats.uncovered += abs(rest) * float(self.lot[s]) * abs(exact - float(marks[s]))


class _Queues:
    """The ADL queues of one step, built when first asked: the opposite side's positions
    of a symbol ranked by Hyperliquid's index, most profitable and leveraged first."""

    def __init__(self, venue: _Venue, marks: Floats, equity: Floats, closing: set[int]) -> None:
        self.venue = venue
        self.marks = marks
        self.equity = equity
        self.closing = closing
        self.ranked: dict[tuple[int, bool], list[int]] = {}
        self.head: dict[tuple[int, bool], int] = {}

    def take(self, s: int, long_side: bool, qty: int) -> Iterator[tuple[int, int]]:
        """(slot, lots) of counterparties covering ``qty`` lots, in queue order."""
        key = (s, long_side)
        if key not in self.ranked:
            self.ranked[key] = self._rank(s, long_side)
            self.head[key] = 0
        book = self.venue.book
        ranked = self.ranked[key]
        while qty > 0 and self.head[key] < len(ranked):
            slot = ranked[self.head[key]]
            held = int(book.lots[slot])
            if held == 0 or (held > 0) != long_side:
                self.head[key] += 1
                continue
            take = min(qty, abs(held))
            yield slot, take
            qty -= take
            if take == abs(held):
                self.head[key] += 1

    def _rank(self, s: int, long_side: bool) -> list[int]:
        book = self.venue.book
        held = book.lots > 0 if long_side else book.lots < 0
        slots = np.flatnonzero((book.sym == s) & held)
        accts = book.acct[slots]
        value = self.equity[accts]
        alive = value > 0
        if self.closing:
            alive &= ~np.isin(accts, np.fromiter(self.closing, dtype=np.int64))
        slots, accts, value = slots[alive], accts[alive], value[alive]
        mark = float(self.marks[s])
        ratio = mark / book.entry[slots]
        if not long_side:
            ratio = 1 / ratio
        notional = np.abs(book.lots[slots]) * self.venue.lot[s] * mark
        score = ratio * notional / value
        ranked: list[int] = slots[np.lexsort((slots, -score))].tolist()  # ties: older slot
        return ranked


def _merge(n: int, symbols: int, buyer: Ints, seller: Ints, sym: Ints, lots: Ints,
           price: Floats, wallet: Floats) -> _Book:  # fmt: skip
    """Net each account's trades per symbol into one position (entry: the size-weighted
    price of its trades; the monitor computes its own exactly)."""
    acct = np.concatenate([buyer, seller])
    syms = np.concatenate([sym, sym])
    signed = np.concatenate([lots, -lots])
    prices = np.concatenate([price, price])
    key = acct * symbols + syms
    unique, inverse = np.unique(key, return_inverse=True)
    net = np.zeros(len(unique), dtype=np.int64)
    np.add.at(net, inverse, signed)
    weight = np.bincount(inverse, np.abs(signed).astype(np.float64))
    entry = np.bincount(inverse, np.abs(signed) * prices) / weight
    kept = net != 0
    return _Book(
        acct=(unique // symbols)[kept],
        sym=(unique % symbols)[kept],
        lots=net[kept],
        entry=entry[kept],
        wallet=wallet.astype(np.float64),
        flagged_ms=np.full(n, -1, dtype=np.int64),
    )


class _Prices:
    """Every asset's mark, advanced one step: a cosine fall over the crash, a partial
    rebound after it, mean-reverting noise on one market factor, and the block's gap."""

    def __init__(self, spec: PresetSpec, symbols: list[Asset], rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.start = np.array([a.start_price for a in symbols])
        self.depth = np.array([a.crash_depth for a in symbols])
        self.vol = np.array([a.volatility for a in symbols])
        self.beta = np.where(self.start > 1_000, 1.0, 0.8)
        self.gaps = np.array([a.gaps_in_block for a in symbols])
        self.noise = np.zeros(len(symbols))
        self.wick = np.zeros(len(symbols))  # log depth of the current wick
        self.classes = [c.name for c in spec.classes]
        self.class_of = np.repeat(np.arange(len(spec.classes)), [c.count for c in spec.classes])
        self.t_min = 0.0

    def fall(self, t_min: float) -> Floats:
        crash = self.spec.crash_minutes
        x = t_min / crash
        if x <= 0:
            return np.zeros_like(self.depth)
        fall = self.depth * (0.5 - 0.5 * math.cos(math.pi * min(x, 1.0)))
        if x > 1:
            tail = max(self.spec.window_minutes - crash, 1e-9)
            fall = fall * (1 - self.spec.rebound * min(1.0, (t_min - crash) / tail))
        return fall

    def step(self, t_min: float) -> Floats:
        """Marks at ``t_min`` minutes after the window's start (negative: the opening)."""
        dt = max(t_min - self.t_min, 1e-9)
        self.t_min = t_min
        in_crash = 0 <= t_min < self.spec.crash_minutes
        factor = self.rng.standard_normal()
        own = self.rng.standard_normal(len(self.start))
        shock = self.beta * factor + np.sqrt(1 - self.beta**2) * own
        self.noise = self.noise * (1 - dt / 2.0) + self.vol * (3.0 if in_crash else 1.0) * (
            math.sqrt(dt) * shock
        )
        if in_crash:  # wicks: a class falls at once, then recovers toward its path
            hit = self.rng.random(len(self.classes)) < self.spec.jump_chance
            size = self.rng.uniform(*self.spec.jump_size, len(self.classes))
            self.wick[hit[self.class_of]] += np.log1p(-size[self.class_of])[hit[self.class_of]]
        self.wick *= math.exp(-dt / self.spec.jump_recovery_min)
        marks = self.start * (1 - self.fall(t_min)) * np.exp(self.noise + self.wick)
        since_block = t_min - self.spec.block_at_ms / 60_000
        if since_block >= 0:
            gap = self.spec.block_gap * math.exp(-since_block / self.spec.block_recovery_min)
            marks = np.where(self.gaps, marks * (1 - gap), marks)
        return marks


def _steps(spec: PresetSpec) -> Iterator[int]:
    """Mark times of the window: every ``crash_mark_ms`` in the crash (on a grid offset by
    ``grid_offset_ms``), every ``calm_mark_ms`` after it."""
    ts = spec.window_start_ms + spec.grid_offset_ms
    crash_end = spec.window_start_ms + int(spec.crash_minutes * 60_000)
    end = spec.window_start_ms + int(spec.window_minutes * 60_000)
    while ts < crash_end:
        yield ts
        ts += spec.crash_mark_ms
    while ts <= end:
        yield ts
        ts += spec.calm_mark_ms


def generate(spec: PresetSpec, out_path: Path, instruments_path: Path,
             progress: bool | None = None) -> PresetStats:  # fmt: skip
    """Write the preset's events (JSONL, canonical order) and its instruments file."""
    rng = np.random.default_rng(spec.seed)
    symbols = assets(spec, rng)
    instruments_path.write_text(instruments_toml(spec, symbols))
    stats = PresetStats(accounts=spec.accounts, symbols=len(symbols), fund_start=spec.fund_start)
    steps = list(_steps(spec))
    bar = _progress(len(steps), progress)
    with out_path.open("wb") as out:
        write = _Writer(out, stats)
        venue = _Venue(spec, symbols, rng, write, stats)
        venue.open(spec.start_ms)
        prices = _Prices(spec, symbols, rng)
        names = venue.names
        last_fund_ms = spec.start_ms
        for k, ts in enumerate(steps):
            marks = prices.step((ts - spec.window_start_ms) / 60_000)
            texts = [venue.price_str(s, float(m)) for s, m in enumerate(marks)]
            marks = np.array([float(t) for t in texts])  # the venue sees what it wrote
            if ts - last_fund_ms >= spec.fund_snapshot_ms:
                last_fund_ms = ts
                venue.fund_snapshot(ts)
            if k % spec.depth_every_steps == 0:
                _books(venue, ts, marks, prices)
            index = marks * (1 + rng.normal(0.0, 0.0002, len(marks)))
            for s, text in enumerate(texts):
                write({"type": "mark", "ts": ts, "symbol": names[s], "mark_price": text,
                       "index_price": venue.price_str(s, float(index[s]))})  # fmt: skip
            venue.step(ts, marks)
            write.flush()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    stats.fund_end = venue.fund
    if stats.fills_at:
        stats.busiest_ts, stats.busiest_fills = max(
            stats.fills_at.items(), key=lambda kv: (kv[1], -kv[0])
        )
    return stats


def _books(venue: _Venue, ts: int, marks: Floats, prices: _Prices) -> None:
    """Ten levels a side per asset, 5 bp apart and book_share of its open interest each
    in calm, 40 bp apart and 20x thinner at the bottom of the crash."""
    book = venue.book
    long_lots = np.bincount(book.sym, np.maximum(book.lots, 0), minlength=len(marks))
    open_interest = np.maximum(long_lots * venue.lot * marks, 1_000.0)
    stress = prices.fall(prices.t_min) / prices.depth
    share = np.array([a.book_share for a in venue.symbols])
    spacing = 0.0005 + 0.0035 * stress
    level = open_interest * share * (1 - 0.95 * stress)
    sizes = level[:, None] * (0.5 + venue.rng.random((len(marks), 10))) / marks[:, None]
    for s, name in enumerate(venue.names):
        dp = venue.qty_dp[s]
        lots = np.maximum(1, np.round(sizes[s] * 10**dp)).astype(np.int64).tolist()
        mark = float(marks[s])
        bids = [[venue.price_str(s, mark * (1 - spacing[s] * i)), decimal(q, dp)]
                for i, q in enumerate(lots, 1)]  # fmt: skip
        asks = [[venue.price_str(s, mark * (1 + spacing[s] * i)), decimal(q, dp)]
                for i, q in enumerate(lots, 1)]  # fmt: skip
        venue.write({"type": "depth", "ts": ts, "symbol": name, "bids": bids, "asks": asks})


def _progress(total: int, enabled: bool | None) -> Any:
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="preset", file=sys.stderr)


def scaled(spec: PresetSpec, accounts: int | None = None, seed: int | None = None) -> PresetSpec:
    """The preset with fewer (or more) accounts or another seed; the rest as published."""
    changes: dict[str, Any] = {}
    if accounts is not None:
        changes["accounts"] = accounts
        ratio = accounts / spec.accounts
        changes["flow_per_step"] = max(1, round(spec.flow_per_step * ratio))
        changes["deposits_per_step"] = max(1, round(spec.deposits_per_step * ratio))
        changes["fund_start"] = spec.fund_start * ratio
    if seed is not None:
        changes["seed"] = seed
    return replace(spec, **changes)
