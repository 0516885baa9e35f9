"""A second opinion on an ADL plan: what the queue takes from winners, against the cheapest
haircut that covers the same deficit, and two pro-rata alternatives.

Every venue shows only its own queue. The ADL-policy literature measures a queue against
fair alternatives (Chitra, "Autodeleveraging: Impossibilities and Optimization", arXiv
2512.01112; Chitra et al., "Autodeleveraging as Online Learning", arXiv 2602.15182; the
wealth-space definitions of their open reproduction, thogiti's "OSS ADL" methodology).
Here, for one triggered symbol at one mark ``m`` (all money in the quote currency):

    D  deficit to cover   min(fund shortfall, the symbol's own loss now): what ADL must
                          find for this symbol (a fund short on several symbols lets each
                          claim the whole shortfall: D is never understated); at a
                          venue whose ADL starts at a negative value (Hyperliquid), the
                          underwater positions' deficit, whatever the fund
    W  winners' profit    sum of max(0, unrealised PnL at m) of the positions on the
                          side(s) the plan takes from (the plan's counterparty sides)
    queue haircut         the winners' positive PnL on the contracts the plan closes:
                          sum over steps of qty * max(0, the counterparty's unrealised PnL
                          per unit at m) (the papers' queue haircut: a closed winner gives
                          up that profit's position; it is paid out, not lost, which is
                          the reproduction's "numeraire" caveat: see ``equity moved``)
    equity moved          what the counterparties' equity loses at the mark, per account:
                          sum_i max(0, sum of its steps' qty * (m - price) for a long,
                          qty * (price - m) for a short): the transfer across the
                          mark-bankruptcy gap (fees apart); 0 at a venue closing at the
                          mark, or for positions still liquidating, closed at their
                          bankruptcy price on the winner's good side of the mark
    minimal haircut       min(D, W): no allocation covering D can take less
    pro-rata ratio        lambda = min(1, D / W): every winner gives up the same fraction
                          of its positive PnL, which takes exactly the minimal haircut
    overshoot             queue haircut - minimal haircut (negative: the queue covers less
                          than D, e.g. a venue closing at the mark moves no equity)
    utilisation           kappa = queue haircut / minimal haircut
    by size (Drift v2)    the deficit spread over both sides' open interest by position
                          size: a charge of ceil(D / (long OI + short OI)) per base unit
                          (drift-labs/protocol-v2, ``math/liquidation.rs``,
                          ``calculate_funding_rate_deltas_to_resolve_bankruptcy``)
    concentration         share of each allocation borne by its top 1 and top 10 accounts

Money is exact where it comes from the plan (steps are fixed point); W and its top
accounts are sums of float PnL at the mark (a projection: the queue table keeps its
positions' entries as floats), rounded down to raw units.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.engine.fixed import SCALE, div_ceil, div_floor, ratio
from streams.engine.signals import DeleverageStep, SecondOpinion

TOP_ACCOUNTS = 10  # concentration: the top 1 and the top 10 accounts' share


@dataclass(frozen=True, slots=True)
class SideWinners:
    """One side of one symbol at the mark: what a second opinion needs of its positions.
    Accounts are whole in one partition, so the partitions' values merge exactly."""

    profit: int  # sum of max(0, unrealised PnL at the mark), quote raw units
    top_profits: tuple[int, ...]  # the largest, largest first, up to TOP_ACCOUNTS
    size: int  # open interest, base raw units
    top_sizes: tuple[int, ...]  # the largest positions, largest first

    @staticmethod
    def merge(parts: Iterable[SideWinners]) -> SideWinners:
        parts = list(parts)
        return SideWinners(
            profit=sum(p.profit for p in parts),
            top_profits=_top(v for p in parts for v in p.top_profits),
            size=sum(p.size for p in parts),
            top_sizes=_top(v for p in parts for v in p.top_sizes),
        )


NO_WINNERS = SideWinners(0, (), 0, ())


def _top(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(heapq.nlargest(TOP_ACCOUNTS, values))


def _shares(ordered: Sequence[int], total: int) -> tuple[float | None, float | None]:
    """(top 1, top 10) share of ``total``; ``ordered`` largest first."""
    if total <= 0:
        return None, None
    return ratio(ordered[0], total) if ordered else 0.0, ratio(sum(ordered[:TOP_ACCOUNTS]), total)


def _per_account(amounts: Iterable[tuple[str, int]]) -> list[int]:
    """Each account's total (quote raw, rounded down from raw x raw), those above zero,
    largest first."""
    totals: dict[str, int] = {}
    for account, amount in amounts:
        totals[account] = totals.get(account, 0) + amount
    return sorted((div_floor(v, SCALE) for v in totals.values() if v > 0), reverse=True)


def equity_moved(plan: Sequence[DeleverageStep], mark_price: int) -> list[int]:
    """Each counterparty account's equity lost at the mark, largest first; accounts that
    gain on balance are left out."""
    return _per_account(
        (s.account, s.qty * (mark_price - s.price if s.side == "long" else s.price - mark_price))
        for s in plan
    )


def profit_closed(plan: Sequence[DeleverageStep], unit_profits: Mapping[str, float]) -> list[int]:
    """Each counterparty account's positive PnL on the contracts closed, largest first
    (``unit_profits``: PnL per base unit at the mark, floats; unknown accounts give 0)."""
    return _per_account(
        (s.account, s.qty * math.floor(max(0.0, unit_profits.get(s.account, 0.0)) * SCALE))
        for s in plan
    )


def second_opinion(
    plan: Sequence[DeleverageStep],
    mark_price: int,
    deficit: int,
    winners: Mapping[str, SideWinners],
    unit_profits: Mapping[str, float],
) -> SecondOpinion:
    """``winners``: both sides ("long", "short") of the plan's symbol at ``mark_price``;
    ``unit_profits``: the plan's counterparties' PnL per base unit at the mark;
    ``deficit``: D, quote raw."""
    taken = profit_closed(plan, unit_profits)
    queue_haircut = sum(taken)
    sides = sorted({step.side for step in plan})
    pool = SideWinners.merge(winners.get(side, NO_WINNERS) for side in sides)
    both = SideWinners.merge(winners.get(side, NO_WINNERS) for side in ("long", "short"))
    minimal = min(deficit, pool.profit)
    return SecondOpinion(
        deficit=deficit,
        winners_profit=pool.profit,
        queue_haircut=queue_haircut,
        equity_moved=sum(equity_moved(plan, mark_price)),
        minimal_haircut=minimal,
        overshoot=queue_haircut - minimal,
        utilisation=ratio(queue_haircut, minimal) if minimal > 0 else None,
        queue_top_shares=_shares(taken, queue_haircut),
        pro_rata_ratio=min(1.0, ratio(deficit, pool.profit)) if pool.profit > 0 else None,
        pro_rata_top_shares=_shares(pool.top_profits, pool.profit),
        size_charge=div_ceil(deficit * SCALE, both.size) if both.size > 0 else None,
        size_top_shares=_shares(both.top_sizes, both.size),
    )
