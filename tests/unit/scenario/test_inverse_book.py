"""``simulate --inverse-accounts``: an inverse book beside the main market, written in the
venue's terms, checked by a fold written here from the venues' inverse formulas (exact
fractions, no engine code), then replayed."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from streams.engine.instruments import load_instruments
from streams.replay.runner import OUTPUTS, replay
from streams.scenario.inverse_book import (
    COIN,
    FUND,
    SYMBOL,
    instruments_toml,
    simulate_with_inverse_book,
)
from streams.scenario.spec import BUNDLED
from tests.helpers import BUNDLED as BUNDLED_TOML
from tests.helpers import bundled_instruments, schema_validator

SMALL = replace(BUNDLED, accounts=150, minutes=5.0, crash_start_min=1.0, crash_minutes=2.0,
                bad_lines=False)  # fmt: skip
BOOK_ACCOUNTS = 100


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inverse") / "events.jsonl"
    simulate_with_inverse_book(SMALL, bundled_instruments(), path, BOOK_ACCOUNTS, progress=False)
    return path


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes(scenario: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.jsonl"
    simulate_with_inverse_book(SMALL, bundled_instruments(), again, BOOK_ACCOUNTS, progress=False)
    assert again.read_bytes() == scenario.read_bytes()


def test_the_book_is_written_in_the_venues_terms(scenario: Path) -> None:
    lines = events(scenario)
    fills = [e for e in lines if e["type"] == "fill" and e["symbol"] == SYMBOL]
    assert fills
    # whole contracts, USD prices near BTCUSDT's (the same crash from 60,000)
    assert all(Fraction(e["qty"]).denominator == 1 for e in fills)
    assert all(40_000 < Fraction(e["price"]) < 70_000 for e in fills)
    coin_balances = [e for e in lines if e["type"] == "balance" and e.get("currency") == COIN]
    assert len({e["account"] for e in coin_balances}) >= BOOK_ACCOUNTS
    assert {e["fund"] for e in lines if e["type"] == "insurance_fund"} == {"USDT-M", FUND}
    kinds = {e.get("kind") for e in fills}
    assert {"trade", "liquidation", "adl"} <= kinds
    # the file is in canonical order: a merge of two books keeps it
    ts = [e["ts"] for e in lines]
    assert ts == sorted(ts)


def test_every_coin_wallet_follows_the_inverse_formulas_and_ends_solvent(scenario: Path) -> None:
    # A fold of the file's BTC wallets in exact fractions, from the venues' inverse
    # formulas: a position's cost in BTC is sum(contracts / price) of its opening fills;
    # a close of c contracts realizes c (cost / |n| - 1 / P) for a long (the opposite for
    # a short) and releases that share of the cost; equity at the mark M = wallet +
    # n / |n| (cost - |n| / M). Open interest is zero-sum after every timestamp, and no
    # wallet is left under water once the venue has acted (its liquidations and ADL).
    wallet: dict[str, Fraction] = defaultdict(Fraction)
    qty: dict[str, int] = defaultdict(int)
    cost: dict[str, Fraction] = defaultdict(Fraction)
    mark = Fraction(0)
    last_ts = None

    def equity(acct: str) -> Fraction:
        n = qty[acct]
        upnl = (1 if n > 0 else -1) * (cost[acct] - Fraction(abs(n)) / mark) if n else Fraction(0)
        return wallet[acct] + upnl

    def check_after(ts: int) -> None:
        assert sum(qty.values()) == 0, ts
        if mark:
            worst = min((equity(a) for a in qty if qty[a]), default=Fraction(0))
            assert worst > Fraction(-1, 10**6), (ts, float(worst))  # dust of rounded prices

    for e in events(scenario):
        if last_ts is not None and e["ts"] // 100 != last_ts // 100:
            check_after(last_ts)
        last_ts = e["ts"]
        if e["type"] == "balance" and e.get("currency") == COIN:
            wallet[e["account"]] += Fraction(e["amount"])
        elif e["type"] == "mark" and e["symbol"] == SYMBOL:
            mark = Fraction(e["mark_price"])
        elif e["type"] == "fill" and e["symbol"] == SYMBOL:
            acct, price = e["account"], Fraction(e["price"])
            signed = int(e["qty"]) * (1 if e["side"] == "buy" else -1)
            wallet[acct] -= Fraction(e["fee"])
            n = qty[acct]
            closing = 0 if n == 0 or (n > 0) == (signed > 0) else min(abs(signed), abs(n))
            if closing:
                sign = 1 if n > 0 else -1
                wallet[acct] += sign * closing * (cost[acct] / abs(n) - 1 / price)
                cost[acct] -= cost[acct] * closing / abs(n)
                qty[acct] = n - sign * closing
            opening = abs(signed) - closing
            if opening:
                qty[acct] += opening if signed > 0 else -opening
                cost[acct] += Fraction(opening) / price
    assert last_ts is not None
    check_after(last_ts)
    assert any(qty.values())  # positions are still open at the end


def test_the_monitor_warns_before_every_adl_of_both_books(scenario: Path, tmp_path: Path) -> None:
    toml = tmp_path / "instruments.toml"
    toml.write_text(Path(BUNDLED_TOML).read_text() + instruments_toml())
    out = tmp_path / "replay"
    replay(scenario, load_instruments(toml), out, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    warning = summary["adl_warning"]
    assert SYMBOL in warning["first_adl_by_symbol"]
    assert warning["adl_episodes"] > 0
    assert warning["unwarned_episodes"] == 0
    assert summary["funds"][FUND]["symbols"] == [SYMBOL]
    # every output line matches its schema; the book's carry its settlement
    settled = 0
    for name in OUTPUTS:
        check = schema_validator(name)
        for line in (out / f"{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            check.validate(row)
            if row.get("symbol") == SYMBOL or row.get("fund") == FUND:
                assert row["settlement"] == COIN, (name, row)
                settled += 1
    assert settled > 0
