"""One profile per venue. Each docstring states the venue's formula and its source."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streams.engine.drawdown import BYBIT_DRAWDOWN, DrawdownRule
from streams.engine.fixed import SCALE
from streams.engine.profiles.base import (
    AtBankruptcyPrice,
    CumulativeQuantityLights,
    Floats,
    QuintileLights,
    RankInput,
    leveraged_pnl,
)


@dataclass(frozen=True)
class LeveragedPnlProfile(AtBankruptcyPrice):
    """The ranking BitMEX published and most venues copied (the venues below)::

        ranking = PnL% * effective leverage (PnL% > 0), PnL% / effective leverage (else)
        effective leverage = abs(mark value) / (mark value - bankrupt value)

    ``mark value - bankrupt value`` is q*(M - B) = the equity backing the position.
    Counterparties close at the bankruptcy price. Lights: each venue's.
    """

    name: str
    adl_fee_rate: int = 0
    adl_on_negative_value: bool = False
    drawdown_rule: DrawdownRule | None = None
    maintenance_base: str = "mark"
    reads_maintenance: bool = False

    def rank_score(self, row: RankInput) -> Floats:
        return leveraged_pnl(row.pnl_pct, row.effective_leverage(row.backing_equity))


@dataclass(frozen=True)
class BitmexProfile(CumulativeQuantityLights, LeveragedPnlProfile):
    """BitMEX auto-deleveraging ranking.

    Source: BitMEX "Auto-Deleveraging" (Trading rules), the form most venues copied::

        PnL percentage     = (mark value - avg entry value) / abs(avg entry value)
        effective leverage = abs(mark value) / (mark value - bankrupt value)
        ranking            = PnL% * effective leverage   if PnL% > 0
                             PnL% / effective leverage   otherwise

    ``mark value - bankrupt value`` is q*(M - B) = the equity backing the position.
    Counterparties close at the bankruptcy price; no fee on the deleveraged side.

    Lights ("Auto-Deleveraging Examples", bitmex.com/app/autoDeleveragingExamples): the
    queue's cumulative quantity through the position as a percentile of the side's,
    rounded up to 20% (``CumulativeQuantityLights``); the indicator shows 1..5 lit.

    Maintenance on the entry value ("Isolated and Cross Margin Examples",
    bitmex.com/app/isolatedMarginExamples: wallet 10,000 USDT, 20 ETHUSDT bought at
    1,000, 50x cross, "the maintenance margin is 1% = 200 USDT"; liquidation 510,
    bankruptcy 500)::

        maintenance = |q| x entry x mmr - amount;  P_liq = M + (MM - Q) / q
    """

    name: str = "bitmex"
    maintenance_base: str = "entry"


@dataclass(frozen=True)
class BybitProfile(QuintileLights, LeveragedPnlProfile):
    """Bybit ADL ranking (help center "What is Auto-Deleveraging (ADL)").

    Same ranking as BitMEX::

        ranking = PnL% * effective leverage (PnL% > 0), PnL% / effective leverage (else)
        effective leverage = abs(mark value) / (mark value - bankrupt value)

    Fee rule: "Maker fee will be charged to the positions of selected traders and Taker
    fee will be charged to the liquidated orders" -> the deleveraged side pays the maker
    fee (0.02% on USDT perpetuals, base tier).

    Lights: the position API's ``adlRankIndicator`` (v5 "Get Position Info"), 1..5 for a
    position (0: none); Bybit publishes no basis for it: quintiles of positions.

    Maintenance on the entry value (help center, "Liquidation Price (USDT Contract)":
    "Liquidation Price (Long) = Entry Price - [(Initial Margin - Maintenance Margin) /
    Position Size]"; 1 BTC long at 10,000, 50x, MMR 0.5% -> 9,850)::

        maintenance = |q| x entry x mmr - amount;  P_liq = M + (MM - Q) / q

    When: the fund rule (a pool's balance <= 0), and "contract PnL drawdown ADL" (v5 "Get
    ADL Alert"): a symbol whose 8 h PnL drawdown passes -30% of its pool's 8 h max
    balance while the pool holds more than 10,000, until it is back above -25%
    (``engine.drawdown``; parameters per pool in the instruments file).
    """

    name: str = "bybit"
    adl_fee_rate: int = 2 * SCALE // 10_000  # 0.02% maker fee
    maintenance_base: str = "entry"
    drawdown_rule: DrawdownRule | None = BYBIT_DRAWDOWN


@dataclass(frozen=True)
class BinanceProfile(QuintileLights, LeveragedPnlProfile):
    """Binance USDⓈ-M ADL ranking ("What Is Auto-Deleveraging (ADL) and How Does It
    Work", binance.com/en/support/faq/360033525471): "traders will be ranked by their
    margin ratio and unrealized PnL as a percentage of their collateral. The precise rank
    is known as "LeveragePnL", which is defined as unrealized PnL/collateral multiplied by
    the margin ratio", with the exact formulation at the end of that page, as quoted on
    Binance's developer forum (dev.binance.vision/t/17801)::

        PnL percent   = max(0, unrealized PnL) / max(1, wallet balance)
        margin ratio  = maintenance margin / (wallet balance + unrealized PnL)
                        (0 where wallet balance + unrealized PnL <= 0)
        Leverage PnL  = PnL percent x margin ratio
        LeveragePnlQuantile = rank(user.LeveragePnl) / Total User Count

    Per account (cross: the cross wallet, its unrealized PnL over every cross position at
    the current marks, its cross maintenance at the current marks) or per isolated
    position (its margin, PnL and maintenance); the maintenance in floats, as the score
    is (``engine.tier_columns``). The venue scores
    every loss 0 and publishes no order among them: here a loss keeps its sign (PnL
    percent without the max), so losers queue after every winner, deepest loss times
    margin ratio last, and a light boundary among them is not a tie of thousands.

    "The trader's positions will be closed out at the bankruptcy price of the initial
    liquidated order, no trading fee will be charged."

    Lights: ``adlQuantile`` ("Position ADL Quantile Estimation", GET /fapi/v1/adlQuantile:
    "Values 0, 1, 2, 3, 4 shows the queue position and possibility of ADL from low to
    high", refreshed every 30 s), from "LeveragePnlQuantile = rank / Total User Count":
    by positions, so quintiles, and the venue's figure is ``adlQuantile = light - 1``
    (5 lights = quantile 4).
    """

    name: str = "binance"
    adl_fee_rate: int = 0
    reads_maintenance: bool = True

    def venue_indicator(self, light: int) -> int | None:
        return light - 1

    def rank_score(self, row: RankInput) -> Floats:
        if row.wallet is None or row.maintenance is None:
            raise ValueError("Binance's ranking reads the wallet and the maintenance")
        equity = np.asarray(row.backing_equity, dtype=np.float64)
        wallet = np.asarray(row.wallet, dtype=np.float64)
        pnl_pct = (equity - wallet) / np.maximum(1.0, wallet)
        margin_ratio = np.zeros(np.broadcast(equity, row.maintenance).shape)
        np.divide(row.maintenance, equity, out=margin_ratio, where=equity > 0)
        score: Floats = pnl_pct * margin_ratio
        return score


@dataclass(frozen=True)
class OkxProfile(QuintileLights, LeveragedPnlProfile):
    """OKX ADL ranking ("Auto-Deleveraging: what it is and how it affects your positions").

    "Positions in the ADL queue are ranked based on the leverage PnL% = position's
    PnL% x effective leverage", for gains and losses alike (unlike BitMEX, a loss is
    multiplied, not divided, so deeply losing high-leverage positions rank last)::

        ranking = PnL% * abs(mark value) / (equity backing the position)

    When the security fund is nearly depleted deleveraged positions close at the
    bankruptcy price (the case this monitor projects). OKX publishes no ADL fee: 0.

    Lights: the positions API's ``adl`` ("Auto-deleveraging (ADL) indicator. Divided into
    6 levels, from 0 to 5, the smaller the number, the weaker the adl intensity"; 1..5 in
    older versions); no basis published: quintiles of positions, 1..5.
    """

    name: str = "okx"
    adl_fee_rate: int = 0

    def rank_score(self, row: RankInput) -> Floats:
        return row.pnl_pct * row.effective_leverage(row.backing_equity)


@dataclass(frozen=True)
class HyperliquidProfile(QuintileLights):
    """Hyperliquid ADL ranking (docs: Trading > Auto-deleveraging).

    "The specific sorting index to determine the affected users in profit is
    ``(mark_price / entry_price) * (notional_position / account_value)``. Those traders'
    positions are closed at the previous mark price against the now underwater user."

    For a short the price ratio is inverted (``entry_price / mark_price``) so that, as for
    a long, a profitable position scores above 1 x its leverage: our reading, since the
    docs print only the long form. ``account_value`` is the equity backing the position
    (the account for cross, the position's margin for isolated). Execution at the mark
    price, no fee. Hyperliquid shows no lights (``venue_indicator``: none); the desk's
    are quintiles of positions, as elsewhere.

    When: against "the now underwater user": ADL starts as soon as a position's backing
    value is below zero (the account's, cross; the position's, isolated), not when a fund
    runs out (the liquidator vault takes liquidations before that).
    """

    name: str = "hyperliquid"
    adl_fee_rate: int = 0
    adl_on_negative_value: bool = True
    drawdown_rule: DrawdownRule | None = None
    maintenance_base: str = "mark"
    reads_maintenance: bool = False

    def rank_score(self, row: RankInput) -> Floats:
        ratio = np.divide(row.mark_price, row.entry_price)
        ratio = np.where(np.asarray(row.qty) < 0, 1 / ratio, ratio)
        return ratio * row.effective_leverage(row.backing_equity)

    def adl_price(self, bankruptcy_price: int, mark_price: int) -> int:
        return mark_price

    def venue_indicator(self, light: int) -> int | None:
        return None
