"""Instruments: per symbol its insurance fund, venue profile and maintenance tiers.

Loaded from TOML::

    [symbols.BTCUSDT]
    fund = "USDT-perp"
    profile = "binance"
    tiers = [
      { max_notional = "50000", mmr = "0.004", maintenance_amount = "0", max_leverage = 125 },
      ...
    ]
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.engine.errors import ConfigError
from streams.engine.fixed import (
    SCALE,
    FixedPointError,
    MoneyRaw,
    RateRaw,
    div_floor,
    to_raw,
    to_str,
)
from streams.engine.profiles import profile_named


@dataclass(frozen=True, slots=True)
class MarginTier:
    """One maintenance-margin bracket: applies to notionals up to ``max_notional``."""

    max_notional: MoneyRaw
    mmr: RateRaw
    maintenance_amount: MoneyRaw
    max_leverage: int


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    fund: str
    profile: str
    tiers: tuple[MarginTier, ...]  # ascending by max_notional
    # the value maintenance is a share of: "mark" (|q| x mark) or "entry" (|q| x entry);
    # the profile's convention unless the instruments file states it
    maintenance_base: str = "mark"
    # the price grid the venue quotes on (raw; 0: none): reported thresholds are put on it
    tick_size: int = 0

    def tier_for(self, notional: int) -> MarginTier:
        """The bracket whose range holds ``notional`` (the last one beyond the table)."""
        for tier in self.tiers:
            if notional <= tier.max_notional:
                return tier
        return self.tiers[-1]


def _raw(table: Mapping[str, Any], key: str, where: str) -> int:
    if key not in table:
        raise ConfigError(f"{where}: missing {key}")
    value = table[key]
    try:
        return to_raw(str(value) if not isinstance(value, str) else value)
    except FixedPointError as exc:
        raise ConfigError(f"{where}.{key}: {exc}") from exc


def _check_continuous(tiers: list[MarginTier], where: str) -> None:
    """Maintenance margin must not jump at a bracket's edge: each bracket's amount is
    ``cum_n = floor_n * (mmr_n - mmr_{n-1}) + cum_{n-1}`` (Binance's rule), where
    ``floor_n`` is the previous bracket's ``max_notional``. A jump would leave prices
    at which no bracket's liquidation price holds."""
    for i, (prev, cur) in enumerate(itertools.pairwise(tiers), start=1):
        expected = div_floor(prev.max_notional * (cur.mmr - prev.mmr), SCALE)
        expected += prev.maintenance_amount
        if cur.maintenance_amount != expected:
            raise ConfigError(
                f"{where}.tiers[{i}]: maintenance_amount {to_str(cur.maintenance_amount)} "
                f"makes the requirement jump at {to_str(prev.max_notional)}; continuous "
                f"brackets need {to_str(expected)}"
            )


MAINTENANCE_BASES = ("mark", "entry")


def parse_instruments(doc: Mapping[str, Any]) -> dict[str, Instrument]:
    symbols = doc.get("symbols")
    if not isinstance(symbols, dict) or not symbols:
        raise ConfigError("instruments: a [symbols.NAME] table is required")
    out: dict[str, Instrument] = {}
    for symbol, spec in symbols.items():
        where = f"symbols.{symbol}"
        tiers = []
        for i, t in enumerate(spec.get("tiers", [])):
            tw = f"{where}.tiers[{i}]"
            tiers.append(
                MarginTier(
                    max_notional=MoneyRaw(_raw(t, "max_notional", tw)),
                    mmr=RateRaw(_raw(t, "mmr", tw)),
                    maintenance_amount=MoneyRaw(_raw(t, "maintenance_amount", tw)),
                    max_leverage=int(t.get("max_leverage", 1)),
                )
            )
        if not tiers:
            raise ConfigError(f"{where}: at least one tier is required")
        if any(a.max_notional >= b.max_notional for a, b in itertools.pairwise(tiers)):
            raise ConfigError(f"{where}: tiers must ascend by max_notional")
        if any(not 0 < t.mmr < SCALE for t in tiers):
            raise ConfigError(f"{where}: mmr must lie in (0, 1)")
        _check_continuous(tiers, where)
        profile = str(spec.get("profile", "bybit"))
        base = spec.get("maintenance_base", profile_named(profile).maintenance_base)
        if base not in MAINTENANCE_BASES:
            raise ConfigError(
                f"{where}.maintenance_base: {base!r}, not one of {', '.join(MAINTENANCE_BASES)}"
            )
        tick = _raw(spec, "tick_size", where) if "tick_size" in spec else 0
        if "tick_size" in spec and tick <= 0:
            raise ConfigError(f"{where}.tick_size: must be > 0")
        out[symbol] = Instrument(
            symbol=symbol,
            fund=str(spec.get("fund", "default")),
            profile=profile,
            tiers=tuple(tiers),
            maintenance_base=base,
            tick_size=tick,
        )
    return out


def load_instruments(path: str | Path) -> dict[str, Instrument]:
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read instruments file {path}: {exc}") from exc
    return parse_instruments(doc)
