"""Output signals: immutable values the engine returns; adapters turn them into files,
topics, metrics and webhooks. Money is raw fixed point here; ``streams.engine.wire``
renders it as decimal strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class AdlStage(StrEnum):
    IMMINENT = "imminent"
    TRIGGERED = "triggered"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class LiquidationDetected:
    ts_ms: int
    account: str
    symbol: str
    side: str
    qty: int
    mark_price: int
    liquidation_price: int | None
    bankruptcy_price: int | None
    equity: int
    maintenance_margin: int
    isolated: bool
    settlement: str | None = None  # the currency of the money fields; None: USDT


@dataclass(frozen=True, slots=True)
class BankruptcyDetected:
    ts_ms: int
    account: str
    symbol: str
    side: str
    qty: int
    mark_price: int
    bankruptcy_price: int | None
    deficit: int
    isolated: bool
    settlement: str | None = None  # the currency of the money fields; None: USDT


@dataclass(frozen=True, slots=True)
class BankruptPosition:
    account: str
    symbol: str
    side: str
    qty: int  # absolute
    bankruptcy_price: int
    deficit: int
    liquidating: bool = False  # under maintenance, not yet past its bankruptcy price


@dataclass(frozen=True, slots=True)
class DeleverageStep:
    account: str
    symbol: str
    side: str  # side of the deleveraged position
    qty: int  # absolute quantity closed
    price: int
    rank_score: float
    fee: int
    against: str  # account of the bankrupt position it offsets


@dataclass(frozen=True, slots=True)
class SecondOpinion:
    """A triggered plan against the cheapest haircut covering its deficit and two
    pro-rata alternatives (definitions: ``streams.engine.second_opinion``). Money in
    quote raw units; shares are (top 1, top 10 accounts), ``None`` when nothing is taken."""

    deficit: int  # D
    winners_profit: int  # W: positive PnL on the plan's counterparty sides
    queue_haircut: int  # winners' positive PnL on the contracts the plan closes
    equity_moved: int  # what the counterparties' equity loses at the mark
    minimal_haircut: int  # min(D, W)
    overshoot: int  # queue - minimal
    utilisation: float | None  # queue / minimal
    queue_top_shares: tuple[float | None, float | None]
    pro_rata_ratio: float | None  # lambda = min(1, D / W)
    pro_rata_top_shares: tuple[float | None, float | None]
    size_charge: int | None  # by size (Drift v2): quote per base unit, rounded up
    size_top_shares: tuple[float | None, float | None]


@dataclass(frozen=True, slots=True)
class AdlTriggered:
    ts_ms: int
    fund: str
    symbol: str
    stage: AdlStage
    fund_balance: int
    projected_loss: int
    shortfall: int
    coverage_ratio: float | None
    adl_distance_pct: float | None  # smaller of the two sides
    bankrupt: tuple[BankruptPosition, ...]
    plan: tuple[DeleverageStep, ...]
    second_opinion: SecondOpinion | None = None  # a triggered plan's, when it has steps
    # the venue rule that set the stage: "fund" (the fund cannot cover the loss),
    # "drawdown" (a pool-drawdown rule), "negative_value" (Hyperliquid); None: cleared
    rule: str | None = None
    settlement: str | None = None  # the currency of the money fields; None: USDT


@dataclass(frozen=True, slots=True)
class LadderPoint:
    shock_pct: float
    projected_loss: int

    # Written out (here and in the few frozen values made per event or per symbol of a
    # projection): the generated ``__init__`` runs as interpreted Python even in the
    # compiled engine (~480 ns; ~45 ns compiled). The fields and their order stay the
    # contract: tests/unit/engine/test_value_inits.py checks each such ``__init__``.
    def __init__(self, shock_pct: float, projected_loss: int) -> None:
        object.__setattr__(self, "shock_pct", shock_pct)
        object.__setattr__(self, "projected_loss", projected_loss)


@dataclass(frozen=True, slots=True)
class SymbolProjection:
    symbol: str
    mark_price: int | None
    adl_distance_long_pct: float | None
    adl_distance_short_pct: float | None
    bankrupt_deficit: int
    liquidatable_loss: int
    ladder: tuple[LadderPoint, ...]
    # where a pool-drawdown rule is in force (Bybit's): the symbol's pnlRatio as the venue
    # computes it, (symbol PnL - its window max) / the pool's window max balance, and as
    # it would be once the pool books the symbol's loss now (bankrupt + liquidatable)
    pool_pnl_ratio: float | None = None
    pool_pnl_ratio_after_loss: float | None = None

    def __init__(
        self,
        symbol: str,
        mark_price: int | None,
        adl_distance_long_pct: float | None,
        adl_distance_short_pct: float | None,
        bankrupt_deficit: int,
        liquidatable_loss: int,
        ladder: tuple[LadderPoint, ...],
        pool_pnl_ratio: float | None = None,
        pool_pnl_ratio_after_loss: float | None = None,
    ) -> None:  # written out: see LadderPoint
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "mark_price", mark_price)
        object.__setattr__(self, "adl_distance_long_pct", adl_distance_long_pct)
        object.__setattr__(self, "adl_distance_short_pct", adl_distance_short_pct)
        object.__setattr__(self, "bankrupt_deficit", bankrupt_deficit)
        object.__setattr__(self, "liquidatable_loss", liquidatable_loss)
        object.__setattr__(self, "ladder", ladder)
        object.__setattr__(self, "pool_pnl_ratio", pool_pnl_ratio)
        object.__setattr__(self, "pool_pnl_ratio_after_loss", pool_pnl_ratio_after_loss)


@dataclass(frozen=True, slots=True)
class FundProjection:
    ts_ms: int
    fund: str
    fund_balance: int
    projected_loss: int
    coverage_ratio: float | None
    runway_seconds: float | None
    symbols: tuple[SymbolProjection, ...]
    settlement: str | None = None  # the fund's currency; None: USDT


class RankAlert(NamedTuple):
    """A position's ADL light changed. A NamedTuple (immutable, like the frozen dataclasses
    beside it): the crash of the preset makes ~4 per event, and a frozen dataclass of
    eight fields costs ~4x as much to make (1.1 vs 0.3 us)."""

    ts_ms: int
    account: str
    symbol: str
    side: str
    quantile: int
    previous_quantile: int | None
    rank_score: float
    notional: int  # the position's |qty| * mark, quote currency
    venue_indicator: int | None  # the light on the venue's own scale (None: it shows none)
    settlement: str | None = None  # the notional's currency; None: USDT


TOP_SCORES = 5  # a side summary's first scores of the ADL queue


@dataclass(frozen=True, slots=True)
class SideSummary:
    """One side of one symbol, for dashboards: sizes, counts, deficits, the queue's top."""

    open_interest: int  # base units, scaled
    positions_by_light: tuple[int, ...]  # index 0 = not ranked yet, 1..5 = lights
    liquidatable: int
    bankrupt: int
    bankrupt_deficit: int  # quote, at the mark
    top_scores: tuple[float, ...]  # ADL queue's first scores, best first

    @staticmethod
    def merged(parts: Sequence[SideSummary]) -> SideSummary:
        """The side over several partitions' accounts (each account in one of them):
        sizes, counts and deficits add up; the first scores are the best of all parts'
        first scores (each part's are its best, so the merged first k are among them)."""
        scores = sorted((s for part in parts for s in part.top_scores), reverse=True)
        return SideSummary(
            open_interest=sum(part.open_interest for part in parts),
            positions_by_light=tuple(
                sum(counts) for counts in zip(*(p.positions_by_light for p in parts), strict=True)
            ),
            liquidatable=sum(part.liquidatable for part in parts),
            bankrupt=sum(part.bankrupt for part in parts),
            bankrupt_deficit=sum(part.bankrupt_deficit for part in parts),
            top_scores=tuple(scores[:TOP_SCORES]),
        )


Signal = LiquidationDetected | BankruptcyDetected | AdlTriggered | FundProjection | RankAlert
