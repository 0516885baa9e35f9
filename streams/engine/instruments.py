"""Instruments: per symbol its insurance fund, venue profile and maintenance tiers.

Loaded from TOML::

    [symbols.BTCUSDT]
    fund = "USDT-perp"
    profile = "binance"
    tiers = [
      { max_notional = "50000", mmr = "0.004", maintenance_amount = "0", max_leverage = 125 },
      ...
    ]

    [funds."USDT-perp"]                  # optional, per pool: its drawdown rule
    drawdown = true                      # false: the fund rule only
    drawdown_trigger_ratio = "-0.3"      # ADL once the symbol's window drawdown < this
    drawdown_stop_ratio = "-0.25"        # ... until it is back above this
    drawdown_min_balance = "10000"       # in force only while the pool holds more
    drawdown_window_hours = 8

    [symbols.BTCUSD]                     # an inverse perpetual (``engine.inverse``)
    contract = "inverse"                 # "linear" (the default) or "inverse"
    contract_size = 1                    # USD per contract (whole), inverse only
    settlement = "BTC"                   # the coin margin, PnL and the fund are in
    tiers = [ ... ]                      # brackets in the settlement coin
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from streams.engine.drawdown import HOUR_MS, DrawdownRule
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

HOME_SETTLEMENT = "USDT"  # a linear symbol's settlement unless the file says otherwise
CONTRACTS = ("linear", "inverse")


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
    # a pool-drawdown trigger beside the fund rule (``engine.drawdown``): the profile's
    # unless the fund's table in the instruments file states it
    drawdown_rule: DrawdownRule | None = None
    # "linear" (margin and PnL in the quote) or "inverse" (contracts worth
    # ``contract_size`` USD each, margin and PnL in the ``settlement`` coin)
    contract: str = "linear"
    contract_size: int = 1  # whole USD per contract (inverse only)
    settlement: str = HOME_SETTLEMENT  # the currency of margin, PnL and the fund
    # the fee to close (raw rate of the position's value at the mark; 0: none): where a
    # venue counts it against the margin (Bybit), equity is net of it (``margin``)
    closing_fee_rate: int = 0

    @property
    def inverse(self) -> bool:
        return self.contract == "inverse"

    @property
    def engine_tick(self) -> int:
        """The tick of the prices the engine holds: an inverse symbol's are 1/P, off the
        venue's grid (``engine.inverse`` puts them on it on the way out)."""
        return 0 if self.contract == "inverse" else self.tick_size

    @property
    def slope_long(self) -> int:
        """A long's equity per unit of price, x SCALE: 1 - r (``margin``)."""
        return SCALE - self.closing_fee_rate

    @property
    def slope_short(self) -> int:
        """A short's equity per unit of price, x SCALE (signs apart): 1 + r."""
        return SCALE + self.closing_fee_rate

    def slope(self, qty: int) -> int:
        """The equity's slope per unit of the position's price, x SCALE, by its side."""
        return self.slope_long if qty > 0 else self.slope_short

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
# a [funds.NAME] table's keys: the drawdown rule's fields (``DrawdownRule``)
_DRAWDOWN_RATIOS = {"drawdown_trigger_ratio": "trigger_ratio", "drawdown_stop_ratio": "stop_ratio"}
_FUND_KEYS = {"drawdown", "drawdown_min_balance", "drawdown_window_hours", *_DRAWDOWN_RATIOS}


def _drawdown_rule(
    default: DrawdownRule | None, table: Mapping[str, Any], where: str
) -> DrawdownRule | None:
    """The pool's drawdown rule: the profile's (``default``), changed by the fund's table."""
    unknown = sorted(set(table) - _FUND_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(_FUND_KEYS)}")
    enabled = table.get("drawdown", default is not None or len(table) > 0)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.drawdown: true or false, not {enabled!r}")
    if not enabled:
        return None
    changes: dict[str, int] = {
        name: _raw(table, key, where) for key, name in _DRAWDOWN_RATIOS.items() if key in table
    }
    if "drawdown_min_balance" in table:
        changes["min_balance"] = _raw(table, "drawdown_min_balance", where)
    if "drawdown_window_hours" in table:
        hours = _raw(table, "drawdown_window_hours", where)
        changes["window_ms"] = div_floor(hours * HOUR_MS, SCALE)
    rule = replace(default or DrawdownRule(), **changes)
    if not rule.trigger_ratio < rule.stop_ratio <= 0:
        raise ConfigError(
            f"{where}: drawdown ratios need trigger < stop <= 0 (ADL starts at the first and "
            f"stops above the second), got {to_str(rule.trigger_ratio)} and "
            f"{to_str(rule.stop_ratio)}"
        )
    if rule.min_balance < 0 or rule.window_ms <= 0:
        raise ConfigError(f"{where}: drawdown_min_balance >= 0 and drawdown_window_hours > 0")
    return rule


