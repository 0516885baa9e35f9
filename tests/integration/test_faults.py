"""Faults under the streaming worker, on a real Apache Kafka: the broker itself killed
(SIGKILL, no controlled shutdown) and started again mid-stream; the worker SIGKILLed at
ten random points of one run, starting each life from the whole input history or from
its last snapshot. Each time the outputs equal the engine's over the file (what
``replay`` writes): nothing lost, nothing written twice.

The broker here is the test's own (the session's broker serves every other test)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from streams.brokers import Broker, apache
from tests.integration.test_pipeline import (
    CASCADE,
    COMPARED,
    assert_same,
    expected,  # noqa: F401  (the fixture: the engine's outputs over the file)
    produced,
    read_outputs,
    replayed,  # noqa: F401  (the fixture it is made from)
    settings_for,
    worker_process,
)

COMMITTED = re.compile(rb"through input sequence (\d+)")
SNAPSHOT = re.compile(rb"snapshot at input sequence (\d+)")
CASCADE_EVENTS = len(CASCADE.read_bytes().splitlines())


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[apache.ApacheKafka]:
    if not apache.available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI requires Apache Kafka: install Java 17+ and Maven")
        pytest.skip("the broker-kill test needs Apache Kafka (Java and Maven)")
    with apache.ApacheKafka(tmp_path / "broker", partitions=3) as broker:
        yield broker


def snapshot_seqs(logs: Iterable[Path]) -> list[int]:
    """The input sequences of the snapshots the workers logging to ``logs`` wrote."""
    return [int(m) for log in logs for m in SNAPSHOT.findall(log.read_bytes())]


def wait_for_commit(log: Path, proc: subprocess.Popen[bytes], at_least: int) -> int:
    """The first committed input sequence >= ``at_least`` the worker logs (0: it ended)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        seqs = [int(m) for m in COMMITTED.findall(log.read_bytes())]
        reached = [s for s in seqs if s >= at_least]
        if reached:
            return reached[0]
        if proc.poll() is not None:
            return 0
        time.sleep(0.05)
    raise AssertionError(f"the worker never committed sequence {at_least}")


def test_the_broker_killed_and_restarted_mid_stream(
    own_kafka: apache.ApacheKafka,
    expected,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = produced(settings_for(own_kafka))
    log = tmp_path / "worker.log"
    worker = worker_process(settings, True, log)
    try:
        assert wait_for_commit(log, worker, 3000) > 0
        own_kafka.kill()
        time.sleep(5)  # the worker meets a dead broker
        own_kafka.restart()
        worker.wait(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()
    text = log.read_text(errors="replace")
    assert worker.returncode == 0, text[-3000:]
    # a transaction the crash left undecided on the broker holds back what read_committed
    # readers see of its partitions until the broker decides it (transaction timeout,
    # 60 s): read until equal, for at most two minutes, then compare
    deadline = time.monotonic() + 120
    got = asyncio.run(read_outputs(settings))
    while time.monotonic() < deadline and any(
        sorted(got[topic]) != sorted(expected[topic]) for topic in COMPARED
    ):
        time.sleep(5)
        got = asyncio.run(read_outputs(settings))
    assert_same(got, expected)


@pytest.mark.parametrize("snapshots", [False, True], ids=["history", "snapshots"])
def test_the_worker_killed_at_ten_random_points(
    kafka: Broker,
    expected,  # noqa: F811
    tmp_path: Path,
    snapshots: bool,
) -> None:
    """Each life starts from the whole history, or (``snapshots``) from the last
    snapshot, taken here at every commit: a kill lands before, in and after them. A life
    catches up on what is left in a few large batches, so it may pass several points at
    once: the next life is killed past where the last one was, and the kills stop when
    a life finishes (on a loaded machine the first release can hold most of the file)."""
    settings = produced(settings_for(kafka))
    env = {"ADL_SNAPSHOT_KEY": "a test key", "ADL_SNAPSHOT_INTERVAL_S": "0"} if snapshots else {}
    points = sorted(random.Random(12).sample(range(500, CASCADE_EVENTS - 500), 10))
    killed_at: list[int] = []
    for life, point in enumerate(points):
        log = tmp_path / f"worker-{life}.log"
        worker = worker_process(settings, True, log, env)
        try:  # at the point, or past where the last life was killed
            reached = wait_for_commit(log, worker, max([point, *killed_at[-1:]]) + 1)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        if snapshot_seqs(tmp_path / f"worker-{k}.log" for k in range(life)):  # one before
            assert b"started from the snapshot at input sequence" in log.read_bytes()
        if not reached:
            break  # it applied everything before the point: nothing left to kill
        killed_at.append(reached)
    # the kills landed mid-stream (a loaded machine makes larger batches: fewer, then),
    # each life went further than the last
    assert len(killed_at) >= 3, killed_at
    assert all(0 < a < b for a, b in itertools.pairwise(killed_at)), killed_at
    assert killed_at[-1] < CASCADE_EVENTS
    last = tmp_path / "worker-last.log"
    worker = worker_process(settings, True, last, env)
    assert worker.wait(timeout=300) == 0, last.read_text(errors="replace")[-3000:]
    text = last.read_text()
    stats = json.loads(text[text.rindex("\n{") :])  # the stats it prints when it ends
    if snapshots:
        # started from the last snapshot the lives before wrote, applied only what follows
        written = snapshot_seqs(tmp_path.glob("worker-[0-9]*.log"))
        assert stats["resumed_at_seq"] == max(written) > 0, stats
        assert stats["applied"] <= CASCADE_EVENTS - max(written), stats
    else:
        assert stats["resumed_at_seq"] == 0
        assert stats["skipped_outputs"] > 0  # recomputed from the history, not written again
    assert_same(asyncio.run(read_outputs(settings)), expected)
