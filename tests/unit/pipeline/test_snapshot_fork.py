"""Snapshots made by a forked child: the state at the fork, whatever the parent applies
after it; a child that dies or fails is a failure said, never a snapshot."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from streams.cli import bundled
from streams.engine.engine import Engine
from streams.engine.instruments import load_instruments
from streams.pipeline import snapshots
from streams.pipeline.snapshot_fork import SnapshotFailed, SnapshotFork, _frames, can_fork
from streams.pipeline.snapshots import Snapshot
from tests.helpers import signals_of

pytestmark = pytest.mark.skipif(not can_fork(), reason="no os.fork here")

KEY = "k" * 32
INSTRUMENTS = load_instruments(bundled("instruments.toml"))
LINES = Path(bundled("cascade.jsonl")).read_bytes().splitlines()


class _Unpicklable:
    """Pickling it fails after ``sleep_s`` (a child that is slow, then breaks)."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.sleep_s = sleep_s

    def __reduce__(self) -> Any:
        time.sleep(self.sleep_s)
        raise TypeError("cannot pickle this")


def test_the_snapshot_holds_the_state_at_the_fork_not_what_the_parent_applied_after() -> None:
    engine = Engine(INSTRUMENTS)
    signals_of(engine, LINES[:6000])
    snapshot = Snapshot(engine, 6000, engine.last_ts_ms, {"t.fills:0": (7, [9])})

    async def run() -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        fork = SnapshotFork.start(snapshot, KEY, os.urandom(16))
        after = signals_of(engine, LINES[6000:])  # the parent goes on at once, the child pickles
        await asyncio.wait_for(fork.done.wait(), 60)
        return fork.records(), after

    records, after = asyncio.run(run())
    assert len(records) >= 2
    assert records[-1][0] == snapshots.HEADER_KEY
    got = snapshots.decode(records, KEY)  # signed with the key: verifies
    assert got is not None
    resume = {"t.fills:0": (7, [9])}
    assert (got.seq, got.applied_ts, got.resume) == (6000, snapshot.applied_ts, resume)
    # the rest of the cascade from the child's state gives what the parent gave: had the
    # child pickled the parent's later state, the fills would be copies (no signals)
    assert after  # the second half of the cascade does say something
    assert signals_of(got.engine, LINES[6000:]) == after


def test_forked_records_are_what_the_loop_would_write_for_the_same_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 16 * 1024)  # several chunks, in the child too
    engine = Engine(INSTRUMENTS)
    signals_of(engine, LINES[:3000])
    snapshot = Snapshot(engine, 3000, engine.last_ts_ms)
    snapshot_id = b"0123456789abcdef"

    async def run() -> list[tuple[bytes, bytes]]:
        fork = SnapshotFork.start(snapshot, KEY, snapshot_id)
        await asyncio.wait_for(fork.done.wait(), 60)
        return fork.records()

    forked = asyncio.run(run())
    assert len(forked) > 3
    assert forked == snapshots.encode(snapshot, KEY, snapshot_id)  # same bytes, same order


def ended(sleep_s: float, kill: bool) -> SnapshotFork:
    """A child making a snapshot that fails after ``sleep_s`` (or killed at once), ended."""

    async def run() -> SnapshotFork:
        fork = SnapshotFork.start(Snapshot(_Unpicklable(sleep_s), 1, 0), KEY, os.urandom(16))  # type: ignore[arg-type]
        if kill:
            os.kill(fork.pid, signal.SIGKILL)
        await asyncio.wait_for(fork.done.wait(), 60)
        return fork

    return asyncio.run(run())


def test_a_child_that_fails_is_said_with_its_exit_status() -> None:
    with pytest.raises(SnapshotFailed, match="exit status 1"):
        ended(0.0, kill=False).records()


def test_a_child_killed_is_said_and_gives_no_snapshot() -> None:
    with pytest.raises(SnapshotFailed, match="killed by signal 9"):
        ended(30.0, kill=True).records()


