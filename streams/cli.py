"""The ``adl-monitor`` command."""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal
from importlib import resources
from pathlib import Path

import orjson

from streams.engine.config import EngineConfig
from streams.engine.errors import AdlMonitorError
from streams.engine.instruments import load_instruments
from streams.pipeline.settings import Settings


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


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        bootstrap=args.bootstrap, topic_prefix=args.topic_prefix, partitions=args.partitions
    )


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from streams.pipeline.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings(args)
    instruments = load_instruments(args.instruments or settings.instruments or bundled_toml())
    from streams.pipeline.metrics import Metrics
    from streams.pipeline.web import build_app, serve

    metrics = Metrics(instruments)
    worker = Worker(
        settings, instruments, EngineConfig(), on_output=metrics.observe, on_tick=metrics.tick
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        runner = None
        if args.metrics_port:  # /metrics and the read API
            runner = await serve(build_app(worker, metrics), args.metrics_addr, args.metrics_port)
        try:
            stats = await worker.run(stop_when_idle=args.exit_when_idle)
        finally:
            if runner is not None:
                await runner.cleanup()
        print(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode())

    asyncio.run(run())
    return 0


def _produce(args: argparse.Namespace) -> int:
    import asyncio

    from streams.pipeline.producer import produce_file
    from streams.pipeline.topics import Topics
    from streams.pipeline.worker import ensure_topics

    settings = _settings(args)

    async def run() -> int:
        await ensure_topics(settings, Topics(settings.topic_prefix))
        return await produce_file(settings, Path(args.events), args.rate)

    sent = asyncio.run(run())
    print(f"produced {sent} events to {settings.bootstrap}", file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from streams.demo import run_demo

    instruments = load_instruments(args.instruments or bundled_toml())
    return asyncio.run(
        run_demo(
            Path(args.events), instruments, args.rate, args.metrics_port, args.exit_after_scenario
        )
    )


def _webhooks(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from streams.notify.webhooks import Dispatcher, WebhookConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    secret = args.secret or os.environ.get("ADL_WEBHOOK_SECRET", "")
    config = WebhookConfig(
        url=args.url,
        secret=secret,
        stages=frozenset(args.stages.split(",")),
        min_light=args.min_light,
        min_notional=Decimal(args.min_notional),
        rank_alerts=not args.no_rank_alerts,
        slack=args.slack,
    )
    dispatcher = Dispatcher(_settings(args), config)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, dispatcher.stop)
        stats = await dispatcher.run()
        print(orjson.dumps(stats).decode())

    asyncio.run(run())
    return 0


def bundled_toml() -> str:
    return str(bundled("instruments.toml"))


def _kafka_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (env ADL_BOOTSTRAP)")
    parser.add_argument("--topic-prefix", help="prefix of every topic (env ADL_TOPIC_PREFIX)")
    parser.add_argument("--partitions", type=int, help="partitions of new topics (ADL_PARTITIONS)")


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

    wk = sub.add_parser(
        "worker",
        help="run the streaming worker against a Kafka cluster",
        description="Settings come from ADL_* environment variables (see README) or flags.",
    )
    _kafka_flags(wk)
    wk.add_argument("--instruments", help="instruments TOML (env ADL_INSTRUMENTS)")
    wk.add_argument("--exit-when-idle", action="store_true", help="stop once inputs are drained")
    wk.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("ADL_METRICS_PORT", "0")),
        help="serve /metrics and the read API on this port (env ADL_METRICS_PORT; 0 = off)",
    )  # fmt: skip
    wk.add_argument(
        "--metrics-addr", default=os.environ.get("ADL_METRICS_ADDR", "127.0.0.1"),
        help="address for /metrics (env ADL_METRICS_ADDR; 0.0.0.0 in a container)",
    )  # fmt: skip
    wk.set_defaults(func=_worker)

    dm = sub.add_parser(
        "demo", help="the whole pipeline on this machine: embedded broker, worker, producer"
    )
    dm.add_argument("events", nargs="?", default=str(bundled("cascade.jsonl")))
    dm.add_argument("--instruments", help="instruments TOML (default: bundled)")
    dm.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    dm.add_argument("--metrics-port", type=int, default=9464, help="Prometheus port (9464)")
    dm.add_argument("--delay", type=float, default=0.0, help="seconds before producing starts")
    dm.add_argument(
        "--exit-after-scenario", action="store_true", help="stop once the scenario is processed"
    )
    dm.set_defaults(func=_demo)

    wh = sub.add_parser(
        "webhooks", help="deliver ADL triggers and rank alerts to a webhook (signed, retried)"
    )
    wh.add_argument("--url", required=True, help="the receiver's URL")
    wh.add_argument("--secret", help="whsec_... signing secret (env ADL_WEBHOOK_SECRET)")
    wh.add_argument("--stages", default="imminent,triggered", help="ADL stages to send")
    wh.add_argument("--min-light", type=int, default=5, help="rank alerts from this light up")
    wh.add_argument("--min-notional", default="0", help="rank alerts of positions from this size")
    wh.add_argument("--no-rank-alerts", action="store_true", help="send ADL triggers only")
    wh.add_argument("--slack", action="store_true", help="Slack-compatible bodies")
    _kafka_flags(wh)
    wh.set_defaults(func=_webhooks)

    pr = sub.add_parser("produce", help="produce a JSONL event file to the input topics")
    pr.add_argument("events", nargs="?", default=str(bundled("cascade.jsonl")))
    pr.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    _kafka_flags(pr)
    pr.set_defaults(func=_produce)
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
