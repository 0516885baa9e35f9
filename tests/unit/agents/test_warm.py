"""A warm copy of a partition, fed the changelog rows a standby reads, takes over as a
shard restored from the same rows would: the same rows, the same health for every
account, and the outputs of the two lives together are replay's."""

from __future__ import annotations

import random
from typing import Any

import orjson

from streams.agents.codec import decode_account, encode_account, row_partition
from streams.agents.shard import Shard
from streams.agents.warm import WarmCopies, WarmCopy
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
    accounts = {a.encode(): encode_account(shard.row(a)) for a in shard.applied}
    marks = {f"0:{s}".encode(): orjson.dumps(list(shard.mark_row(s))) for s in shard.engine.marks}
    return shard, outputs, accounts, marks


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
    """Rows noted per partition; a refresh takes them; a takeover takes the copy with
    what was noted since, and only a copy that has rows; an assignment keeps the copies
    of the partitions still read here."""
    copies = WarmCopies(bundled_instruments(), summary_interval_ms=100)
    _, _, accounts, marks = first_life(900)
    for key, raw in accounts.items():
        copies.note_account(0, key, raw)
    for key, raw in marks.items():
        copies.note_mark(0, key, raw)
    copies.note_mark(2, b"2:BTCUSDT", None)  # a deletion: nothing to bring
    assert copies.due(owned=[1]) == [0]
    assert copies.due(owned=[0]) == []
    assert copies.take(0) is None  # no refresh yet: a restore reads the table
    assert copies.due(owned=[]) == []
    for key, raw in accounts.items():
        copies.note_account(0, key, raw)
    copy, noted, _ = copies.take_noted(0)
    assert noted == accounts
    assert copies.due(owned=[]) == []
    copy.refresh(noted, marks)
    copies.note_account(0, b"late", accounts[next(iter(accounts))])
    taken = copies.take(0)
    assert taken is not None
    assert taken[0] is copy
    assert list(taken[1]) == [b"late"]
    assert 0 not in copies.copies
    copies.give_back(copy)
    copies.note_account(1, b"x", b"{}")
    copies.keep_only([0])
    assert list(copies.copies) == [0]
    assert copies.due(owned=[]) == []


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
