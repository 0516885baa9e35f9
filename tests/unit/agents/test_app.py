"""The Faust app the agents run: what it asks of its Kafka client."""

from __future__ import annotations

import asyncio

from streams.agents.app import FETCH_WAIT_MS, AccountAgents
from streams.pipeline.settings import Settings
from tests.helpers import bundled_instruments


def test_the_consumer_faust_makes_long_polls_at_most_the_agents_fetch_wait() -> None:
    """Faust makes its aiokafka consumer with a fetch wait of 1,500 ms and no setting for
    it: a fetch in flight with nothing new held the first fetch of a takeover's
    positions that long. The client Faust's consumer thread makes (at its start, here
    without a broker: nothing connects before ``start``) carries the agents' wait,
    which aiokafka hands its fetcher at ``start``. Fails if Faust makes its client
    another way (the wait would be Faust's again)."""

    async def made() -> int:
        agents = AccountAgents(Settings(bootstrap="127.0.0.1:9"), bundled_instruments())
        client = agents.app.consumer._thread._create_worker_consumer(agents.app.transport)
        try:
            return int(client._fetch_max_wait_ms)
        finally:
            await client.stop()

    wait_ms = asyncio.run(made())
    assert FETCH_WAIT_MS < 1500
    assert wait_ms == FETCH_WAIT_MS
