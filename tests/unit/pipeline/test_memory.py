"""Freed heap memory goes back to the system when the worker trims (glibc)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.pipeline.memory import HeapTrimmer


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
