"""Every symbol's margin tiers as float columns: the maintenance of many positions at
their current marks in one numpy pass, for a ranking that reads it (Binance's).

A ranking is a float projection, as its scores are: the maintenance here is
``|q| x mark x mmr - maintenance_amount`` in floats, with the bracket the float notional
falls in (``Instrument.tier_for``'s rule: the first bracket whose upper edge is >= the
notional, the last one beyond the table). The exact engine rounds the notional and the
margin up (``margin.maintenance_margin``); a notional within float rounding of a
bracket's edge may fall in the bracket next to the engine's here.

A position whose maintenance is on its entry value (``maintenance_base = "entry"``) does
not move with its mark: its maintenance comes from its evaluation (the caller's), and is
0 here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from streams.engine.fixed import to_float
from streams.engine.instruments import Instrument

Floats = npt.NDArray[np.float64]


class TierColumns:
    """Margin tiers by symbol index (the engine's ``symbol_names`` order), padded to the
    widest table with upper edges of +inf."""

    __slots__ = ("amounts", "edges", "on_mark", "rates")

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        width = max((len(inst.tiers) for inst in instruments), default=1)
        count = len(instruments)
        self.edges = np.full((count, width), np.inf)  # upper notional edges, quote
        self.rates = np.zeros((count, width))
        self.amounts = np.zeros((count, width))  # maintenance amounts, quote
        self.on_mark = np.array(
            [inst.maintenance_base == "mark" for inst in instruments], dtype=np.bool_
        )
        for s, inst in enumerate(instruments):
            for t, tier in enumerate(inst.tiers):
                self.rates[s, t] = to_float(tier.mmr)
                self.amounts[s, t] = to_float(tier.maintenance_amount)
                if t < len(inst.tiers) - 1:  # the last bracket holds every notional past it
                    self.edges[s, t] = to_float(tier.max_notional)
            # padding repeats the last bracket (never reached: its edge is +inf)
            self.rates[s, len(inst.tiers) :] = self.rates[s, len(inst.tiers) - 1]
            self.amounts[s, len(inst.tiers) :] = self.amounts[s, len(inst.tiers) - 1]

    def maintenance(
        self,
        symbol_index: npt.NDArray[np.int64] | int,
        qty: Floats,
        mark_price: Floats | float,
    ) -> Floats:
        """Each position's maintenance at ``mark_price`` (quote): ``|qty| x mark x mmr -
        amount`` (not below 0) in its notional's bracket; 0 where the symbol's maintenance
        is on the entry value. ``qty``: base units, signed or not."""
        notional = np.abs(qty) * mark_price
        # how many brackets' upper edges lie below the notional: the one it falls in is next
        if isinstance(symbol_index, int):  # one symbol: a binary search per position
            tier = np.searchsorted(self.edges[symbol_index], notional, side="left")
        else:  # bracket by bracket, until no notional passes one (edges ascend)
            tier = np.zeros(len(notional), dtype=np.intp)
            for edges in self.edges.T:
                above = notional > edges[symbol_index]
                if not above.any():
                    break
                tier += above
        margin = notional * self.rates[symbol_index, tier] - self.amounts[symbol_index, tier]
        held: Floats = np.where(self.on_mark[symbol_index], np.maximum(margin, 0.0), 0.0)
        return held
