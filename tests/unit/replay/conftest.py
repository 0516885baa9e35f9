"""The golden outputs' fixtures (``test_golden.py``; ``test_compiled.py`` holds the
compiled engine to the same files)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from streams.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "golden"


def first_difference(want: bytes, got: bytes) -> str:
    for number, (a, b) in enumerate(
        zip(want.splitlines(), got.splitlines(), strict=False), start=1
    ):
        if a != b:
            return f"line {number}:\n  want {a[:400]!r}\n  got  {b[:400]!r}"
    return f"same lines, {len(want.splitlines())} wanted, {len(got.splitlines())} got"


def assert_bundled_outputs(out: Path) -> None:
    """``out`` holds the bundled cascade's replay outputs, each the fixture's bytes."""
    fixtures = sorted((GOLDEN / "bundled").glob("*.gz"))
    assert {f.name.removesuffix(".gz") for f in fixtures} == {p.name for p in out.iterdir()}
    for fixture in fixtures:
        want = gzip.decompress(fixture.read_bytes())
        got = (out / fixture.name.removesuffix(".gz")).read_bytes()
        assert got == want, f"{fixture.name}: {first_difference(want, got)}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def scenario_10k(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The seeded 10k-account scenario's golden record and its events, simulated once."""
    golden = json.loads((GOLDEN / "scenario_10k.json").read_text())
    events = tmp_path_factory.mktemp("s10k") / "events.jsonl"
    assert main(["simulate", *golden["simulate"], "--out", str(events)]) == 0
    return golden, events
