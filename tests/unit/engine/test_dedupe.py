"""The bounded dedupe window: re-sends inside it are ignored, memory stays bounded."""

import pytest

from streams.engine.config import EngineConfig
from streams.engine.dedupe import DedupeWindow
from streams.engine.engine import Engine
from tests.helpers import bundled_instruments, deposit, fill, raw

MINUTE = 60_000


def test_an_id_is_remembered_for_the_window_and_at_most_one_slice_more():
    # 10 minutes in 16 slices of 37.5 s: f-1 (at 0) shares the slice [0, 37.5 s) with
    # f-0 (at 37.499 s); the slice goes once all of it is older than 10 minutes
    window = DedupeWindow(window_ms=10 * MINUTE, max_ids=100)
    window.add("f-1", 0)
    window.add("f-0", 37_499)
    window.add("f-2", 9 * MINUTE)
    window.add("f-3", 10 * MINUTE + 1)  # f-1 is past the window, f-0 not: both kept
    assert ("f-1" in window, "f-0" in window) == (True, True)
    window.add("f-4", 10 * MINUTE + 37_499)  # f-0 is exactly 10 minutes old: still in
    assert "f-1" in window
    window.add("f-5", 10 * MINUTE + 37_500)  # the whole slice is past: both leave
    assert ("f-1" in window, "f-0" in window) == (False, False)
    assert [f"f-{i}" in window for i in (2, 3, 4, 5)] == [True] * 4
    assert len(window) == 4


def test_a_late_id_joins_the_newest_slice():
    window = DedupeWindow(window_ms=16_000, max_ids=100)  # slices of 1 s
    window.add("f-new", 5_000)
    window.add("f-late", 1_000)  # came after a later event: kept with it
    window.add("f-next", 17_999)  # the slice of 1 s would have gone; 5 s is in
    assert "f-late" in window
    window.add("f-last", 22_000)  # [5 s, 6 s) is older than 16 s now
    assert ("f-late" in window, "f-new" in window, len(window)) == (False, False, 2)


def test_at_most_max_ids_are_kept_oldest_first():
    window = DedupeWindow(window_ms=10 * MINUTE, max_ids=3)  # slices of one id
    for i in range(5):
        window.add(f"f-{i}", i)
    assert [f"f-{i}" in window for i in range(5)] == [False, False, True, True, True]
    assert len(window) == 3
    # 32 ids at most: slices of 2, the two oldest go together when the 33rd comes
    window = DedupeWindow(window_ms=10 * MINUTE, max_ids=32)
    for i in range(33):
        window.add(f"f-{i}", i)
    kept = [i for i in range(33) if f"f-{i}" in window]
    assert (kept, len(window)) == (list(range(2, 33)), 31)


def test_an_id_added_twice_is_kept_once() -> None:
    window = DedupeWindow(window_ms=1_000, max_ids=10, by_owner=True)
    window.add("fill:a:1", 0, "a")
    window.add("fill:a:1", 500, "a")  # a restore of what is already there
    assert (len(window), window.of("a")) == (1, {"fill:a:1": 0})
    window.add("fill:a:2", 1_200, "a")
    assert (len(window), window.of("a")) == (1, {"fill:a:2": 1_200})


def test_a_bad_window_is_refused():
    with pytest.raises(ValueError, match="must be > 0"):
        DedupeWindow(window_ms=0)


def test_the_engine_ignores_a_resend_inside_the_window_and_applies_one_after_it():
    config = EngineConfig(dedupe_window_ms=5 * MINUTE)
    engine = Engine(bundled_instruments(), config)
    engine.apply(deposit("d", "A", "100000"))
    engine.apply(fill("f-1", "A", "buy", "1", "20000", ts=1))
    engine.apply(fill("f-1", "A", "buy", "1", "20000", ts=4 * MINUTE))  # re-sent: ignored
    assert engine.accounts["A"].position("BTCUSDT").qty == raw("1")
    assert engine.stats.duplicates == 1
    # a later event moves the window past f-1: the same id is now a new fill
    engine.apply(fill("f-2", "A", "buy", "1", "20000", ts=6 * MINUTE))
    engine.apply(fill("f-1", "A", "buy", "1", "20000", ts=6 * MINUTE))
    assert engine.accounts["A"].position("BTCUSDT").qty == raw("3")
    assert len(engine.seen_ids) == 2  # f-2 and the new f-1; the deposit's id has left too


def test_each_owners_ids_leave_with_the_window_and_come_back_on_restore() -> None:
    window = DedupeWindow(window_ms=1_000, max_ids=10, by_owner=True)
    window.add("fill:a:1", 0, "a")
    window.add("fill:b:1", 500, "b")
    window.add("fill:a:2", 900, "a")
    assert window.of("a") == {"fill:a:1": 0, "fill:a:2": 900}
    window.add("fill:b:2", 1_200, "b")  # 0 is past the 1 s window now
    assert window.of("a") == {"fill:a:2": 900}
    again = DedupeWindow(window_ms=1_000, max_ids=10, by_owner=True)
    # rows come back account by account, not in time order: restored oldest first
    again.restore([("fill:b:2", 1_200, "b"), ("fill:a:2", 900, "a"), ("fill:b:1", 500, "b")])
    assert list(again.of("b")) == ["fill:b:1", "fill:b:2"]
    assert "fill:a:2" in again
    assert "fill:a:1" not in again


def test_a_window_not_kept_by_owner_says_so() -> None:
    window = DedupeWindow(window_ms=1_000, max_ids=10)  # the single-process worker's
    window.add("fill:a:1", 0, "a")
    assert "fill:a:1" in window
    with pytest.raises(ValueError, match="by_owner"):
        window.of("a")
