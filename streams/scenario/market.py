"""Prices and order books of a simulated crash: a deterministic crash path per symbol,
correlated mean-reverting noise around it (one market factor), and a book that thins
and widens as the crash deepens."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from streams.scenario.spec import ScenarioSpec, SymbolSpec

NOISE_REVERSION_MIN = 2.0  # noise decays back to the path with this time constant
CRASH_VOL_MULTIPLIER = 3.0
BOOK_LEVELS = 10


def fall_fraction(spec: ScenarioSpec, sym: SymbolSpec, t_min: float) -> float:
    """Share of the start price lost at ``t_min``: a cosine fall over the crash window,
    then a linear partial rebound to the end of the scenario."""
    x = (t_min - spec.crash_start_min) / spec.crash_minutes
    if x <= 0:
        return 0.0
    fall = sym.crash_depth * (0.5 - 0.5 * math.cos(math.pi * min(x, 1.0)))
    if x > 1:
        tail = max(spec.minutes - spec.crash_end_min, 1e-9)
        fall *= 1 - spec.rebound * min(1.0, (t_min - spec.crash_end_min) / tail)
    return fall


def in_crash(spec: ScenarioSpec, t_min: float) -> bool:
    return spec.crash_start_min <= t_min < spec.crash_end_min


@dataclass(slots=True)
class Market:
    """Mark prices of every symbol, advanced one step at a time."""

    spec: ScenarioSpec
    rng: random.Random
    noise: dict[str, float] = field(default_factory=dict)  # log deviation from the path
    t_min: float = 0.0

    def step(self, t_min: float) -> dict[str, float]:
        dt = max(t_min - self.t_min, 1e-9)
        self.t_min = t_min
        vol_scale = CRASH_VOL_MULTIPLIER if in_crash(self.spec, t_min) else 1.0
        market_shock = self.rng.gauss(0.0, 1.0)
        marks: dict[str, float] = {}
        for sym in self.spec.symbols:
            own = self.rng.gauss(0.0, 1.0)
            shock = sym.beta * market_shock + math.sqrt(max(0.0, 1 - sym.beta**2)) * own
            x = self.noise.get(sym.symbol, 0.0) * (1 - dt / NOISE_REVERSION_MIN)
            x += sym.volatility * vol_scale * math.sqrt(dt) * shock
            self.noise[sym.symbol] = x
            path = sym.start_price * (1 - fall_fraction(self.spec, sym, t_min))
            marks[sym.symbol] = path * math.exp(x)
        return marks

    def stress(self, sym: SymbolSpec) -> float:
        """0 in calm, 1 at the bottom of the crash."""
        return fall_fraction(self.spec, sym, self.t_min) / sym.crash_depth


def book(
    sym: SymbolSpec, mark: float, stress: float, open_interest: float, rng: random.Random
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Ten levels a side: 5 bp apart and ``book_share`` of the open interest (quote) each
    in calm, 40 bp apart and 20x thinner at the bottom of the crash. Returns (bids best
    first, asks best first) as floats."""
    spacing = 0.0005 + 0.0035 * stress
    level_notional = open_interest * sym.book_share * (1 - 0.95 * stress)
    bids, asks = [], []
    for i in range(1, BOOK_LEVELS + 1):
        size = level_notional * (0.5 + rng.random()) / mark
        bids.append((mark * (1 - spacing * i), size))
        asks.append((mark * (1 + spacing * i), size))
    return bids, asks
