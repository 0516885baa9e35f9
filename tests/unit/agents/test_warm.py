"""A warm copy of a partition, fed the changelog rows a standby reads, takes over as a
shard restored from the same rows would: the same rows, the same health for every
account, and the outputs of the two lives together are replay's."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

import faust
import orjson
from faust.events import Event
from faust.types import TP
from faust.types.tuples import Message

from streams.agents.codec import decode_account, encode_account, row_partition
from streams.agents.shard import Shard
from streams.agents.warm import KeptStore, NotedTable, WarmCopies, WarmCopy
from streams.engine.account import AccountState
from streams.engine.risk import Health
from tests.helpers import bundled_instruments
from tests.unit.agents.test_shard import canonical, expected, feeds, mine, run  # noqa: F401

Rows = dict[bytes, bytes]


def first_life(stop_after: int) -> tuple[Shard[None], list[tuple[str, Any]], Rows, Rows]:
    """Partition 0 delivered ``stop_after`` inputs (the same interleaving each time):
    the shard, its outputs, its account rows and mark rows as its changelog holds them."""
    shard: Shard[None] = Shard(0, bundled_instruments())
    outputs, delivered = run(shard, feeds(0), random.Random(7), stop_after=stop_after)
    assert delivered == stop_after
    return shard, outputs, *changelog_rows(shard)


def changelog_rows(shard: Shard[Any]) -> tuple[Rows, Rows]:
    """The shard's account rows and mark rows as its changelog tables hold them."""
    accounts = {a.encode(): encode_account(shard.row(a)) for a in shard.applied}
    marks = {
        f"{shard.partition}:{s}".encode(): orjson.dumps(list(shard.mark_row(s)))
        for s in shard.engine.marks
    }
    return accounts, marks


def healths(shard: Shard[Any]) -> dict[str, tuple[Health, tuple[Health, ...]]]:
    risks = shard.engine.risks
    return {a: (r.health, tuple(p.health for p in r.positions)) for a, r in risks.items()}


def test_a_warm_copy_takes_over_like_a_restore(expected: dict[str, list[bytes]]) -> None:  # noqa: F811
    """Rows read at 900 then 6,000 inputs keep the copy warm; at the takeover (9,000:
    the marks have moved far, two accounts are past their warning or liquidation
    price) the rows since are applied: only those that changed. Its rows equal a restore's
    from the last rows, every account's health and each position's too (an account
    the marks moved without a row of its own is evaluated again when a mark crosses
    its thresholds), and what it applies next completes replay's outputs."""
    copy = WarmCopy(0, bundled_instruments(), summary_interval_ms=100)
    replaced = []
    for stop_after in (900, 6000, 9000):
        _, before, accounts, marks = first_life(stop_after)
        replaced.append(copy.refresh(accounts, marks))
        assert copy.refresh(accounts, marks) == 0  # read again unchanged: nothing to do
    assert replaced[0] == len(copy.accounts) > 100  # the first rows: every account
    assert 0 < replaced[1] < len(accounts)
    assert 0 < replaced[2] < len(accounts)
    assert copy.shard is not None
    restored: Shard[None] = Shard(0, bundled_instruments())
    restored.restore(
        [decode_account(raw) for raw in accounts.values()],
        [(k.decode().split(":", 1)[1], *orjson.loads(v)) for k, v in marks.items()],
    )
    warm = copy.shard
    assert sorted(warm.applied) == sorted(restored.applied)
    for account in restored.applied:
        assert encode_account(warm.row(account)) == encode_account(restored.row(account))
    assert warm.engine.marks == restored.engine.marks
    assert healths(warm) == healths(restored)
    assert any(h is not Health.HEALTHY for h, _ in healths(warm).values())
    # the copy goes on as the partition's owner: the inputs delivered again from the
    # start (nothing committed) are recognised, the rest applied
    after, _ = run(warm, feeds(0), random.Random(8))
    assert warm.stats.redelivered > 0
    for stream in ("liquidations", "bankruptcies"):
        got = [p for name, p in before + after if name == stream]
        want = mine(expected[stream], 0)
        assert sorted(map(canonical, got)) == sorted(map(canonical, want)), stream


