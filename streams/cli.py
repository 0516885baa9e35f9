"""The ``adl-monitor`` command."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import ssl
import sys
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from streams.engine.config import EngineConfig
from streams.engine.errors import AdlMonitorError, ConfigError
from streams.engine.fixed import to_str
from streams.engine.instruments import load_instruments
from streams.pipeline.settings import Settings, secret_from_env, whole_number
from streams.scenario.preset import PRESETS


def bundled(name: str) -> Path:
    """Path of a file shipped in ``streams/data`` (instruments, example cascade)."""
    return Path(str(resources.files("streams.data").joinpath(name)))


def _long_running(freeze_young: bool = False) -> None:
    """A command that builds the state event by event and keeps it: young collections
    far apart, and what survives each full collection frozen (``freeze_young``: each
    collection's; ``replay``'s batch, no event loop: ``pipeline.memory``)."""
    from streams.pipeline.memory import long_running_collections

    long_running_collections(freeze_young)


def _engine_build() -> str:
    """Which engine runs: the Python modules, or those compiled by mypyc
    (``tools/compile_engine.py``, a copy first on ``PYTHONPATH``)."""
    from streams.engine import engine

    return "engine compiled by mypyc" if engine.__file__.endswith(".so") else "engine as Python"


def _replay(args: argparse.Namespace) -> int:
    from streams.replay.runner import replay

    _long_running(freeze_young=True)
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
        f"({result.events_per_second:,.0f} events/s, {_engine_build()}); outputs in {args.out}",
        file=sys.stderr,
    )
    if args.report:
        from streams.replay.report import write_report

        print(f"report: {write_report(args.out, args.report)}", file=sys.stderr)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import dataclasses
    import resource
    import time

    from streams.scenario import spec as specs
    from streams.scenario.simulate import simulate

    if args.preset:
        return _simulate_preset(args)

    base = specs.BUNDLED if args.bundled else specs.ScenarioSpec()
    fields = ("seed", "accounts", "minutes", "crash_start_min", "crash_minutes", "rebound",
              "crash_mark_ms", "calm_mark_ms", "fund_per_account")  # fmt: skip
    chosen: dict[str, Any] = {
        name: getattr(args, name) for name in fields if getattr(args, name) is not None
    }
    if args.symbols:
        known = {s.symbol: s for s in specs.ALL_SYMBOLS}
        unknown = sorted(set(args.symbols.split(",")) - set(known))
        if unknown:
            raise ConfigError(f"--symbols: unknown {unknown}; known: {sorted(known)}")
        chosen["symbols"] = tuple(known[name] for name in args.symbols.split(","))
    spec = dataclasses.replace(base, **chosen)
    if args.bootstrap:
        _topics_ready(_settings(args))  # refused credentials: said now, not after simulating
    started = time.perf_counter()
    out = Path(args.out)
    instruments = load_instruments(args.instruments)
    progress = False if args.quiet else None
    book = None
    if args.inverse_accounts:
        from streams.scenario.inverse_book import instruments_toml, simulate_with_inverse_book

        result, book = simulate_with_inverse_book(
            spec, instruments, out, args.inverse_accounts, progress
        )
        toml = out.with_name(out.name + ".instruments.toml")
        toml.write_text(Path(args.instruments).read_text() + instruments_toml())
    else:
        result = simulate(spec, instruments, out, progress=progress)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = result.stats
    print(
        f"wrote {result.events:,} events to {out} in {elapsed:.1f} s (peak RSS {peak_mb:,.0f} MB): "
        f"{stats.liquidations} liquidations through the book, {stats.deleveraged} positions "
        f"auto-deleveraged against {stats.adl_fills} counterparties; insurance fund "
        f"{to_str(result.fund_start)} -> {to_str(result.fund_end)}"
        + (f"; {to_str(stats.uncovered)} neither could cover" if stats.uncovered else ""),
        file=sys.stderr,
    )
    if book is not None:
        b = book.stats
        print(
            f"with an inverse book (BTCUSD, {args.inverse_accounts:,} BTC wallets): "
            f"{b.liquidations} liquidations through the book, {b.deleveraged} positions "
            f"auto-deleveraged against {b.adl_fills} counterparties; fund (BTC) "
            f"{to_str(book.fund_start)} -> {to_str(book.fund_end)}; replay it with "
            f"--instruments {out.name}.instruments.toml",
            file=sys.stderr,
        )
    if args.bootstrap:
        _send(args, out)
    return 0


def _simulate_preset(args: argparse.Namespace) -> int:
    import resource
    import time

    from streams.scenario import preset

    ignored = [flag for flag, value in (
        ("--bundled", args.bundled), ("--minutes", args.minutes),
        ("--crash-start-min", args.crash_start_min), ("--crash-minutes", args.crash_minutes),
        ("--rebound", args.rebound), ("--crash-mark-ms", args.crash_mark_ms),
        ("--calm-mark-ms", args.calm_mark_ms), ("--fund-per-account", args.fund_per_account),
        ("--symbols", args.symbols)) if value]  # fmt: skip
    if ignored:
        raise ConfigError(f"--preset sets these itself: {', '.join(ignored)} (only --accounts, "
                          "--seed and --out apply)")  # fmt: skip
    if args.accounts is not None and args.accounts < 2:
        raise ConfigError("--accounts: at least 2")
    if args.seed is not None and args.seed < 0:
        raise ConfigError("--seed: a whole number >= 0 with --preset")
    spec = preset.scaled(preset.PRESETS[args.preset], args.accounts, args.seed)
    out = Path(args.out)
    instruments = out.with_suffix(".instruments.toml")
    if args.bootstrap:
        _topics_ready(_settings(args))
    started = time.perf_counter()
    stats = preset.generate(spec, out, instruments, progress=False if args.quiet else None)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"wrote {stats.events:,} events to {out} and the instruments to {instruments} in "
        f"{elapsed:.1f} s (peak RSS {peak_mb:,.0f} MB): {stats.accounts:,} accounts, "
        f"{stats.symbols} symbols, {stats.positions:,} positions opened; "
        f"{stats.liquidations:,} liquidations, {stats.deleveraged:,} of them "
        f"auto-deleveraged against {stats.adl_fills:,} counterparty fills; busiest "
        f"timestamp {stats.busiest_ts} with {stats.busiest_fills:,} liquidation and ADL "
        f"fills; fund {stats.fund_start:,.2f} -> {stats.fund_end:,.2f}\n"
        f"replay it: adl-monitor replay {out} --instruments {instruments}",
        file=sys.stderr,
    )
    if args.bootstrap:
        _send(args, out)
    return 0


def _metrics_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port", type=_port, default=os.environ.get("ADL_METRICS_PORT", "0"),
        help="serve /metrics on this port (env ADL_METRICS_PORT; 0 = off)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-addr", default=os.environ.get("ADL_METRICS_ADDR", "127.0.0.1"),
        help="address for /metrics (env ADL_METRICS_ADDR; 0.0.0.0 in a container)",
    )  # fmt: skip


def advertised_url(addr: str, port: int) -> str:
    """The read API's URL as other hosts reach it (an address that listens everywhere
    is not one they can dial: the host's name instead)."""
    host = socket.gethostname() if addr in ("", "0.0.0.0", "::") else addr  # noqa: S104
    return f"http://{host}:{port}"


