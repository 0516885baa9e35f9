"""The mark fan-out is a Faust task, which nothing restarts: it must survive its own
errors (here: no broker at all) and stop only when cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.agents.fanout import MarkFanOut
from streams.brokers.base import free_port
from streams.pipeline.settings import Settings


async def never(*_: Any) -> Any:
    raise AssertionError("nothing to forward without a broker")


def test_the_fan_out_starts_again_after_an_error(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    fan_out = MarkFanOut(
        settings, "mark_prices", "g", frozenset({"BTCUSDT"}), send=never, dead_letter=never,
        session_timeout_ms=10_000, heartbeat_interval_ms=3_000,
    )  # fmt: skip

    async def scenario() -> None:
        task = asyncio.create_task(fan_out.run())
        await asyncio.sleep(3.0)
        assert not task.done()  # still trying
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level("ERROR", logger="adl_monitor.agents.fanout"):
        asyncio.run(scenario())
    assert fan_out.restarts >= 2  # 0.5 s, then 1 s, ...
    assert "mark fan-out failed: starting again in 0.5 s" in caplog.text
    assert fan_out.assignment() == set()  # it holds nothing: another process may
    assert fan_out.positions() == {}
