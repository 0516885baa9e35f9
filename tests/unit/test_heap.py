"""The collector policy of long replays (``streams/heap.py``) and what it rests on: the
engine's state makes no reference cycles, so freezing it loses no memory."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import orjson

from streams.engine.decode import decode_event
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError
from streams.heap import Settler
from tests.helpers import bundled_instruments
from tests.unit.agents.test_shard import BUNDLED


@contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_the_engine_makes_no_reference_cycles() -> None:
    """The bundled cascade (liquidations, bankruptcies, ADL triggers, rankings) applied
    with the collector off leaves nothing for it to find: every object the engine drops
    is freed by its reference count, frozen or not."""
    names = frozenset(bundled_instruments())
    events = []
    for line in BUNDLED.read_bytes().splitlines():
        try:
            obj = orjson.loads(line)
            events.append(decode_event(obj, names, obj["type"]))
        except AdlMonitorError:
            continue  # the file's deliberate bad lines (an exception makes a cycle)
    engine = Engine(bundled_instruments())
    # the first calls of some library paths make a few cycles once (numpy's lazy
    # ``inspect.signature`` of a builtin, ``ast.literal_eval``): warmed up first
    warm_up = len(events) // 4
    for event in events[:warm_up]:
        engine.apply(event)
    with collector_off():
        signals = [signal for event in events[warm_up:] for signal in engine.apply(event)]
        found = gc.collect()
    assert len(signals) > 1_000
    assert found == 0


def test_the_heap_is_settled_every_n_events_and_given_back() -> None:
    assert gc.get_freeze_count() == 0
    settler = Settler(every=3)
    settler.tick()
    settler.tick()
    assert gc.get_freeze_count() == 0
    kept = [object()]
    settler.tick()  # the third event: collected, the survivors frozen
    assert settler.settlings == 1
    assert gc.get_freeze_count() > 0
    settler.tick(2)
    assert settler.settlings == 1  # counted again from zero
    settler.release()
    assert gc.get_freeze_count() == 0
    assert kept
