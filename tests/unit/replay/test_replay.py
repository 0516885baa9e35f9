"""``replay`` on the bundled cascade: the files, their schemas, determinism, dead letters."""

import json
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from streams.cli import bundled
from streams.engine.instruments import load_instruments
from streams.replay.runner import OUTPUTS, replay
from tests.helpers import schema_validator

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay")
    result = replay(bundled("cascade.jsonl"), load_instruments(bundled("instruments.toml")), out)
    return out, result


def rows(out: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]


def test_every_output_line_matches_its_schema(replayed):
    out, result = replayed
    for name in OUTPUTS:
        check = schema_validator(name)
        lines = rows(out, name)
        assert len(lines) == result.summary["outputs"][name]
        for line in lines:
            errors = sorted(check.iter_errors(line), key=str)
            assert errors == [], (name, line, errors[:1])
    schema_validator("summary").validate(json.loads((out / "summary.json").read_text()))


def test_the_cascade_triggers_adl_with_a_plan(replayed):
    out, result = replayed
    triggers = rows(out, "adl_triggers")
    stages = [t["stage"] for t in triggers]
    assert "imminent" in stages
    assert "triggered" in stages
    # warned before triggered
    assert stages.index("imminent") < stages.index("triggered")
    first = next(t for t in triggers if t["stage"] == "triggered")
    assert result.summary["first_adl_trigger_ts"] == first["ts"]
    assert Decimal(first["projected_loss"]) > Decimal(first["fund_balance"])
    assert Decimal(first["shortfall"]) == Decimal(first["projected_loss"]) - Decimal(
        first["fund_balance"]
    )
    # the positions the fund must take over: bankrupt ones first, then those being
    # liquidated (their close through the book is in the projected loss)
    assert first["bankrupt"]
    states = [b["state"] for b in first["bankrupt"]]
    assert states == sorted(states)  # "bankrupt" < "liquidating"
    assert first["plan"]
    # each bankrupt position is offset by at most its size, on the opposite side
    offset: dict[str, Decimal] = defaultdict(Decimal)
    for step in first["plan"]:
        offset[step["against"]] += Decimal(step["qty"])
    sizes = {b["account"]: Decimal(b["qty"]) for b in first["bankrupt"]}
    assert all(offset[a] <= sizes[a] for a in offset)
    sides = {b["account"]: b["side"] for b in first["bankrupt"]}
    assert all(step["side"] != sides[step["against"]] for step in first["plan"])


def test_bad_lines_go_to_dead_letters_with_reasons(replayed):
    out, result = replayed
    letters = rows(out, "dead_letters")
    assert [d["field"] for d in letters] == ["qty", "mark_price", "symbol"]
    assert "DOGEUSDT" in letters[2]["error"]
    assert result.summary["duplicates_ignored"] == 1
    assert result.summary["events_applied"] + len(letters) + 1 == result.summary["lines"]


def test_open_interest_is_zero_sum(replayed):
    out, _ = replayed
    net: dict[str, Decimal] = defaultdict(Decimal)
    for account in rows(out, "accounts"):
        for p in account["positions"]:
            q = Decimal(p["qty"])
            net[p["symbol"]] += q if p["side"] == "long" else -q
    assert net
    assert all(v == 0 for v in net.values())


def test_every_input_line_matches_the_input_schemas():
    letters = 0
    for line in Path(bundled("cascade.jsonl")).read_text().splitlines():
        event = json.loads(line)
        errors = list(schema_validator(f"input.{event['type']}").iter_errors(event))
        letters += bool(errors)
    assert letters == 2  # NaN mark and negative qty; the unknown symbol is schema-valid


def test_replay_is_deterministic(tmp_path, replayed):
    out, _ = replayed
    again = tmp_path / "again"
    replay(bundled("cascade.jsonl"), load_instruments(bundled("instruments.toml")), again)
    for name in [*OUTPUTS, "summary"]:
        suffix = ".json" if name == "summary" else ".jsonl"
        assert (out / f"{name}{suffix}").read_bytes() == (again / f"{name}{suffix}").read_bytes()


def test_command_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--out", str(tmp_path), "--quiet"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    summary = json.loads(done.stdout)
    assert summary["outputs"]["adl_triggers"] > 0
    assert "events/s" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--instruments", "/nonexistent.toml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert bad.returncode == 2
    assert "cannot read instruments" in bad.stderr