def test_a_fork_cancelled_stops_its_child() -> None:
    async def run() -> SnapshotFork:
        fork = SnapshotFork.start(Snapshot(_Unpicklable(30.0), 1, 0), KEY, os.urandom(16))  # type: ignore[arg-type]
        began = time.monotonic()
        fork.cancel()
        assert time.monotonic() - began < 10  # not the child's 30 s
        return fork

    fork = asyncio.run(run())
    assert fork.done.is_set()
    with pytest.raises(ProcessLookupError):
        os.kill(fork.pid, 0)  # reaped: gone
    with pytest.raises(SnapshotFailed, match="killed"):
        fork.records()


def test_records_cut_short_are_refused() -> None:
    whole = b"\x00\x00\x00\x03key\x00\x00\x00\x05value"
    assert _frames(whole) == [(b"key", b"value")]
    for cut in range(1, len(whole)):
        with pytest.raises(SnapshotFailed, match="inside a frame"):
            _frames(whole[:cut])


def test_the_worker_counts_a_snapshot_not_made_and_can_take_the_next() -> None:
    from streams.pipeline.settings import Settings
    from streams.pipeline.worker import Worker

    worker = Worker(Settings(snapshot_key=KEY, snapshot_interval_s=0), INSTRUMENTS)
    signals_of(worker.engine, LINES[:100])
    worker.seq = 100

    async def run() -> tuple[object, object, object]:
        worker._fork = SnapshotFork.start(Snapshot(_Unpicklable(), 1, 0), KEY, os.urandom(16))  # type: ignore[arg-type]
        due_while_making = worker._snapshot_due(0.0)  # one at a time
        await asyncio.wait_for(worker._fork.done.wait(), 60)
        made = worker._snapshot_made()
        return due_while_making, made, worker._snapshot_due(0.0)

    due_while_making, made, due_after = asyncio.run(run())
    assert due_while_making is None
    assert made is None  # not a snapshot: nothing to write
    assert worker.stats.snapshot_failures == 1
    assert worker.stats.snapshots == 0
    assert isinstance(due_after, Snapshot)  # the next one may start
    assert due_after.seq == 100


def test_a_child_holds_none_of_the_parents_sockets() -> None:
    """The metrics port closed by the worker (it died, or stopped) is free for the next
    worker while a child still pickles: the child kept no inherited descriptor."""
    import socket

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]

    async def run() -> bool:
        fork = SnapshotFork.start(Snapshot(_Unpicklable(30.0), 1, 0), KEY, os.urandom(16))  # type: ignore[arg-type]
        try:
            listening.close()
            deadline = time.monotonic() + 10
            while True:
                again = socket.socket()
                again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    again.bind(("127.0.0.1", port))
                    again.listen()
                    return True
                except OSError:
                    if time.monotonic() > deadline:
                        return False  # still held: by the child
                    await asyncio.sleep(0.05)
                finally:
                    again.close()
        finally:
            fork.cancel()

    assert asyncio.run(run())


def test_the_worker_kills_a_child_that_takes_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.pipeline import snapshot_fork
    from streams.pipeline.settings import Settings
    from streams.pipeline.worker import Worker

    monkeypatch.setattr(snapshot_fork, "CHILD_TIMEOUT_S", 0.5)
    worker = Worker(Settings(snapshot_key=KEY, snapshot_interval_s=0), INSTRUMENTS)

    async def run() -> tuple[object, object, int]:
        fork = SnapshotFork.start(Snapshot(_Unpicklable(30.0), 1, 0), KEY, os.urandom(16))  # type: ignore[arg-type]
        worker._fork = fork
        early = worker._snapshot_made()  # working, not yet too long
        await asyncio.sleep(1.0)
        return early, worker._snapshot_made(), fork.pid

    early, late, pid = asyncio.run(run())
    assert early is None
    assert worker._fork is None  # given up: the next snapshot may start
    assert late is None
    assert worker.stats.snapshot_failures == 1
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
