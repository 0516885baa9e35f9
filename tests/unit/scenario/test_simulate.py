"""``simulate``: the generator's invariants, checked by an independent fold of its output.

The reference below is written for the test with Python ``Decimal`` and no engine code:
positions with exact average entries, a wallet fed by balances, realized PnL and fees.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import pytest

from streams.engine.drawdown import DrawdownRule
from streams.replay.runner import replay
from streams.scenario.simulate import simulate
from streams.scenario.spec import BUNDLED
from tests.helpers import bundled_instruments, raw

SMALL = replace(BUNDLED, accounts=150, minutes=5.0, crash_start_min=1.0, crash_minutes=2.0,
                bad_lines=False)  # fmt: skip
# The engine rounds each average entry to 1e-8 against the holder; an exact average differs
# by less than 1e-8 per unit, so a cent covers any position in these scenarios.
CENT = Decimal("0.01")


@dataclass
class RefAccount:
    wallet: Decimal = Decimal(0)
    qty: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    entry: dict[str, Decimal] = field(default_factory=dict)

    def fill(self, symbol: str, signed: Decimal, price: Decimal, fee: Decimal) -> None:
        self.wallet -= fee
        q = self.qty[symbol]
        if q == 0 or (q > 0) == (signed > 0):
            self.entry[symbol] = (abs(q) * self.entry.get(symbol, price) + abs(signed) * price) / (
                abs(q) + abs(signed)
            )
            self.qty[symbol] = q + signed
            return
        closed = min(abs(q), abs(signed))
        self.wallet += closed * (price - self.entry[symbol]) * (1 if q > 0 else -1)
        rest = q + signed
        self.qty[symbol] = rest
        if rest != 0 and (rest > 0) != (q > 0):
            self.entry[symbol] = price  # flipped through zero

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        return self.wallet + sum(
            (q * (marks[s] - self.entry[s]) for s, q in self.qty.items() if q), Decimal(0)
        )


def fold(path: Path):
    """Yields (event, accounts, marks) *before* applying each event, then (None, ...) at
    the end: the state seen at an event is the state after everything before it."""
    accounts: dict[str, RefAccount] = defaultdict(RefAccount)
    marks: dict[str, Decimal] = {}
    for line in path.read_text().splitlines():
        e = json.loads(line)
        yield e, accounts, marks
        if e["type"] == "balance":
            accounts[e["account"]].wallet += Decimal(e["amount"])
        elif e["type"] == "fill":
            sign = 1 if e["side"] == "buy" else -1
            accounts[e["account"]].fill(
                e["symbol"], sign * Decimal(e["qty"]), Decimal(e["price"]), Decimal(e["fee"])
            )
        elif e["type"] == "mark":
            marks[e["symbol"]] = Decimal(e["mark_price"])
    yield None, accounts, marks


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    result = simulate(SMALL, bundled_instruments(), path, progress=False)
    return path, result


def test_same_seed_same_bytes_other_seed_other_market(scenario, tmp_path):
    path, _ = scenario
    again, other = tmp_path / "again.jsonl", tmp_path / "other.jsonl"
    simulate(SMALL, bundled_instruments(), again, progress=False)
    simulate(replace(SMALL, seed=SMALL.seed + 1), bundled_instruments(), other, progress=False)
    assert again.read_bytes() == path.read_bytes()
    assert other.read_bytes() != path.read_bytes()


def test_the_crash_liquidates_drains_the_fund_and_deleverages(scenario):
    path, _result = scenario
    kinds = defaultdict(int)
    funds = []
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e["type"] == "fill":
            kinds[e.get("kind", "trade")] += 1
        if e["type"] == "insurance_fund":
            funds.append(Decimal(e["balance"]))
    assert kinds["liquidation"] > 0
    assert kinds["adl"] > 0
    assert funds[0] == SMALL.fund_per_account * SMALL.accounts
    assert min(funds) < funds[0] / 10  # the fund ran (almost) dry: that is when ADL starts
    assert all(b >= 0 for b in funds)


def test_open_interest_is_zero_sum_after_every_millisecond(scenario):
    path, _ = scenario
    last_ts, checked = None, 0
    per_symbol: dict[str, Decimal] = defaultdict(Decimal)
    for e, accounts, _ in fold(path):
        ts = e["ts"] if e is not None else None
        if ts != last_ts and last_ts is not None:
            per_symbol.clear()
            for acct in accounts.values():
                for sym, q in acct.qty.items():
                    per_symbol[sym] += q
            assert all(v == 0 for v in per_symbol.values()), (last_ts, dict(per_symbol))
            checked += 1
        last_ts = ts
    assert checked > 1000


def test_no_account_is_left_with_negative_equity_after_the_venue_acts(scenario):
    """Checked at every periodic fund snapshot (the start of a mark step, after the venue
    handled the previous one) and at the end."""
    path, _ = scenario
    checks = 0
    worst = Decimal(0)
    phase = path_ts_phase(path)
    for e, accounts, marks in fold(path):
        if e is None:
            break
        periodic = e["type"] == "insurance_fund" and e["ts"] % 1000 == phase
        if periodic and len(marks) == len(SMALL.symbols):
            worst = min([worst] + [a.equity(marks) for a in accounts.values()])
            checks += 1
    final = min(a.equity(marks) for a in accounts.values())
    assert checks > 10
    assert worst >= -CENT
    assert final >= -CENT


def path_ts_phase(path: Path) -> int:
    """Mark steps share their millisecond phase (start of the market + k steps)."""
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e["type"] == "mark" and e["ts"] > SMALL.start_ms:
            return e["ts"] % 1000
    raise AssertionError("no marks")


def test_marks_come_every_100_ms_in_the_crash_and_every_second_outside(scenario):
    path, _ = scenario
    times = [json.loads(line)["ts"] for line in path.read_text().splitlines()
             if '"type":"mark"' in line and '"BTCUSDT"' in line]  # fmt: skip
    gaps = {b - a for a, b in itertools.pairwise(times[1:])}
    assert gaps == {100, 1000}
    crash_start = SMALL.start_ms + SMALL.crash_start_min * 60_000
    crash_end = SMALL.start_ms + SMALL.crash_end_min * 60_000
    for a, b in itertools.pairwise(times[1:]):
        if crash_start + 1000 < a < crash_end - 1000:
            assert b - a == 100


def test_command_line_writes_the_bundled_file_and_refuses_unknown_symbols(tmp_path):
    import subprocess
    import sys

    from streams.cli import bundled

    out = tmp_path / "bundled.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--bundled", "--quiet",
         "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.read_bytes() == bundled("cascade.jsonl").read_bytes()  # the shipped file
    assert "liquidations through the book" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--symbols", "BTCUSDT,DOGEUSDT",
         "--out", str(tmp_path / "x.jsonl")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "DOGEUSDT" in bad.stderr


def test_a_venue_with_a_pool_drawdown_rule_deleverages_early_and_the_monitor_warns(tmp_path):
    """The small scenario under Bybit's rules with its pool-drawdown trigger in force
    (minimum balance 1): the venue deleverages while its fund still holds most of its
    opening balance (the fund rule waits until it runs out), books each symbol's PnL
    in the pool as inputs, and replay warns before every ADL episode."""
    rule = DrawdownRule(min_balance=raw("1"))
    instruments = {
        s: replace(i, profile="bybit", drawdown_rule=rule) for s, i in bundled_instruments().items()
    }
    path = tmp_path / "events.jsonl"
    simulate(SMALL, instruments, path, progress=False)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    balance, first_adl_balance, pnl_lines = None, None, 0
    for e in events:
        if e["type"] == "insurance_fund":
            balance = Decimal(e["balance"])
            pnl_lines += "symbol_pnl" in e
        if e["type"] == "fill" and e.get("kind") == "adl" and first_adl_balance is None:
            first_adl_balance = balance
    opening = SMALL.fund_per_account * SMALL.accounts
    assert first_adl_balance is not None
    assert first_adl_balance > Decimal(repr(opening)) / 2  # -30% of the pool, not -100%
    assert pnl_lines > 0
    out = tmp_path / "replay"
    replay(path, instruments, out, progress=False)
    warning = json.loads((out / "summary.json").read_text())["adl_warning"]
    assert warning["adl_episodes"] > 0
    assert warning["unwarned_episodes"] == 0
