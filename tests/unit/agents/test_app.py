"""The Faust app the agents run: what it asks of its Kafka client."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.agents.app import FETCH_WAIT_MS, AccountAgents
from streams.agents.shard import Shard, Source
from streams.engine.decode import decode_event
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


def test_a_partition_given_back_reads_on_where_its_shard_got_to() -> None:
    """Eager rebalances revoke every partition and give most back. Partition 0's shard,
    put aside with fills delivered through offset 20 (20 buffered, not applied: a
    rewind drops it), balances through 5 (applied), and committed offsets lagging at
    12 and 3: given back, it reads fills on from 20 and balances from 6, not from the
    committed offsets (a re-read of 12-19 and 3-5 began behind everything the moved
    partitions had fetched: 7.8 s at 200,000 accounts). The commit counts 12-19 as
    handled once 20 is. A shard whose input another owner committed past (fills at 22:
    21 applied elsewhere) is not taken up: restored from the changelog and read from
    the committed offsets."""
    instruments = bundled_instruments()
    symbols = frozenset(instruments)
    deposit = {"type": "balance", "event_id": "d", "ts": 1, "account": "a", "amount": "1000",
               "reason": "deposit"}  # fmt: skip
    fill = {"type": "fill", "fill_id": "f-1", "ts": 2, "account": "a", "symbol": "SOLUSDT",
            "side": "buy", "qty": "1", "price": "150"}  # fmt: skip

    async def given_back(committed_fills: int) -> tuple[AccountAgents, dict[TP, int]]:
        agents = AccountAgents(Settings(bootstrap="127.0.0.1:9"), instruments)
        app, consumer = agents.app, agents.app.consumer
        app.topics.add(agents.account_inputs)  # what the conductor does once the agent
        await app.topics._update_indices()  # subscribes: acknowledgements count
        name = agents.topics.name
        fills, balances = TP(name("fills"), 0), TP(name("balances"), 0)
        inputs = agents._inputs_of(0)
        shard: Shard[Any] = Shard(0, instruments)
        agents.shards[0] = shard
        for tp, obj, offset in ((balances, deposit, 5), (fills, fill, 20)):
            token = faust.Event(app, None, b"{}", {}, message(tp, offset))
            agents.acks.delivered(token)
            assert shard.push(decode_event(obj, symbols, obj["type"]), obj,
                              Source(tp.topic, 0, offset), token)  # fmt: skip
            agents.in_order.next_offset[tp] = offset + 1
            if tp == balances:  # applied and acknowledged, not committed yet
                (item,) = shard.release([], flush=True)
                shard.apply(item)
                await agents.acks.ack(app.stream(app.topic(tp.topic)), token)
        for tp in inputs:
            agents.in_order.next_offset.setdefault(tp, 0)
        await agents._on_revoked(app, set(inputs))
        for tp in inputs:  # what Faust's revocation does before it signals
            consumer._acked.pop(tp, None)
            consumer._acked_index.pop(tp, None)
        sought: dict[TP, int] = {}

        async def seek_wait(offsets: dict[TP, int]) -> None:
            sought.update(offsets)

        consumer.assignment = lambda: set(inputs)  # type: ignore[method-assign]
        consumer.seek_wait = seek_wait  # type: ignore[method-assign]
        consumer._committed_offset.update({fills: committed_fills, balances: 3})
        await agents.resume_kept()
        return agents, sought

    async def scenario() -> None:
        agents, sought = await given_back(committed_fills=12)
        name, consumer = agents.topics.name, agents.app.consumer
        fills, balances = TP(name("fills"), 0), TP(name("balances"), 0)
        assert 0 in agents.shards
        assert not agents.kept
        assert sought == {fills: 20, balances: 6}
        assert (agents.in_order.next_offset[fills], agents.in_order.next_offset[balances]) == (
            20, 6,
        )  # fmt: skip
        assert agents.in_order.verdict(fills, 20, 12) == (True, None, None)
        again = faust.Event(agents.app, None, b"{}", {}, message(fills, 20))
        agents.acks.delivered(again)
        await agents.acks.ack(agents.app.stream(agents.app.topic(fills.topic)), again)
        assert consumer._new_offset(fills) == 21  # 12-19 applied here before
        assert consumer._new_offset(balances) is None  # 3-5: nothing acknowledged since

        moved, sought = await given_back(committed_fills=22)
        assert 0 not in moved.shards
        assert not moved.kept
        assert sought == {}

    asyncio.run(scenario())


def message(tp: TP, offset: int) -> ConsumerMessage:
    return ConsumerMessage(tp.topic, 0, offset, 0.0, 0, [], None, b"{}", None, tp=tp)


def test_each_app_has_a_data_directory_of_its_own_removed_at_exit() -> None:
    """Faust makes a data directory even for the memory store. It was one per app id in
    the temp dir, never removed: each test's app (a random topic prefix) left one
    behind. A process making two apps of one id gets two directories, each holding
    where Faust puts its tables, and neither is left once it exits."""
    import subprocess
    import sys
    from pathlib import Path

    program = (
        "import json\n"
        "from streams.agents.app import AccountAgents\n"
        "from streams.pipeline.settings import Settings\n"
        "from tests.helpers import bundled_instruments\n"
        "settings = Settings(bootstrap='127.0.0.1:9', topic_prefix='datadir-')\n"
        "apps = [AccountAgents(settings, bundled_instruments()) for _ in range(2)]\n"
        "print(json.dumps([[a.datadir, str(a.app.conf.tabledir)] for a in apps]))\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, check=True)
    (first, first_tables), (second, _) = orjson.loads(run.stdout.splitlines()[-1])
    assert first != second
    assert Path(first_tables).is_relative_to(first)
    assert not Path(first).exists()
    assert not Path(second).exists()
