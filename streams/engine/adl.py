"""ADL queue ranking, rank lights and the deleverage plan.

Queue order (per symbol and side): the profile's score, descending; ties by larger size,
then by account id, so the order is total and deterministic.

Deleverage plan: each bankrupt position's remaining size is closed against the opposite
side's queue, each counterparty for ``min(remaining, its size)``, at the profile's ADL
price (the bankrupt position's bankruptcy price on most venues) put on the instrument's
tick as the venue shows it (a bankrupt long's rounded up, a short's down: Bybit's
inverse example, 7,735.37 -> 7,735.5), with the profile's fee. A counterparty used by
one bankrupt position has less left for the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from streams.engine.margin import tick_price
from streams.engine.profiles import VenueProfile, adl_fee, queue_reaches
from streams.engine.signals import BankruptPosition, DeleverageStep

# The score of a position whose own equity is gone: it is being liquidated, so it ranks
# last and is never a counterparty in a deleverage plan.
UNDERWATER_SCORE = -1e18


class QueueEntry(NamedTuple):  # a tuple: the desk decodes 128 per symbol per summary
    account: str
    qty: int  # absolute size
    score: float
    unit_profit: float = 0.0  # unrealised PnL per base unit at the summary's mark


@dataclass(frozen=True, slots=True)
class RankedEntry:
    account: str
    qty: int
    score: float
    rank: int  # 0 = first to be deleveraged
    light: int  # 1..5


def rank_queue(entries: Iterable[QueueEntry], profile: VenueProfile) -> list[RankedEntry]:
    ordered = sorted(entries, key=lambda e: (-e.score, -e.qty, e.account))
    sizes = np.array([e.qty for e in ordered], dtype=np.int64)
    reaches, total = queue_reaches(sizes, profile.light_by_quantity)
    return [
        RankedEntry(e.account, e.qty, e.score, i, int(profile.light(reach, total)))
        for i, (e, reach) in enumerate(zip(ordered, reaches.tolist(), strict=True))
    ]


def deleverage_plan(
    bankrupt: Sequence[BankruptPosition],
    queues: Mapping[str, Sequence[RankedEntry]],
    profile: VenueProfile,
    mark_price: int,
    tick: int = 0,
) -> tuple[DeleverageStep, ...]:
    """``queues`` maps a side ("long"/"short") to its ranked queue; ``tick``: the
    instrument's price tick in engine units (0: none, prices as computed).

    One cursor per side: entries before it are used up, so each bankrupt position starts
    where the previous one stopped: O(bankrupt + queue), not O(bankrupt x queue).
    """
    cursor = {"long": 0, "short": 0}
    used_at_cursor = {"long": 0, "short": 0}  # taken from the entry under the cursor
    steps: list[DeleverageStep] = []
    for position in bankrupt:
        opposite = "short" if position.side == "long" else "long"
        queue = queues.get(opposite, ())
        price = profile.adl_price(position.bankruptcy_price, mark_price)
        price = tick_price(price, tick, position.side == "long")
        remaining = position.qty
        i, used = cursor[opposite], used_at_cursor[opposite]
        while remaining > 0 and i < len(queue):
            entry = queue[i]  # never the bankrupt account: one-way mode holds one side
            if entry.score <= UNDERWATER_SCORE:
                break  # the rest of the queue is under water too
            take = min(remaining, entry.qty - used)
            remaining -= take
            used += take
            steps.append(
                DeleverageStep(
                    account=entry.account,
                    symbol=position.symbol,
                    side=opposite,
                    qty=take,
                    price=price,
                    rank_score=entry.score,
                    fee=adl_fee(take, price, profile.adl_fee_rate),
                    against=position.account,
                )
            )
            if used == entry.qty:
                i, used = i + 1, 0
        cursor[opposite], used_at_cursor[opposite] = i, used
    return tuple(steps)
