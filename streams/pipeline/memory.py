"""The process's memory: freed heap given back to the operating system now and then,
and the cyclic collector paused while millions of long-lived objects are made.

A worker that runs for months allocates and frees the same sizes all day (decoded
events, output payloads, its window of ids), and glibc keeps what is freed inside its
heap for reuse: the soak (``benchmarks/bench_soak.py``) showed the process's RSS step up
by 30-90 MB at a time long after its working set stopped growing, while Python's own
count of live blocks stayed flat. ``malloc_trim(0)`` returns the free pages of every
arena (glibc >= 2.8 also releases free pages inside the heap, not only at its top); it
costs a few milliseconds, so the worker calls it about once a minute. Elsewhere (musl,
macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TRIM_EVERY_S = 60.0


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


class HeapTrimmer:
    """``maybe_trim()`` on every loop; trims at most every ``every_s`` of wall time."""

    def __init__(self, every_s: float = TRIM_EVERY_S) -> None:
        self.every_s = every_s
        self._trim = _malloc_trim()
        self._last = time.monotonic()
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def maybe_trim(self) -> bool:
        now = time.monotonic()
        if self._trim is None or now - self._last < self.every_s:
            return False
        self._last = now
        self._trim(0)
        self.trims += 1
        return True


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic collector off meanwhile (and on again after, if it was): for code
    that makes millions of objects that all live on (a restore, an unpickled snapshot),
    whose growth would trigger full collections that find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
