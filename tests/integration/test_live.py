"""Live is replay: the worker consumes while several producers write (each paced by event
time, with send jitter, the market data behind the account events); within the allowed
lateness the outputs equal the engine's over the file and no event is late. Past it,
the late events are counted (``late_events``, ``adl_late_events_total``)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

from streams.brokers.base import Broker
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import Worker, WorkerStats, ensure_topics
from tests.integration.test_pipeline import (
    CASCADE,
    INSTRUMENTS,
    assert_same,
    expected,  # noqa: F401  (the fixture: the engine's outputs over the file)
    read_outputs,
    replayed,  # noqa: F401  (the fixture it is made from)
    settings_for,
)

PRODUCERS = Path(__file__).with_name("live_producers.py")
SPEEDUP = 30  # 12 minutes of market in 24 s
LINES = len(CASCADE.read_bytes().splitlines())  # the file's lines: every one is consumed


async def live(
    settings: Settings, jitter_ms: int, lag_ms: int, spread_ms: int | None = None
) -> WorkerStats:
    """The worker running while the producers write; stopped once they are done and it
    has applied everything. ``spread_ms``: how far apart in event time the producers may
    drift (unbounded if None)."""
    await ensure_topics(settings, Topics(settings.topic_prefix))
    worker = Worker(settings, INSTRUMENTS)
    running = asyncio.create_task(worker.run())
    producers = await asyncio.create_subprocess_exec(
        sys.executable, str(PRODUCERS), settings.bootstrap, settings.topic_prefix,
        str(CASCADE), str(SPEEDUP), str(jitter_ms), str(lag_ms),
        *([] if spread_ms is None else [str(spread_ms)]),
    )  # fmt: skip
    assert await asyncio.wait_for(producers.wait(), timeout=240) == 0
    while worker.stats.consumed < LINES or len(worker.sequencer):
        await asyncio.sleep(0.2)
    worker.stop()
    return await asyncio.wait_for(running, timeout=60)


def test_live_outputs_equal_replay_within_the_allowed_lateness(
    kafka: Broker,
    expected,  # noqa: F811
) -> None:
    # the marks come 20 ms behind (600 ms of event time at 30x), each send up to 10 ms
    # late (300 ms), and no producer gets more than 1 s of event time ahead of what the
    # others have on the broker (a stalled send holds the others back instead of
    # letting them run ahead): 2 s of allowed lateness covers it whatever the machine's
    # pauses. The idle flush (nothing pending, nothing arriving) must not fire during
    # such a pause either: 10 s of wall time.
    settings = dataclasses.replace(
        settings_for(kafka), allowed_lateness_ms=2_000, idle_flush_ms=5_000
    )
    stats = asyncio.run(live(settings, jitter_ms=10, lag_ms=20, spread_ms=1_000))
    assert stats.late_events == 0
    assert_same(asyncio.run(read_outputs(settings)), expected)


def test_events_later_than_the_bound_are_counted(kafka: Broker) -> None:
    # the marks 100 ms behind: 3 s of event time, with no lateness allowed
    settings = dataclasses.replace(settings_for(kafka), allowed_lateness_ms=0)
    stats = asyncio.run(live(settings, jitter_ms=10, lag_ms=100))
    assert stats.late_events > 0
    assert stats.applied == LINES - 3  # all applied, out of order (3 dead letters)
