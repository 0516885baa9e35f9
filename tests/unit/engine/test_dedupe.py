"""The bounded dedupe window: re-sends inside it are ignored, memory stays bounded."""

import pytest

from streams.engine.config import EngineConfig
from streams.engine.dedupe import DedupeWindow
from streams.engine.engine import Engine
from tests.helpers import bundled_instruments, deposit, fill, raw

MINUTE = 60_000


def test_an_id_is_remembered_for_the_window_of_event_time():
    window = DedupeWindow(window_ms=10 * MINUTE, max_ids=100)
    window.add("f-1", 0)
    window.add("f-2", 9 * MINUTE)
    assert "f-1" in window
    window.add("f-3", 10 * MINUTE)  # f-1 is exactly 10 minutes old: still in
    assert "f-1" in window
    window.add("f-4", 10 * MINUTE + 1)  # one ms later it has left
    assert "f-1" not in window
    assert ("f-2" in window, "f-3" in window, len(window)) == (True, True, 3)


def test_at_most_max_ids_are_kept_oldest_first():
    window = DedupeWindow(window_ms=10 * MINUTE, max_ids=3)
    for i in range(5):
        window.add(f"f-{i}", i)
    assert [f"f-{i}" in window for i in range(5)] == [False, False, True, True, True]
    assert len(window) == 3


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
