"""Replay throughput on simulated cascades, beside its baselines over the same file.

Every row is one events file, timed in one run:

- ``parse``: orjson over every line, nothing else: the floor any replay stands on;
- ``decode``: parse + validation into events (``decode_line``), no engine;
- ``replay``: the whole ``replay`` (engine and output files), this tree;
- ``earlier`` (with ``--against DIR``): the same replay by another checkout of the project
  (e.g. ``git worktree add /tmp/before c232a44``), in a subprocess with that tree first on
  ``sys.path``: the speed-up of this tree is ``earlier / replay``;
- ``compiled`` (with ``--compiled [DIR]``): the same replay by this tree's engine compiled
  by mypyc (``tools/compile_engine.py``; into a temporary folder when no DIR is given),
  in a subprocess the same way: its speed-up is ``replay / compiled``, and its output
  files are compared with this tree's byte for byte (``same``).

The ratio column is replay / parse. Scenarios come from ``simulate``: the golden 10k
scenario's shape (12 minutes, crash 2-8 min; ``tests/golden/scenario_10k.json``) at each
``--accounts``, or ``--events FILE``. Usage:

    python benchmarks/bench_replay.py --accounts 10000 [--against /tmp/before] [--compiled]
    python benchmarks/bench_replay.py --events big.jsonl --instruments big.toml
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import orjson
from beside import compiled_engine

from streams.cli import bundled
from streams.engine.decode import decode_line
from streams.engine.errors import AdlMonitorError
from streams.engine.instruments import load_instruments
from streams.replay.runner import replay
from streams.scenario.simulate import simulate
from streams.scenario.spec import ScenarioSpec

GOLDEN_SHAPE = replace(ScenarioSpec(), minutes=12.0, crash_start_min=2.0, crash_minutes=6.0)


def parse_only(path: Path) -> float:
    t0 = time.perf_counter()
    with path.open("rb") as source:
        for line in source:
            orjson.loads(line)
    return time.perf_counter() - t0


def decode_only(path: Path, symbols: frozenset[str]) -> float:
    t0 = time.perf_counter()
    with path.open("rb") as source:
        for line in source:
            with contextlib.suppress(AdlMonitorError):
                decode_line(line, symbols)
    return time.perf_counter() - t0


def replay_elsewhere(tree: Path, events: Path, instruments: Path, out: Path) -> float:
    """Wall time of ``replay`` by the checkout at ``tree`` (its own code, this Python)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    subprocess.run(  # noqa: S603  # our own CLI, from a path the caller gave
        [sys.executable, "-m", "streams.cli", "replay", str(events), "--instruments",
         str(instruments), "--out", str(out), "--quiet"],
        env=env, check=True, capture_output=True, cwd=tree,
    )  # fmt: skip
    return time.perf_counter() - t0


def same_files(one: Path, other: Path) -> bool:
    names = sorted(p.name for p in one.iterdir())
    return names == sorted(p.name for p in other.iterdir()) and all(
        (one / name).read_bytes() == (other / name).read_bytes() for name in names
    )


def measure(
    events: Path, instruments_path: Path, against: Path | None, compiled: Path | None, tmp: Path
) -> None:
    instruments = load_instruments(instruments_path)
    lines = sum(1 for _ in events.open("rb"))
    parse_s = parse_only(events)
    decode_s = decode_only(events, frozenset(instruments))
    replay_s = replay(events, instruments, tmp / "out", progress=False).elapsed_seconds
    row = (
        f"{lines:>9,} {parse_s:>8.2f} {lines / parse_s:>11,.0f} {decode_s:>8.2f}"
        f" {replay_s:>8.2f} {lines / replay_s:>10,.0f} {replay_s / parse_s:>7.0f}x"
    )
    if against is not None:
        earlier_s = replay_elsewhere(against, events, instruments_path, tmp / "earlier")
        row += f" {earlier_s:>9.2f} {lines / earlier_s:>10,.0f} {earlier_s / replay_s:>8.2f}x"
    if compiled is not None:
        compiled_s = replay_elsewhere(compiled, events, instruments_path, tmp / "compiled")
        same = "yes" if same_files(tmp / "out", tmp / "compiled") else "NO"
        row += f" {compiled_s:>10.2f} {lines / compiled_s:>10,.0f} {replay_s / compiled_s:>8.2f}x"
        row += f" {same:>5}"
    print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, nargs="+", default=[10_000])
    parser.add_argument("--events", type=Path, help="an events file instead of simulating")
    parser.add_argument("--instruments", type=Path, default=Path(bundled("instruments.toml")))
    parser.add_argument("--against", type=Path, help="another checkout to replay beside")
    parser.add_argument(
        "--compiled",
        type=Path,
        nargs="?",
        const=Path(),
        help="also replay through the engine compiled by mypyc in DIR (none: compile now)",
    )
    args = parser.parse_args()
    header = (
        f"{'events':>9} {'parse s':>8} {'parse ev/s':>11} {'decode s':>8} {'replay s':>8}"
        f" {'events/s':>10} {'/parse':>8}"
    )
    if args.against is not None:
        header += f" {'earlier s':>9} {'ev/s':>10} {'speed-up':>9}"
    if args.compiled is not None:
        header += f" {'compiled s':>10} {'ev/s':>10} {'speed-up':>9} {'same':>5}"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        compiled = None if args.compiled is None else compiled_engine(args.compiled, tmp)
        print(header)
        if args.events is not None:
            measure(args.events, args.instruments, args.against, compiled, tmp)
            return
        for n in args.accounts:
            path = tmp / f"events-{n}.jsonl"
            simulate(GOLDEN_SHAPE.scaled(n), load_instruments(args.instruments), path, False)
            measure(path, args.instruments, args.against, compiled, tmp)


if __name__ == "__main__":
    main()
