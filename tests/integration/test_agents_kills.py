"""``account-agents`` SIGKILLed ten times at seeded random moments while the exchange is
still writing (the bundled cascade at 100 events/s: ~2.5 minutes), started again each
time from its changelog; then a last life runs to the end. The outputs, after dedupe by
``adl-source``/``adl-index``, must be replay's (as after one SIGKILL).

A long fault run (eleven Faust start-ups and recoveries), so it is not in ``make test``'s
budget: ``pytest -m soak tests/integration/test_agents_kills.py``."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streams.brokers import Broker
from streams.brokers.base import free_port
from streams.pipeline.producer import produce_file
from tests.integration.test_account_agents import (
    CASCADE,
    agents_process,
    assert_same_as_replay,
    complete,
    expected,  # noqa: F401  (the fixture: replay's outputs)
    prepared,
    read_until,
)

KILLS = 10
RATE_PER_S = 100


@pytest.mark.soak
def test_ten_random_sigkills_of_account_agents(
    kafka: Broker,
    expected: dict[str, list[dict[str, Any]]],  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = prepared(kafka, produce=False)
    producer = threading.Thread(
        target=lambda: asyncio.run(produce_file(settings, CASCADE, rate_per_s=RATE_PER_S))
    )
    producer.start()
    rng = random.Random(10)
    log = tmp_path / "agents.log"
    lives = []
    began = time.monotonic()
    for _ in range(KILLS):
        life = agents_process(settings, log)
        lived = rng.uniform(6.0, 16.0)  # a Faust start-up and recovery take ~5 s here
        time.sleep(lived)
        life.send_signal(signal.SIGKILL)
        life.wait()
        lives.append((round(time.monotonic() - began, 1), round(lived, 1)))
    still_writing = producer.is_alive()  # every kill landed mid-stream
    print(f"killed at (seconds into the run, seconds lived): {lives}")
    port = free_port()
    last = agents_process(settings, log, port)
    try:
        producer.join()
        got, duplicates = asyncio.run(read_until(settings, complete(expected, port)))
    finally:
        last.send_signal(signal.SIGTERM)
        last.wait(timeout=60)
    print(f"duplicates dropped after dedupe: {duplicates}")
    assert still_writing
    assert_same_as_replay(got, expected, restarted=True)
