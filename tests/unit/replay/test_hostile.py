"""``replay`` over the bundled cascade with hostile lines mixed in (issue 12): the inputs
that crashed it or passed in silence, and 10,000 fuzzed ones. Nothing crashes, every
hostile line is a dead letter naming why, and the outputs equal those of the valid
lines alone, byte for byte."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from streams.cli import bundled
from streams.engine.instruments import load_instruments
from streams.replay.runner import OUTPUTS, replay
from tests.helpers import hostile_lines

VALID = Path(bundled("cascade.jsonl")).read_bytes().splitlines()


def fuzzed(rng: random.Random, n: int) -> list[bytes]:
    """Mutations of valid lines, each certain to be invalid (so outputs are unchanged)."""
    hostile_values = ["1e999999", "NaN", "", "٣", "0x10", " 1", [], {}, None, True]
    out = []
    while len(out) < n:
        original = rng.choice(VALID)
        kind = rng.randrange(4)
        if kind == 0:  # cut short: not JSON
            out.append(original[: rng.randrange(1, len(original) - 1)])
            continue
        obj = json.loads(original)
        if kind == 1:
            obj["type"] = rng.choice(["fil", "MARK", "", 7])
        elif kind == 2:  # a required field missing
            obj.pop(rng.choice([k for k in ("ts", "symbol", "account", "fund") if k in obj]))
        else:  # a number turned hostile
            fields = [k for k in ("qty", "price", "mark_price", "amount", "balance") if k in obj]
            if not fields:
                continue
            obj[rng.choice(fields)] = rng.choice(hostile_values)
        out.append(json.dumps(obj).encode())
    return out


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    work = tmp_path_factory.mktemp("hostile")
    rng = random.Random(12)
    bad = [b for b, _ in hostile_lines()] + fuzzed(rng, 10_000)
    mixed = list(VALID)
    for b in bad:  # anywhere in the file
        mixed.insert(rng.randrange(len(mixed) + 1), b)
    (work / "valid.jsonl").write_bytes(b"\n".join(VALID) + b"\n")
    (work / "mixed.jsonl").write_bytes(b"\n".join(mixed) + b"\n")
    instruments = load_instruments(bundled("instruments.toml"))
    for name in ("valid", "mixed"):
        replay(work / f"{name}.jsonl", instruments, work / name, progress=False)
    return work / "valid", work / "mixed", len(bad)


def test_outputs_equal_those_of_the_valid_lines(replays: tuple[Path, Path, int]) -> None:
    valid, mixed, _ = replays
    for name in OUTPUTS:
        if name != "dead_letters":
            assert (mixed / f"{name}.jsonl").read_bytes() == (valid / f"{name}.jsonl").read_bytes()


def test_every_hostile_line_is_a_bounded_dead_letter(replays: tuple[Path, Path, int]) -> None:
    valid, mixed, n_bad = replays
    letters = [json.loads(x) for x in (mixed / "dead_letters.jsonl").read_bytes().splitlines()]
    before = len((valid / "dead_letters.jsonl").read_bytes().splitlines())
    assert len(letters) == before + n_bad
    assert max(len(json.dumps(d)) for d in letters) < 2_000  # bounded: input and reason cut
    fields = [d["field"] for d in letters]
    for hostile, field in hostile_lines():  # each named by its own field
        assert field in fields, (hostile[:80], field)
    assert fields.count("$size") >= 3