def parse_instruments(doc: Mapping[str, Any]) -> dict[str, Instrument]:
    symbols = doc.get("symbols")
    if not isinstance(symbols, dict) or not symbols:
        raise ConfigError("instruments: a [symbols.NAME] table is required")
    funds = doc.get("funds", {})
    if not isinstance(funds, dict) or not all(isinstance(t, dict) for t in funds.values()):
        raise ConfigError("instruments: funds must be [funds.NAME] tables")
    named = {str(spec.get("fund", "default")) for spec in symbols.values()}
    if set(funds) - named:
        raise ConfigError(f"instruments: [funds] {sorted(set(funds) - named)} hold no symbol")
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
        contract, size, settlement = _contract_terms(spec, where)
        closing_fee = _raw(spec, "closing_fee_rate", where) if "closing_fee_rate" in spec else 0
        if not 0 <= closing_fee < SCALE // 10:
            raise ConfigError(f"{where}.closing_fee_rate: a rate from 0 to below 0.1")
        fund = str(spec.get("fund", "default"))
        rule = _drawdown_rule(
            profile_named(profile).drawdown_rule, funds.get(fund, {}), f"funds.{fund}"
        )
        out[symbol] = Instrument(
            symbol=symbol,
            fund=fund,
            profile=profile,
            tiers=tuple(tiers),
            maintenance_base=base,
            tick_size=tick,
            drawdown_rule=rule,
            contract=contract,
            contract_size=size,
            settlement=settlement,
            closing_fee_rate=closing_fee,
        )
    _check_one_settlement_per_fund(out)
    return out


def _contract_terms(spec: Mapping[str, Any], where: str) -> tuple[str, int, str]:
    """(contract, contract_size, settlement) of a symbol's table, validated."""
    contract = spec.get("contract", "linear")
    if contract not in CONTRACTS:
        raise ConfigError(f"{where}.contract: {contract!r}, not one of {', '.join(CONTRACTS)}")
    size = spec.get("contract_size", 1)
    if contract == "linear" and "contract_size" in spec:
        raise ConfigError(f"{where}.contract_size: only an inverse contract has one")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1_000_000:
        raise ConfigError(f"{where}.contract_size: a whole number of USD from 1, got {size!r}")
    default = HOME_SETTLEMENT if contract == "linear" else None
    settlement = spec.get("settlement", default)
    if settlement is None:
        raise ConfigError(f'{where}.settlement: an inverse contract names its coin ("BTC")')
    if not isinstance(settlement, str) or not settlement.isascii() or not settlement.isalnum():
        raise ConfigError(f"{where}.settlement: a currency code (letters, digits): {settlement!r}")
    return contract, size, settlement


def _check_one_settlement_per_fund(instruments: Mapping[str, Instrument]) -> None:
    """A fund pays in one currency: its symbols must all settle in it."""
    by_fund: dict[str, set[str]] = {}
    for inst in instruments.values():
        by_fund.setdefault(inst.fund, set()).add(inst.settlement)
    for fund, settlements in sorted(by_fund.items()):
        if len(settlements) > 1:
            raise ConfigError(
                f"funds.{fund}: its symbols settle in {sorted(settlements)}; a fund pays in one "
                "currency (give each settlement its own fund)"
            )


def load_instruments(path: str | Path) -> dict[str, Instrument]:
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read instruments file {path}: {exc}") from exc
    return parse_instruments(doc)
