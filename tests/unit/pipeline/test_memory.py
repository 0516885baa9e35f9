"""Freed heap memory goes back to the system when the worker trims (glibc); what a load
made once makes is frozen out of the cyclic collector's walks; its full collections
are counted and timed."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.pipeline import memory
from streams.pipeline.memory import FullCollections, HeapTrimmer, collector_paused


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_trim_gives_back_what_the_heap_kept() -> None:
    trimmer = HeapTrimmer(every_s=0)
    if not trimmer.available or not Path("/proc/self/status").exists():
        pytest.skip("malloc_trim is glibc's (Linux)")
    # ~200 MB of 1 KB payloads (above Python's small-object allocator: malloc's heap),
    # one in 50 kept: the heap cannot shrink from its top, the freed pages stay in RSS
    kept, freed = [], []
    for i in range(200_000):
        (kept if i % 50 == 0 else freed).append(bytes(1000 + i % 7))
    del freed
    held = rss_mb()
    assert trimmer.maybe_trim()
    released = held - rss_mb()
    assert released > 100, f"{released:.0f} MB given back of ~190 MB freed"
    assert len(kept) == 4_000


def test_it_trims_at_most_every_interval() -> None:
    trimmer = HeapTrimmer(every_s=3600)
    assert not trimmer.maybe_trim()  # the first interval has not passed
    assert trimmer.trims == 0


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The process's frozen objects as before the test (a freeze is process-wide)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def walked_by_a_full_collection(obj: object) -> bool:
    """Whether the collector still tracks ``obj`` in a generation it walks: frozen
    objects are in none (``gc.get_objects`` lists the three generations only)."""
    return any(o is obj for o in gc.get_objects(2)) or any(
        o is obj for g in (0, 1) for o in gc.get_objects(g)
    )


@pytest.mark.usefixtures("unfrozen")
def test_a_load_made_once_is_frozen_out_of_the_full_collections() -> None:
    before = gc.get_freeze_count()
    with collector_paused(freeze=True):
        assert not gc.isenabled()
        state = {f"account-{k}": {"qty": k} for k in range(20_000)}  # 20,001 containers
    assert gc.isenabled()
    assert gc.get_freeze_count() - before >= 20_001
    assert not walked_by_a_full_collection(state)
    assert not walked_by_a_full_collection(state["account-7"])
    kept = state["account-7"]
    del state  # frozen, yet freed when its last reference goes (no cycle among them)
    assert kept == {"qty": 7}


@pytest.mark.usefixtures("unfrozen")
def test_a_load_made_again_and_again_is_not_frozen() -> None:
    before = gc.get_freeze_count()
    with collector_paused():
        state = [{"k": k} for k in range(1_000)]
    assert gc.get_freeze_count() == before
    assert walked_by_a_full_collection(state)


def test_full_collections_are_counted_and_timed() -> None:
    collections = FullCollections().install()
    try:
        gc.collect(0)  # the youngest generation only: not a full collection
        assert collections.count == 0
        started = time.perf_counter()
        gc.collect()
        took = time.perf_counter() - started
        assert collections.count == 1
        assert 0 < collections.longest_s <= took
        assert collections.total_s == collections.longest_s
        assert collections.take_longest() <= took
        assert collections.longest_s == 0.0  # taken: the next report's starts afresh
        assert collections.count == 1  # the count is the process's, never taken
    finally:
        collections.remove()
    assert collections not in gc.callbacks
    gc.collect()
    assert collections.count == 1  # removed: no longer counts


class Node:  # a container with a weak reference: a cycle of two can be watched
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.mark.usefixtures("unfrozen")
def test_what_survives_a_full_collection_is_frozen_and_the_garbage_freed_first() -> None:
    collections = FullCollections(freeze_survivors=True).install()
    try:
        alive = [{"k": k} for k in range(1_000)]
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector frees it
        dead = weakref.ref(a)
        del a, b
        gc.collect()
        assert dead() is None  # freed by that collection, not frozen with the rest
        assert not walked_by_a_full_collection(alive)
        assert not walked_by_a_full_collection(alive[5])
        later = [{"k": k} for k in range(10)]  # made after: walked by the next one
        assert walked_by_a_full_collection(later)
        gc.collect()
        assert not walked_by_a_full_collection(later)
    finally:
        collections.remove()


@pytest.mark.usefixtures("unfrozen")
def test_without_freeze_survivors_a_full_collection_freezes_nothing() -> None:
    collections = FullCollections().install()
    try:
        alive = [{"k": k} for k in range(100)]
        gc.collect()
        assert walked_by_a_full_collection(alive)
    finally:
        collections.remove()


@pytest.mark.usefixtures("unfrozen")
def test_a_cycle_that_died_frozen_is_freed_after_a_thaw() -> None:
    """Frozen survivors are given back every ``thaw_every_s``: a cycle made garbage
    after it was frozen is freed by the full collection after that, not kept forever."""
    collections = FullCollections(freeze_survivors=True, thaw_every_s=3600).install()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        gc.collect()  # survives: frozen
        assert not walked_by_a_full_collection(a)
        del a, b  # garbage now, in a cycle, frozen: no collection frees it
        gc.collect()
        assert dead() is not None
        assert collections.thaws == 0
        collections.thaw_every_s = 0.0  # an hour has passed
        gc.collect()  # given back, not frozen
        assert collections.thaws == 1
        collections.thaw_every_s = 3600.0
        gc.collect()  # walks them: the cycle is freed
        assert dead() is None
    finally:
        collections.remove()


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    """The collector's thresholds and the process's collections as before the test."""
    thresholds = gc.get_threshold()
    collections = memory.process_collections()
    freeze, freeze_young = collections.freeze_survivors, collections.freeze_young
    yield
    gc.set_threshold(*thresholds)
    collections.freeze_survivors, collections.freeze_young = freeze, freeze_young


def young_collections_during(make: Callable[[], object]) -> int:
    """How many collections of the youngest generation ran while ``make`` did."""
    ran: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            ran.append(1)

    gc.callbacks.append(count)
    try:
        make()
    finally:
        gc.callbacks.remove(count)
    return len(ran)


@pytest.mark.usefixtures("default_thresholds", "unfrozen")
def test_a_long_running_command_collects_the_young_generation_far_less_often() -> None:
    gc.set_threshold(700, 10, 10)  # Python's default
    gc.collect()

    def make_and_keep() -> object:  # 20,000 containers alive at once: no cycle, nothing freed
        return [{"k": k} for k in range(20_000)]

    assert young_collections_during(make_and_keep) >= 20_000 // 700 - 3  # ~28 at 700
    collections = memory.long_running_collections()
    assert collections is memory.process_collections()
    assert collections.freeze_survivors
    assert gc.get_threshold()[1:] == (10, 10)  # the older generations' as they were
    gc.collect()
    assert young_collections_during(make_and_keep) == 0  # 20,000 < 100,000
    # a cycle of garbage is still freed: by the young collection after 100,000 more
    a, b = Node(), Node()
    a.other, b.other = b, a
    dead = weakref.ref(a)
    del a, b
    kept = [{"k": k} for k in range(memory.YOUNG_COLLECTION_EVERY + 1_000)]
    assert dead() is None
    assert len(kept) == 101_000


@pytest.mark.usefixtures("unfrozen")
def test_freeze_young_freezes_what_survives_a_young_collection_and_frees_the_garbage() -> None:
    collections = FullCollections(freeze_survivors=True, freeze_young=True).install()
    gc.disable()  # only the collections the test asks for
    try:
        gc.collect()
        alive = [{"k": k} for k in range(100)]
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        del a, b
        gc.collect(0)  # the youngest generation only
        assert collections.count == 1  # the one before: none since
        assert dead() is None  # garbage in a cycle: freed by it, not frozen
        assert not walked_by_a_full_collection(alive)
        assert not walked_by_a_full_collection(alive[3])
    finally:
        gc.enable()
        collections.remove()


@pytest.mark.usefixtures("unfrozen")
def test_after_a_thaw_young_collections_freeze_nothing_until_a_full_one_walked_them() -> None:
    collections = FullCollections(freeze_survivors=True, freeze_young=True).install()
    gc.disable()  # only the collections the test asks for
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        gc.collect(0)  # survives: frozen
        del a, b  # garbage now, in a cycle, frozen
        collections.thaw_every_s = 0.0  # an hour has passed
        gc.collect(0)  # gives the frozen back
        assert collections.thaws == 1
        collections.thaw_every_s = 3600.0
        later = [{"k": k} for k in range(10)]
        gc.collect(0)  # would have frozen them all again, the dead cycle with them
        assert walked_by_a_full_collection(later)
        assert dead() is not None  # a young collection does not walk the old generation
        gc.collect()  # the full one walks them: the cycle is freed, the rest frozen
        assert dead() is None
        assert not walked_by_a_full_collection(later)
    finally:
        gc.enable()
        collections.remove()


@pytest.mark.usefixtures("default_thresholds", "unfrozen")
def test_young_survivors_are_frozen_only_when_asked_for() -> None:
    collections = memory.long_running_collections(freeze_young=True)
    assert (collections.freeze_survivors, collections.freeze_young) == (True, True)
    assert not memory.long_running_collections().freeze_young  # the worker's, the agents'
    assert memory.long_running_collections().freeze_survivors  # full ones' still frozen
