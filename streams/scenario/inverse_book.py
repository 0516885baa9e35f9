"""An inverse book beside a simulated market (``simulate --inverse-accounts N``).

BTCUSD: 1 USD contracts, margin, PnL, fees and its own insurance fund in BTC, ranked by
Bybit's rules (the venue that lists it), on the same crash as BTCUSDT.

The simulated venue (``venue``) is written for linear contracts, and an inverse contract
is a linear one in x = 10^8 / P (``streams.engine.inverse``). So the book is simulated
as a linear market in x, by the same code as the main one: its own accounts' wallets in
BTC (the USD draws scaled by 1 / the opening price), its own fund, a crash that lifts x
as BTC falls (BTCUSDT's fall of ``crash_depth`` is a rise 1 / (1 - depth) - 1 of x), its
own random stream. Each of its lines is then written in the venue's terms (contracts,
USD prices, the USD side, ``currency: BTC`` on balances) and merged into the main file in
canonical order. Its accounts share the main book's names: each of them holds a BTC
wallet beside its USDT one, as on a venue, and the monitor keeps them apart.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from streams.engine.fixed import to_raw, to_str
from streams.engine.instruments import Instrument, parse_instruments
from streams.engine.inverse import venue_price, venue_qty
from streams.pipeline.sequencer import canonical_key
from streams.scenario.simulate import SimulationResult, simulate
from streams.scenario.spec import ScenarioSpec, SymbolSpec

SYMBOL = "BTCUSD"
FUND = "BTC-inverse"
COIN = "BTC"
CONTRACT_SIZE = 1  # USD per contract (Bybit's and BitMEX's BTC inverse perpetuals)
TICK = "0.5"
# Bybit's BTCUSD risk limits (help center, "Risk Limit (Inverse)"): steps of 150 BTC,
# maintenance from 0.5% up by 0.5% a step; the amounts keep it continuous
TIERS = (
    {"max_notional": "150", "mmr": "0.005", "maintenance_amount": "0", "max_leverage": 100},
    {"max_notional": "300", "mmr": "0.01", "maintenance_amount": "0.75", "max_leverage": 66},
    {"max_notional": "450", "mmr": "0.015", "maintenance_amount": "2.25", "max_leverage": 50},
    {"max_notional": "600", "mmr": "0.02", "maintenance_amount": "4.5", "max_leverage": 40},
)


def book_instrument() -> dict[str, Any]:
    """The BTCUSD table of an instruments file, as the monitor reads it."""
    return {
        "fund": FUND,
        "profile": "bybit",
        "contract": "inverse",
        "contract_size": CONTRACT_SIZE,
        "settlement": COIN,
        "tick_size": TICK,
        "tiers": [dict(t) for t in TIERS],
    }


def instruments_toml() -> str:
    """The table in TOML, to append to an instruments file."""
    table = book_instrument()
    tiers = table.pop("tiers")
    rows = [f"{k} = {_toml(v)}" for k, v in table.items()]
    rows += ["tiers = ["] + ["  { " + ", ".join(f"{k} = {_toml(v)}" for k, v in t.items()) + " },"
                            for t in tiers] + ["]"]  # fmt: skip
    head = "# the inverse book of `simulate --inverse-accounts` (streams/scenario/inverse_book.py)"
    return "\n".join(["", head, f"[symbols.{SYMBOL}]", *rows, ""])


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _x_world(spec: ScenarioSpec, btc: SymbolSpec, accounts: int) -> tuple[ScenarioSpec, Instrument]:
    """The book as a linear market in x (its spec, its instrument)."""
    x_symbol = SymbolSpec(
        SYMBOL,
        start_price=1e8 / btc.start_price,
        crash_depth=1 - 1 / (1 - btc.crash_depth),  # negative: x rises as BTC falls
        beta=btc.beta,
        volatility=btc.volatility,
        price_dp=8,
        qty_dp=8,  # units of 10^8 USD at 8 places: whole USD, whole 1 USD contracts
        book_share=btc.book_share,
        weight=1.0,
    )
    x_spec = dataclasses.replace(
        spec,
        seed=spec.seed + 1,
        accounts=accounts,
        symbols=(x_symbol,),
        fund=FUND,
        money_scale=1 / btc.start_price,
        money_dp=8,
        bad_lines=False,
    )
    inverse_only = ("contract", "settlement", "contract_size", "tick_size")
    linear = {k: v for k, v in book_instrument().items() if k not in inverse_only}
    (inst,) = parse_instruments({"symbols": {SYMBOL: linear}}).values()
    return x_spec, inst


def _venue_line(obj: dict[str, Any]) -> dict[str, Any]:
    """A line of the x market in the venue's terms (its canonical key unchanged)."""
    kind = obj["type"]
    if kind == "balance":
        return {**obj, "event_id": f"inv-{obj['event_id']}", "currency": COIN}
    if obj.get("symbol") != SYMBOL:
        return obj
    if kind == "fill":
        contracts = venue_qty(to_raw(obj["qty"]), CONTRACT_SIZE)
        return {
            **obj,
            "fill_id": f"inv-{obj['fill_id']}",
            "side": "sell" if obj["side"] == "buy" else "buy",
            "qty": to_str(contracts),
            "price": _usd(obj["price"]),
        }
    if kind == "mark":
        out = {**obj, "mark_price": _usd(obj["mark_price"])}
        if obj.get("index_price") is not None:
            out["index_price"] = _usd(obj["index_price"])
        return out
    if kind == "depth":

        def levels(side: list[list[str]]) -> list[list[str]]:
            return [[_usd(x), to_str(venue_qty(to_raw(q), CONTRACT_SIZE))] for x, q in side]

        return {**obj, "bids": levels(obj["asks"]), "asks": levels(obj["bids"])}
    if kind == "isolated_margin":
        return {**obj, "event_id": f"inv-{obj['event_id']}"}
    return obj


def _usd(x: str) -> str:
    return to_str(venue_price(to_raw(x)))


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for line in f:
            yield orjson.loads(line)


def simulate_with_inverse_book(
    spec: ScenarioSpec,
    instruments: dict[str, Instrument],
    out_path: Path,
    accounts: int,
    progress: bool | None = None,
) -> tuple[SimulationResult, SimulationResult]:
    """The main scenario and, merged into ``out_path``, an inverse book of ``accounts``
    accounts on BTCUSDT's crash; (main result, the book's in BTC)."""
    btc = next((s for s in spec.symbols if s.symbol == "BTCUSDT"), None)
    if btc is None:
        raise ValueError("an inverse book follows BTCUSDT: --symbols must include it")
    x_spec, x_inst = _x_world(spec, btc, accounts)
    main_path = out_path.with_name(out_path.name + ".linear.tmp")
    x_path = out_path.with_name(out_path.name + ".inverse.tmp")
    try:
        main = simulate(spec, instruments, main_path, progress)
        book = simulate(x_spec, {SYMBOL: x_inst}, x_path, progress)
        with out_path.open("wb") as out:
            venue_lines = (_venue_line(obj) for obj in _lines(x_path))
            for obj in heapq.merge(_lines(main_path), venue_lines, key=canonical_key):
                out.write(orjson.dumps(obj) + b"\n")
    finally:
        main_path.unlink(missing_ok=True)
        x_path.unlink(missing_ok=True)
    events = main.events + book.events
    return dataclasses.replace(main, events=events), book
