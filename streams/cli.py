"""The ``adl-monitor`` command."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import orjson

from streams.engine.config import EngineConfig
from streams.engine.errors import AdlMonitorError
from streams.engine.instruments import load_instruments


def bundled(name: str) -> Path:
    """Path of a file shipped in ``streams/data`` (instruments, example cascade)."""
    return Path(str(resources.files("streams.data").joinpath(name)))


def _replay(args: argparse.Namespace) -> int:
    from streams.replay.runner import replay

    instruments = load_instruments(args.instruments)
    config = EngineConfig(
        rank_refresh_ms=args.rank_refresh_ms,
        projection_interval_ms=args.projection_interval_ms,
    )
    result = replay(
        args.events, instruments, args.out, config, progress=False if args.quiet else None
    )
    summary = result.summary
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    print(
        f"replayed {summary['lines']} lines in {result.elapsed_seconds:.2f} s "
        f"({result.events_per_second:,.0f} events/s); outputs in {args.out}",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adl-monitor", description="Auto-deleveraging risk monitor for perpetual futures."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    rp = sub.add_parser("replay", help="replay a JSONL event file offline, deterministically")
    rp.add_argument(
        "events",
        nargs="?",
        default=str(bundled("cascade.jsonl")),
        help="JSONL events (default: the bundled example cascade)",
    )
    rp.add_argument(
        "--instruments",
        default=str(bundled("instruments.toml")),
        help="instruments TOML (default: the bundled BTC/ETH/SOL perpetuals)",
    )
    rp.add_argument("--out", default="replay-out", help="output folder (default: replay-out)")
    rp.add_argument(
        "--rank-refresh-ms",
        type=int,
        default=EngineConfig().rank_refresh_ms,
        help="re-rank the ADL queue at most this often, in event time (default 1000)",
    )
    rp.add_argument(
        "--projection-interval-ms",
        type=int,
        default=EngineConfig().projection_interval_ms,
        help="emit a fund projection at most this often per fund, in event time",
    )
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.set_defaults(func=_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AdlMonitorError as exc:
        print(f"adl-monitor: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
