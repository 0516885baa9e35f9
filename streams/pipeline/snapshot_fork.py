"""A snapshot made off the worker's loop: a forked child pickles and compresses the
engine as it was at the fork, and sends the records back over a pipe.

Made in the loop, a snapshot holds it while the engine is pickled: ~1 s at 10k
accounts, ~5 s at 50k, ~28 s at the preset's 437k (pickle 23 s, zlib 5 s), and no
event is applied meanwhile, in the hour a desk needs the monitor most. ``fork`` gives
the child the parent's memory copy-on-write: the state at the fork, whatever the
parent applies after it, for the price of copying the page tables (~70 ms at 3.3 GB).
The parent reads the records as they come (``loop.add_reader``) and writes them in a
later transaction; the progress committed before the fork already covers the
snapshot's input sequence (``Worker._commit``).

The child only pickles, compresses, signs and writes to the pipe, then leaves with
``os._exit`` (no ``atexit``, no finaliser touching the parent's Kafka sockets). It
restores the default SIGINT/SIGTERM and drops asyncio's wakeup fd first: a signal sent
to the process group must stop it, not be written into the parent's loop. It closes
every descriptor it inherited but the pipe's and stdio: an orphan must not hold the
metrics port or the broker connections. If the
parent dies, the child's next write fails (no reader) and it leaves. Memory: pages the
parent changes while the child runs are copied (at most the parent's RSS again; the
pickle itself is streamed, never held whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import time
from typing import Any, NoReturn

from streams.pipeline.snapshots import HEADER_KEY, Snapshot, write_records

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")  # each key and each value behind its length
_READ_BYTES = 1 << 20
# a child still working after this long is killed (a snapshot is then failed, and the
# next one due): ~60-100 s at the preset's scale on a busy machine. Without a bound, a
# child that hung (a lock some thread held at the fork) would stop every later snapshot
CHILD_TIMEOUT_S = 900.0


class SnapshotFailed(Exception):
    """The child did not deliver a whole snapshot: the reason, for the log."""


def can_fork() -> bool:
    return hasattr(os, "fork")


class SnapshotFork:
    """One snapshot being made by a child process; ``done`` once its pipe closed."""

    def __init__(
        self, seq: int, pid: int, read_fd: int, began: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.seq = seq  # the input sequence the snapshot holds
        self.pid = pid
        self.began = began  # monotonic time of the fork
        self.held_s = time.monotonic() - began  # what the loop waited for: the fork itself
        self.made_s = 0.0  # from the fork to the last record read back
        self.child_max_rss_mb = 0.0  # the child's peak resident memory (mostly shared pages)
        self.done = asyncio.Event()
        self._fd = read_fd
        self._loop = loop
        self._received = bytearray()
        self._status: int | None = None
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._on_readable)

    @classmethod
    def start(cls, snapshot: Snapshot, key: str, snapshot_id: bytes) -> SnapshotFork:
        """Fork a child that writes ``snapshot``'s records; returns at once."""
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(snapshot, key, snapshot_id, read_fd, write_fd)
        os.close(write_fd)
        return cls(snapshot.seq, pid, read_fd, began, loop)

    def _on_readable(self) -> None:
        while True:
            try:
                data = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("snapshot child %d: reading its pipe failed: %s", self.pid, exc)
                data = b""
            if not data:
                self._close()
                return
            self._received += data

    def _close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        _, self._status, usage = os.wait4(self.pid, 0)  # it closed its end: leaving now
        self.made_s = time.monotonic() - self.began
        self.child_max_rss_mb = usage.ru_maxrss / 1024
        self.done.set()

    def expired(self) -> bool:
        """Still being made ``CHILD_TIMEOUT_S`` after the fork."""
        return not self.done.is_set() and time.monotonic() - self.began > CHILD_TIMEOUT_S

    def records(self) -> list[tuple[bytes, bytes]]:
        """The records the child wrote, once ``done``; ``SnapshotFailed`` if it did not
        finish (killed, or an error: its exit status) or what it wrote is cut short."""
        if self._status is None:
            raise SnapshotFailed("still being made")
        if self._status != 0:
            how = (
                f"killed by signal {os.WTERMSIG(self._status)}"
                if os.WIFSIGNALED(self._status)
                else f"exit status {os.waitstatus_to_exitcode(self._status)}"
            )
            raise SnapshotFailed(f"the child making it ended: {how}")
        records = _frames(self._received)
        if not records or records[-1][0] != HEADER_KEY:
            raise SnapshotFailed("the child's records end before the header")
        return records

    def cancel(self) -> None:
        """Stop the child and forget the snapshot (the worker stops)."""
        if self._fd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._close()


def _child(
    snapshot: Snapshot, key: str, snapshot_id: bytes, read_fd: int, write_fd: int
) -> NoReturn:
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        # every inherited descriptor but the pipe's end and stdio: a child still pickling
        # after its parent died must not keep the metrics port bound (a restarted worker
        # could not listen on it) nor the Kafka connections open
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, _max_fd())
        with os.fdopen(write_fd, "wb", buffering=_READ_BYTES) as out:

            def emit(message_key: bytes, value: bytes) -> None:
                out.write(_LENGTH.pack(len(message_key)) + message_key)
                out.write(_LENGTH.pack(len(value)))
                out.write(value)

            write_records(snapshot, key, snapshot_id, emit)
        code = 0
    except BaseException:  # the exit status says it; never return into the loop
        code = 1
    finally:
        os._exit(code)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def _frames(data: Any) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of ``data``; ``SnapshotFailed`` if a frame is cut short."""
    view = memoryview(data)
    records = []
    at = 0
    size = _LENGTH.size
    while at < len(view):
        parts = []
        for _ in range(2):
            if at + size > len(view):
                raise SnapshotFailed("the child's records end inside a frame")
            (length,) = _LENGTH.unpack_from(view, at)
            at += size
            if at + length > len(view):
                raise SnapshotFailed("the child's records end inside a frame")
            parts.append(bytes(view[at : at + length]))
            at += length
        records.append((parts[0], parts[1]))
    return records
