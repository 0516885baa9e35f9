"""Replay throughput on simulated cascades, beside a decode-only pass over the same file.

The decode-only pass (orjson + validation, no engine) is the baseline: the ratio says
what share of the time the engine itself takes. Scenarios come from ``simulate`` (the
default 60-minute spec, or ``--small`` for the bundled 12-minute shape). Usage:

    python benchmarks/bench_replay.py --accounts 400 10000 [--small]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from streams.cli import bundled
from streams.engine.decode import decode_line
from streams.engine.errors import AdlMonitorError
from streams.engine.instruments import load_instruments
from streams.replay.runner import replay
from streams.scenario.simulate import simulate
from streams.scenario.spec import BUNDLED, ScenarioSpec


def decode_only(path: Path, symbols: frozenset[str]) -> float:
    t0 = time.perf_counter()
    with path.open("rb") as source:
        for line in source:
            with contextlib.suppress(AdlMonitorError):
                decode_line(line, symbols)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, nargs="+", default=[400, 10_000])
    parser.add_argument("--small", action="store_true", help="the bundled scenario's shape")
    args = parser.parse_args()
    instruments = load_instruments(bundled("instruments.toml"))
    print(
        f"{'accounts':>9} {'events':>9} {'replay s':>9} {'events/s':>10} {'decode s':>9}"
        f" {'decode ev/s':>12} {'ratio':>7}"
    )
    for n in args.accounts:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.jsonl"
            spec = (BUNDLED if args.small else ScenarioSpec()).scaled(n)
            events = simulate(spec, instruments, path, progress=False).events
            decode_s = decode_only(path, frozenset(instruments))
            result = replay(path, instruments, Path(tmp) / "out", progress=False)
            print(
                f"{n:>9,} {events:>9,} {result.elapsed_seconds:>9.2f}"
                f" {events / result.elapsed_seconds:>10,.0f} {decode_s:>9.2f}"
                f" {events / decode_s:>12,.0f} {result.elapsed_seconds / decode_s:>6.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