def test_copies_follow_what_a_process_reads() -> None:
    """Rows noted per partition; a standby with no copy is due too; a new copy starts
    from the tables' rows (its partition's only); a refresh takes the rows noted since;
    a takeover takes the copy with them, and only a copy that has rows; an assignment
    keeps the copies of the partitions still read or owned here."""
    copies = WarmCopies(bundled_instruments(), summary_interval_ms=100)
    _, _, accounts, marks = first_life(900)
    for key, raw in accounts.items():
        copies.note_account(0, key, raw)
    copies.note_mark(2, b"2:BTCUSDT", None)  # a deletion: nothing to bring
    assert copies.due(owned=[1]) == [0]
    assert copies.due(owned=[0]) == []
    assert copies.take(0) is None  # no copy yet: a restore reads the table
    assert copies.due(owned=[]) == []  # and the rows noted for it are dropped
    copies.keep_only(standbys=[0, 1], owned=[2])
    assert copies.due(owned=[2]) == [0, 1]  # standbys here, no copy yet
    copy = copies.new_copy(0)
    elsewhere = [  # the table holds other partitions' rows too
        (b"other", encode_account(replace(decode_account(raw), partition=1)))
        for raw in accounts.values()
    ]
    table_marks = [*marks.items(), (b"1:BTCUSDT", marks[b"0:BTCUSDT"])]
    assert copy.start([*accounts.items(), *elsewhere], table_marks) == len(accounts)
    assert copy.shard is not None
    assert sorted(copy.shard.applied) == sorted(a.decode() for a in accounts)
    assert copies.due(owned=[2]) == [1]
    late = next(iter(accounts.values()))
    copies.note_account(0, b"late", late)
    assert copies.due(owned=[2]) == [0, 1]
    again, noted, _ = copies.take_noted(0)
    assert again is copy
    assert noted == {b"late": late}
    copies.note_account(0, b"later", late)
    taken = copies.take(0)
    assert taken == (copy, {b"later": late}, {})
    assert 0 not in copies.copies
    copies.give_back(copy)
    copies.note_account(3, b"x", b"{}")
    copies.keep_only(standbys=[0], owned=[])
    assert list(copies.copies) == [0]
    assert copies.due(owned=[]) == []


def changelog_row(
    table: NotedTable, partition: int, offset: int, key: bytes, value: bytes | None
) -> Event:
    """A row as Faust's recovery hands it to the table."""
    topic = table.changelog_topic.get_topic_name()
    message = Message(
        topic, partition, offset, 0.0, 0, None, key, value, None, tp=TP(topic, partition)
    )
    return Event(table.app, key, value, None, message)


def test_a_kept_store_holds_what_it_read_across_a_recovery() -> None:
    """``KeptStore`` says how far it has read each changelog partition (a recovery reads
    on from there: Faust's in-memory store says nothing, so everything is read again), and
    keeps a standby partition's rows when a recovery completes (Faust's drops them);
    rows and offset of a partition no longer read here go. Its table tells what it
    applied."""
    app = faust.App("kept-store-test", store="memory://", autodiscover=False)
    noted: list[tuple[int, bytes, bytes | None]] = []
    table = NotedTable(
        app, name="rows", beacon=app.tables.beacon, key_type=bytes, value_type=bytes,
        default=None, partitions=4, noted=lambda *row: noted.append(row),
    )  # fmt: skip
    store = table.data
    assert isinstance(store, KeptStore)
    tp0, tp1 = (TP(table.changelog_topic.get_topic_name(), p) for p in (0, 1))
    assert store.persisted_offset(tp0) is None  # nothing held: read from the start
    table.apply_changelog_batch(
        [changelog_row(table, 0, offset, b"a%d" % offset, b"A") for offset in range(5)]
        + [changelog_row(table, 1, offset, b"b%d" % offset, b"B") for offset in range(3)]
        + [changelog_row(table, 1, 3, b"b0", None)]  # deleted
    )
    assert (store.persisted_offset(tp0), store.persisted_offset(tp1)) == (4, 3)
    assert sorted(table.keys()) == [b"a0", b"a1", b"a2", b"a3", b"a4", b"b1", b"b2"]
    assert noted[0] == (0, b"a0", b"A")
    assert noted[-1] == (1, b"b0", None)
    # a row written here moves it only while its partition is owned here: delivered
    # after a revocation, it may land after a new owner's first rows (an offset past
    # them would skip them)
    store.set_persisted_offset(tp0, 9)
    assert store.persisted_offset(tp0) == 4
    store.owned = {0}
    store.set_persisted_offset(tp0, 9)
    store.set_persisted_offset(tp0, 7)  # an earlier one acknowledged later
    assert store.persisted_offset(tp0) == 9
    table.apply_changelog_batch([changelog_row(table, 0, 2, b"a2", b"again")])  # read again
    assert store.persisted_offset(tp0) == 9
    asyncio.run(store.on_recovery_completed({tp0}, {tp1}))  # partition 1: a standby here
    assert sorted(table.keys()) == [b"a0", b"a1", b"a2", b"a3", b"a4", b"b1", b"b2"]
    assert store.persisted_offset(tp1) == 3
    asyncio.run(store.on_recovery_completed({tp0}, set()))  # not read here any more
    assert sorted(table.keys()) == [b"a0", b"a1", b"a2", b"a3", b"a4"]
    assert store.persisted_offset(tp1) is None
    assert store.persisted_offset(tp0) == 9


def test_a_row_partition_is_read_without_decoding_the_row() -> None:
    state = AccountState("acct:with,commas", 5)
    shard: Shard[None] = Shard(3, bundled_instruments())
    shard.engine.accounts[state.account] = state
    raw = encode_account(shard.row(state.account))
    assert raw.startswith(b'{"p":3,')
    assert row_partition(raw) == 3
    # another layout (a row written otherwise) is decoded
    other = orjson.dumps({**orjson.loads(raw), "p": 12}, option=orjson.OPT_SORT_KEYS)
    assert not other.startswith(b'{"p"')
    assert row_partition(other) == 12