def _port(raw: str) -> int:
    """A TCP port (argparse applies it to the env default too: a bad value is one line)."""
    port = whole_number(raw.strip(), max_digits=5)
    if port is None or port > 65535:
        raise argparse.ArgumentTypeError(f"a port number 0-65535, got {raw!r}")
    return port


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env(
        bootstrap=args.bootstrap, topic_prefix=args.topic_prefix, partitions=args.partitions
    )
    for warning in settings.security_warnings():
        print(f"adl-monitor: warning: {warning}", file=sys.stderr)
    return settings


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from streams.pipeline.worker import Worker

    _long_running()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings(args)
    instruments = load_instruments(args.instruments or settings.instruments or bundled_toml())
    from streams.pipeline.metrics import Metrics
    from streams.pipeline.web import build_app, serve

    metrics = Metrics(instruments)
    token = secret_from_env(os.environ, "ADL_API_TOKEN")  # the read API's, if any
    worker = Worker(
        settings, instruments, EngineConfig(), on_output=metrics.observe, on_tick=metrics.tick
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        runner = None
        if args.metrics_port:  # /metrics and the read API
            app = build_app(worker, metrics, token)
            runner = await serve(app, args.metrics_addr, args.metrics_port)
        try:
            stats = await worker.run(stop_when_idle=args.exit_when_idle)
        finally:
            if runner is not None:
                await runner.cleanup()
        print(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode())

    asyncio.run(run())
    return 0


def _produce(args: argparse.Namespace) -> int:
    _send(args, Path(args.events))
    return 0


def _send(args: argparse.Namespace, events: Path) -> int:
    """Create the topics if needed and produce the file to them (``--rate`` paces)."""
    import asyncio

    from streams.pipeline.producer import produce_file

    settings = _settings(args)
    _topics_ready(settings)
    sent = asyncio.run(produce_file(settings, events, args.rate))
    print(f"produced {sent} events to {settings.bootstrap}", file=sys.stderr)
    return sent


def _topics_ready(settings: Settings, extra: tuple[Any, ...] = ()) -> None:
    """Create the topics if needed: the first use of Kafka, so that an unreachable broker
    or refused credentials end the command here, in one line (``main``)."""
    import asyncio

    from streams.pipeline.topics import Topics
    from streams.pipeline.worker import ensure_topics

    asyncio.run(ensure_topics(settings, Topics(settings.topic_prefix), extra))


def _account_agents(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka.errors import KafkaError
    from faust.worker import Worker as FaustWorker

    from streams.agents.app import INTERNAL, AccountAgents
    from streams.agents.changelog import long_segments, long_segments_warning

    _long_running()
    settings = _settings(args)
    instruments = load_instruments(args.instruments or settings.instruments or bundled_toml())
    _topics_ready(settings, INTERNAL)
    url = args.advertised_url or advertised_url(args.metrics_addr, args.metrics_port)
    agents = AccountAgents(
        settings, instruments, summary_interval_ms=args.summary_interval_ms, url=url
    )
    try:
        found = asyncio.run(long_segments(settings, agents.changelog_topics()))
    except KafkaError as exc:  # a broker without DescribeConfigs (Tansu): advice only
        found = {}
        print(f"warning: changelog topics' segments not checked: {exc!r}", file=sys.stderr)
    for topic, segment_ms in sorted(found.items()):
        print(f"warning: {long_segments_warning(settings, topic, segment_ms)}", file=sys.stderr)
    if args.metrics_port:  # /metrics and the read API, as the worker's
        from streams.agents.web import serve_api

        token = secret_from_env(os.environ, "ADL_API_TOKEN")
        serve_api(agents, args.metrics_addr, args.metrics_port, token)
    worker = FaustWorker(agents.app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()  # returns on SIGINT/SIGTERM
    return 0


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from streams.demo import run_agents_demo, run_demo

    instruments = load_instruments(args.instruments or bundled_toml())
    run = run_agents_demo if args.agents else run_demo
    return asyncio.run(
        run(Path(args.events), instruments, args.rate, args.metrics_port, args.exit_after_scenario)
    )


def _webhooks(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from streams.notify.signing import webhook_secret
    from streams.notify.webhooks import Dispatcher, WebhookConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = WebhookConfig(
        url=args.url,
        secret=webhook_secret(os.environ),
        stages=frozenset(args.stages.split(",")),
        min_light=args.min_light,
        min_notional=Decimal(args.min_notional),
        rank_alerts=not args.no_rank_alerts,
        slack=args.slack,
        max_age_s=args.max_age_s,
    )
    dispatcher = Dispatcher(_settings(args), config)
    if args.metrics_port:
        from prometheus_client import start_http_server

        registry = dispatcher.metrics.registry
        start_http_server(args.metrics_port, args.metrics_addr, registry=registry)

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


class _ShowDefaults(argparse.HelpFormatter):
    """Every option's default in its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adl-monitor", description="Auto-deleveraging risk monitor for perpetual futures."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A subcommand whose --help says what it does (its one-line help, unless it has a
        longer description) and every default."""
        kwargs.setdefault("description", help[0].upper() + help[1:] + ".")
        return commands.add_parser(name, help=help, formatter_class=_ShowDefaults, **kwargs)

    rp = command("replay", help="replay a JSONL event file offline, deterministically")
    rp.add_argument(
        "events",
        nargs="?",
        default=str(bundled("cascade.jsonl")),
        help="JSONL events (default: the bundled example cascade)",
    )
    rp.add_argument(
        "--instruments",
        default=str(bundled("instruments.toml")),
        help="instruments TOML (default: the bundled BTC/ETH/SOL/XRP/ADA perpetuals)",
    )
    rp.add_argument("--out", default="replay-out", help="output folder (default: replay-out)")
    rp.add_argument(
        "--rank-refresh-ms",
        type=int,
        default=EngineConfig().rank_refresh_ms,
        help="rank and light the ADL queue at the first mark of every this many ms of event "
        "time (default 1000)",
    )
    rp.add_argument(
        "--projection-interval-ms",
        type=int,
        default=EngineConfig().projection_interval_ms,
        help="emit a fund projection at most this often per fund, in event time",
    )
    rp.add_argument("--quiet", action="store_true", help="no progress bar")
    rp.add_argument("--report", metavar="DIR", help="also write an HTML report with plots to DIR")
    rp.set_defaults(func=_replay)

    sm = command(
        "simulate",
        help="generate a seeded liquidation cascade as input events (file or Kafka)",
        description="A crash like 10 October 2025 with the venue's liquidations, insurance "
        "fund and ADL fills. Defaults: 10k accounts, 60 minutes, crash of 30 minutes.",
    )
    sm.add_argument("--out", default="scenario.jsonl", help="JSONL file (default scenario.jsonl)")
    sm.add_argument("--bundled", action="store_true", help="start from the bundled small spec")
    sm.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="a scenario at a published scale, with its own instruments file written beside "
        "--out (FILE.instruments.toml); hyperliquid-2025-10-10: 437,723 accounts, 162 "
        "assets, ~3.2M events in 12 minutes, one timestamp of >20k liquidation and ADL fills "
        "(--accounts scales it down)",
    )
    sm.add_argument("--seed", type=int, help="random seed (default 7): same seed, same bytes")
    sm.add_argument("--accounts", type=int, help="number of accounts (default 10000)")
    sm.add_argument("--minutes", type=float, help="length of the scenario (default 60)")
    sm.add_argument("--crash-start-min", type=float, help="crash starts at (default 10)")
    sm.add_argument("--crash-minutes", type=float, help="crash lasts (default 30)")
    sm.add_argument("--rebound", type=float, help="share of the fall recovered (default 0.4)")
    sm.add_argument("--crash-mark-ms", type=int, help="mark interval in the crash (100)")
    sm.add_argument("--calm-mark-ms", type=int, help="mark interval outside it (1000)")
    sm.add_argument("--fund-per-account", type=float, help="initial fund per account (1)")
    sm.add_argument("--symbols", help="comma list (default BTC,ETH,SOL,XRP,ADA USDT)")
    sm.add_argument(
        "--inverse-accounts",
        type=int,
        default=0,
        help="also an inverse book: BTCUSD (1 USD contracts settled in BTC, its own fund) "
        "traded by this many BTC wallets on BTCUSDT's crash; writes FILE.instruments.toml "
        "beside --out to replay it with (default 0: none)",
    )
    sm.add_argument(
        "--instruments",
        default=str(bundled("instruments.toml")),
        help="instruments TOML (default: the bundled perpetuals)",
    )
    sm.add_argument("--quiet", action="store_true", help="no progress bar")
    sm.add_argument("--rate", type=float, help="with --bootstrap: events per second")
    _kafka_flags(sm)
    sm.set_defaults(func=_simulate)

    wk = command(
        "worker",
        help="run the streaming worker against a Kafka cluster",
        description=(
            "Settings come from ADL_* environment variables (see docs/streaming.md) or flags."
        ),
    )
    _kafka_flags(wk)
    wk.add_argument("--instruments", help="instruments TOML (env ADL_INSTRUMENTS)")
    wk.add_argument("--exit-when-idle", action="store_true", help="stop once inputs are drained")
    _metrics_flags(wk)
    wk.set_defaults(func=_worker)

    aa = command(
        "account-agents",
        help="Faust agents: per-account margin tables partitioned by account (stage A), "
        "fund desk (stage B)",
        description="Liquidations, bankruptcies and account risk from the account and mark "
        "topics; fund projections and ADL triggers from the partitions' summaries. One Faust "
        "worker per process (run several to share the partitions). Settings as for `worker` "
        "(ADL_* environment variables or flags).",
    )
    _kafka_flags(aa)
    aa.add_argument("--instruments", help="instruments TOML (env ADL_INSTRUMENTS)")
    aa.add_argument("--loglevel", default="warning", help="Faust worker log level")
    aa.add_argument(
        "--summary-interval-ms",
        type=int,
        default=100,
        help="event time between a partition's fund summaries (default 100: at most one "
        "per mark group of the bundled cascade's crash)",
    )
    _metrics_flags(aa)
    aa.add_argument(
        "--advertised-url", default=os.environ.get("ADL_ADVERTISED_URL"),
        help="where the other processes reach this one's read API, to forward a request "
        "for an account it owns (env ADL_ADVERTISED_URL; default http://<metrics-addr or, "
        "for 0.0.0.0, this host's name>:<metrics-port>)",
    )  # fmt: skip
    aa.set_defaults(func=_account_agents)

    dm = command(
        "demo", help="the whole pipeline on this machine: embedded broker, worker, producer"
    )
    dm.add_argument("events", nargs="?", default=str(bundled("cascade.jsonl")),
                    help="JSONL events (default: the bundled cascade)")  # fmt: skip
    dm.add_argument("--instruments", help="instruments TOML (default: bundled)")
    dm.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    dm.add_argument("--metrics-port", type=int, default=9464, help="Prometheus port")
    dm.add_argument("--delay", type=float, default=0.0, help="seconds before producing starts")
    dm.add_argument(
        "--exit-after-scenario", action="store_true", help="stop once the scenario is processed"
    )
    dm.add_argument(
        "--agents",
        action="store_true",
        help="run the partitioned Faust path (account-agents, 3 partitions) instead of the "
        "single-process worker",
    )
    dm.set_defaults(func=_demo)

    wh = command(
        "webhooks", help="deliver ADL triggers and rank alerts to a webhook (signed, retried)"
    )
    wh.add_argument("--url", required=True, help="the receiver's URL")
    # the secret is never a flag (flags show in `ps`): ADL_WEBHOOK_SECRET or a file
    wh.add_argument("--stages", default="imminent,triggered", help="ADL stages to send")
    wh.add_argument("--min-light", type=int, default=5, help="rank alerts from this light up")
    wh.add_argument("--min-notional", default="0", help="rank alerts of positions from this size")
    wh.add_argument("--no-rank-alerts", action="store_true", help="send ADL triggers only")
    wh.add_argument("--slack", action="store_true", help="Slack-compatible bodies")
    wh.add_argument(
        "--max-age-s", type=float, default=900.0,
        help="dead-letter a message still failing this long after its first try (900)",
    )  # fmt: skip
    _metrics_flags(wh)
    _kafka_flags(wh)
    wh.set_defaults(func=_webhooks)

    pr = command("produce", help="produce a JSONL event file to the input topics")
    pr.add_argument("events", nargs="?", default=str(bundled("cascade.jsonl")),
                    help="JSONL events (default: the bundled cascade)")  # fmt: skip
    pr.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    _kafka_flags(pr)
    pr.set_defaults(func=_produce)
    return parser


class _LastKafkaError(logging.Handler):
    """Remembers aiokafka's last error log: why a connection failed (its exception only
    says that none succeeded)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()[:300]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kafka_errors = _LastKafkaError()
    logging.getLogger("aiokafka").addHandler(kafka_errors)
    try:
        return int(args.func(args))
    except AdlMonitorError as exc:
        print(f"adl-monitor: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, ssl.SSLError) as exc:  # unreachable, refused credentials or certificate
        where = os.environ.get("ADL_BOOTSTRAP") or getattr(args, "bootstrap", None) or "?"
        protocol = os.environ.get("ADL_SECURITY_PROTOCOL", "PLAINTEXT")
        reason = f" ({kafka_errors.last})" if kafka_errors.last else ""
        print(f"adl-monitor: cannot use Kafka at {where} with {protocol}: {exc}{reason}",
              file=sys.stderr)  # fmt: skip
        # said in one line: the refused connection's read task, collected on the way
        # out, would add its own traceback ("Future exception was never retrieved")
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
