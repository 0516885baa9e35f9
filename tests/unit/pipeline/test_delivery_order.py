"""What keeps a live feed's partitions in step (``producer.DeliverySpread``) and when the
worker may take a partition's end offset as its end (``worker.end_is_current``): the
demo on a loaded machine counted 100-400 late events without them (docs/streaming.md)."""

import asyncio

import pytest

from streams.pipeline.producer import DeliverySpread
from streams.pipeline.worker import end_is_current


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_an_event_waits_for_every_delivery_more_than_the_spread_earlier():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        spread = DeliverySpread(spread_ms=1_000)
        at_0, at_600, at_900 = (loop.create_future() for _ in range(3))
        spread.sent(0, at_0)
        spread.sent(600, at_600)
        spread.sent(900, at_900)
        # an event at 1,000: 0 is not earlier than 1,000 - 1,000, nothing to wait for
        await asyncio.wait_for(spread.wait_before(1_000), timeout=1)
        assert len(spread) == 3
        # at 1,700: the send at 0 and the one at 600 (< 700) must be delivered first
        waiting = asyncio.ensure_future(spread.wait_before(1_700))
        await _settle()
        assert not waiting.done()
        at_0.set_result(None)
        await _settle()
        assert not waiting.done()  # 600 still in flight
        at_600.set_result(None)
        await asyncio.wait_for(waiting, timeout=1)
        assert len(spread) == 1  # 900 is within the spread of 1,700: not waited for

    asyncio.run(scenario())


def test_a_failed_delivery_is_raised_not_skipped():
    async def scenario() -> None:
        spread = DeliverySpread(spread_ms=10)
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionError("broker away"))
        spread.sent(0, failed)
        with pytest.raises(ConnectionError):
            await spread.wait_before(100)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("fetched_ms", "newest_fetch_ms", "now_ms", "current"),
    [
        (None, 0, 1_000, False),  # never fetched: no end known
        (5_000, 5_000, 5_010, True),  # in the fetch that brought the newest records
        (5_200, 5_000, 5_210, True),  # fetched after it
        (4_900, 5_000, 5_010, False),  # left out of the newer fetches (records buffered)
        (4_900, 5_000, 5_399, False),  # still within the idle flush (500 ms) of it
        (4_900, 5_000, 5_400, True),  # lagging 500 ms: taken as it is, not held
    ],
)
def test_an_end_offset_counts_only_from_a_fetch_as_new_as_the_newest_records(
    fetched_ms, newest_fetch_ms, now_ms, current
):
    assert end_is_current(fetched_ms, newest_fetch_ms, now_ms, idle_flush_ms=500) is current
