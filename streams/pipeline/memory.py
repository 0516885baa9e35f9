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

Python's full (generation 2) collection walks every container object still alive, and
the state is millions of them: the preset's engine after its opening (437,723 accounts,
9.6M tracked objects) took 2.1-2.6 s per full collection, the whole process stopped.
What a load made once makes (a restore, a first warm copy, a snapshot) is moved out of
the collector's reach when the load ends (``gc.freeze``): the first full collection
after the preset's engine was unpickled with the collector paused took 2.15 s inside
the crash window, 0.01 s frozen. State built event by event (an opening, a start-up
that reads the inputs again, the crash itself) is not: the long-running commands
(``worker``, ``account-agents``, ``replay``) freeze what survives each full collection
(``FullCollections.freeze_survivors``), so each object is walked by one full collection
in its life, not by every one. The preset's opening applied 1.17x faster (188 s vs 220
s, ``benchmarks/bench_window.py --compare-collector``); two ``account-agents`` at
200,000 accounts, over the opening: full collections of at most 0.2 s and 3.3 s in all,
against up to 2.6 s and 14.5 s. The pauses that remain are counted and reported.

The youngest generation is collected every 700 container allocations by default, and
the engine allocates hundreds per event (immutable account values, queue rows, signals
and their payloads): a young collection ran every few events and walked what those
events still held. Most of it dies within its event, so the long-running commands
collect the young generation every ``YOUNG_COLLECTION_EVERY`` allocations instead:
what dies in between is never walked. In the preset's crash (1.2M-1.6M lines,
compiled engine) the collector's functions were 24% of a ``perf`` profile; the four
segments took 143.2 s against 174.1 s at 700 (1.22x, both at once, a core each). A
cycle of garbage waits at most that many allocations longer (a few MB).

Those young collections still walked what the events keep (each account's new values,
the indexes' entries): ~265,000 objects each, 0.19 s, and nothing found to free; the
next generation's walked the same again (1.4M objects, 1.6 s), 12% of the crash in
all. ``replay`` (one batch, only the engine's acyclic state and its output files, no
event loop, no client library) freezes what survives every collection
(``freeze_young``): each object the engine keeps is walked once. The crash (400,000
lines after 1.2M, compiled) took 153.4 s against 162.4 s (1.06x, both at once), the
same signals. The worker and the account agents do not: their Kafka clients and event
loop make reference cycles (futures, exceptions with their tracebacks) that may live
past one young collection, and a frozen cycle waits for the hourly thaw.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TRIM_EVERY_S = 60.0
YOUNG_COLLECTION_EVERY = 100_000  # container allocations (Python's default: 700)
THAW_EVERY_S = 3600.0  # how often the frozen survivors are walked once (``FullCollections``)


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
def collector_paused(freeze: bool = False) -> Iterator[None]:
    """Python's cyclic collector off meanwhile (and on again after, if it was): for code
    that makes millions of objects that all live on (a restore, an unpickled snapshot),
    whose growth would trigger full collections that find nothing to free.

    ``freeze``, for a load made once (a restore, a snapshot, a first copy): when it
    ends, every object alive is frozen (``gc.freeze``) and no later collection walks
    them again (each full one would, for seconds). They are still freed when their last
    reference goes; only a reference cycle among them would never be (the state is
    acyclic: immutable values, dicts and arrays of them). Not for code that runs again
    and again (a copy's refresh): what is garbage in a cycle then would be kept."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


class FullCollections:
    """How many full (generation 2) collections ran while installed, and the longest
    (seconds of wall time: the process's threads all wait for it). A ``gc.callbacks``
    entry: nothing in it may allocate much, lock or log.

    ``freeze_survivors``: after each full collection, every object alive is frozen
    (``gc.freeze``): right after one, no garbage is left to freeze with them. The next
    full collection walks only what was promoted since, and its threshold (a quarter of
    what the last one left) shrinks with it. What that would keep: an object that
    outlives a full collection and only later becomes garbage inside a reference cycle
    (the engine's state is acyclic; freed by its count like any other otherwise). So
    every ``thaw_every_s`` the frozen objects are given back instead (``gc.unfreeze``):
    the next full collection walks them all once (seconds at the preset's scale, once
    an hour), frees any such cycle, and freezes what lives on again.

    ``freeze_young`` (with ``freeze_survivors``): the survivors of every collection are
    frozen, the youngest generation's too (``replay``: module docstring). After a thaw
    nothing is frozen again until the full collection that walks them has run."""

    def __init__(
        self,
        freeze_survivors: bool = False,
        thaw_every_s: float = THAW_EVERY_S,
        freeze_young: bool = False,
    ) -> None:
        self.freeze_survivors = freeze_survivors
        self.freeze_young = freeze_young
        self.thaw_every_s = thaw_every_s
        self._thawed = False  # given back, not yet walked by a full collection
        self.count = 0
        self.thaws = 0
        self.longest_s = 0.0  # since ``take_longest`` (a report's)
        self.longest_ever_s = 0.0  # since installed (the metrics')
        self.total_s = 0.0
        self._started = 0.0
        self._thawed_at = time.monotonic()

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            if phase == "stop" and self.freeze_young and self.freeze_survivors:
                self._freeze_or_thaw()
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.count += 1
        self.total_s += took
        self.longest_s = max(self.longest_s, took)
        self.longest_ever_s = max(self.longest_ever_s, took)
        if not self.freeze_survivors:
            return
        self._thawed = False  # walked by this one
        self._freeze_or_thaw()

    def _freeze_or_thaw(self) -> None:
        """After a collection (it is over: its lists are whole again)."""
        if self._thawed:
            return  # the frozen were given back: the next full collection walks them
        now = time.monotonic()
        if now - self._thawed_at >= self.thaw_every_s:
            self._thawed_at = now
            self.thaws += 1
            self._thawed = True
            gc.unfreeze()  # walked, and any cycle among them freed, by the next full one
        else:
            gc.freeze()

    def install(self) -> FullCollections:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def take_longest(self) -> float:
        """The longest since the last call (then forgotten: one per report)."""
        longest, self.longest_s = self.longest_s, 0.0
        return longest


_PROCESS_COLLECTIONS: FullCollections | None = None


def process_collections() -> FullCollections:
    """The process's one ``FullCollections``, installed at the first call."""
    global _PROCESS_COLLECTIONS  # one collector per process
    if _PROCESS_COLLECTIONS is None:
        _PROCESS_COLLECTIONS = FullCollections().install()
    return _PROCESS_COLLECTIONS


def long_running_collections(freeze_young: bool = False) -> FullCollections:
    """The collector set for a command that builds its state event by event and keeps
    it (``replay``, ``worker``, ``account-agents``): young collections every
    ``YOUNG_COLLECTION_EVERY`` allocations, full ones counted and their survivors frozen;
    ``freeze_young``: every collection's survivors (``replay``; module docstring)."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, oldest)
    collections = process_collections()
    collections.freeze_survivors = True
    collections.freeze_young = freeze_young
    return collections
