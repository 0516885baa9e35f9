"""Stage A's shard gives, for its accounts, what ``replay`` gives over the whole market,
whatever the arrival order between its inputs, and after a restart from its rows."""

from __future__ import annotations

import copy
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streams.agents.codec import decode_account, encode_account
from streams.agents.shard import ACCOUNT_TOPICS, CLOCK_TOPIC, AccountRow, Shard, Source
from streams.engine.config import EngineConfig
from streams.engine.decode import decode_event
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError
from streams.engine.events import Event
from streams.engine.queue import SideRanking
from streams.pipeline.topics import Topics
from streams.replay.runner import replay
from tests.helpers import bundled_instruments, deposit, fill, mark, schema_validator

BUNDLED = Path("streams/data/cascade.jsonl")
PARTITIONS = 3
Feed = dict[str, list[tuple[Event, dict[str, Any], Source]]]


def partition_of(account: str) -> int:  # any fixed assignment will do for the shard
    return zlib.crc32(account.encode()) % PARTITIONS


def bundled_events(
    path: Path = BUNDLED, symbols: frozenset[str] | None = None
) -> list[tuple[Event, dict[str, Any], str]]:
    """The file's valid events (the bundled one unless told), in file order, with their
    input topic (the file's deliberate bad lines are dead letters, not the shard's)."""
    names = symbols or frozenset(bundled_instruments())
    out = []
    for line in path.read_bytes().splitlines():
        try:
            obj = orjson.loads(line)
            event = decode_event(obj, names, obj["type"])
        except AdlMonitorError:
            continue
        out.append((event, obj, Topics().base(Topics().input_for(obj)[0])))
    return out


def feeds(partition: int, events: list[tuple[Event, dict[str, Any], str]] | None = None) -> Feed:
    """The shard's inputs: its accounts' events per account topic, every mark on the
    clock, each in file order (what Kafka keeps per partition)."""
    out: Feed = {t: [] for t in (*ACCOUNT_TOPICS, CLOCK_TOPIC)}
    for event, obj, topic in bundled_events() if events is None else events:
        if topic == "mark_prices":
            topic = CLOCK_TOPIC
        elif topic not in ACCOUNT_TOPICS or partition_of(obj["account"]) != partition:
            continue
        out[topic].append((event, obj, Source(topic, partition, len(out[topic]))))
    return out


def run(shard: Shard[None], feed: Feed, rng: random.Random, stop_after: int | None = None):
    """Deliver the inputs interleaved at random (each in its own order); apply what the
    shard releases. Returns the outputs and how many deliveries were made."""
    cursor = dict.fromkeys(feed, 0)
    outputs: list[tuple[str, dict[str, Any]]] = []
    delivered = 0
    while any(cursor[t] < len(feed[t]) for t in feed):
        if stop_after is not None and delivered == stop_after:
            return outputs, delivered
        topic = rng.choice([t for t in feed if cursor[t] < len(feed[t])])
        event, obj, source = feed[topic][cursor[topic]]
        cursor[topic] += 1
        delivered += 1
        shard.push(event, obj, source, None)
        pending = [f"{t}:{shard.partition}" for t in ACCOUNT_TOPICS if cursor[t] < len(feed[t])]
        for item in shard.release(pending):
            outputs += [(o.stream, o.payload) for o in shard.apply(item).outputs]
    for item in shard.release([], flush=True):
        outputs += [(o.stream, o.payload) for o in shard.apply(item).outputs]
    return outputs, delivered


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    out = tmp_path_factory.mktemp("replay")
    replay(BUNDLED, bundled_instruments(), out, progress=False)
    return {
        name: (out / f"{name}.jsonl").read_bytes().splitlines()
        for name in ("liquidations", "bankruptcies", "accounts")
    }


def canonical(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def held(position: dict[str, Any]) -> tuple[str, ...]:
    return position["symbol"], position["qty"], position["entry_price"], position["state"]


def mine(lines: list[bytes], partition: int) -> list[dict[str, Any]]:
    rows = [orjson.loads(line) for line in lines]
    return [r for r in rows if partition_of(r["account"]) == partition]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("partition", range(PARTITIONS))
def test_shard_equals_replay_for_its_accounts(
    expected: dict[str, list[bytes]], partition: int, seed: int
) -> None:
    shard: Shard[None] = Shard(partition, bundled_instruments())
    outputs, _ = run(shard, feeds(partition), random.Random(seed))
    for stream in ("liquidations", "bankruptcies"):
        got = [payload for name, payload in outputs if name == stream]
        assert got == mine(expected[stream], partition), stream
    assert any(name == "liquidations" for name, _ in outputs), "the cascade liquidates here"
    assert shard.stats.late == 0
    # the last evaluation of every account has the health replay finds at the final marks
    last = {p["account"]: p for name, p in outputs if name == "accounts"}
    for row in mine(expected["accounts"], partition):
        got = last[row["account"]]
        assert (got["wallet_balance"], got["state"]) == (row["wallet_balance"], row["state"])
        assert list(map(held, got["positions"])) == list(map(held, row["positions"]))
        assert all(p["rank_score"] is None for p in got["positions"])  # stage B's


def test_restart_from_rows_applies_nothing_twice(expected: dict[str, list[bytes]]) -> None:
    """Crash after some deliveries; the new shard restores from the rows the old one
    wrote, the inputs are re-delivered from the start (nothing committed), and the
    outputs of the two lives together are replay's, each once."""
    partition, feed = 0, feeds(0)
    first: Shard[None] = Shard(partition, bundled_instruments())
    before, delivered = run(first, feed, random.Random(7), stop_after=4000)
    assert 0 < delivered < sum(map(len, feed.values()))
    rows = [decode_account(encode_account(first.row(a))) for a in first.applied]
    marks = [(s, *first.mark_row(s)) for s in first.mark_seen_ms]
    second: Shard[None] = Shard(partition, bundled_instruments())
    second.restore(rows, marks)
    after, _ = run(second, feed, random.Random(8))
    assert second.stats.redelivered > 0
    # events still buffered in the first life were lost with it and are applied now
    for stream in ("liquidations", "bankruptcies"):
        got = [p for name, p in before + after if name == stream]
        want = mine(expected[stream], partition)
        assert sorted(map(canonical, got)) == sorted(map(canonical, want)), stream


def test_row_codec_round_trips_exactly() -> None:
    shard: Shard[None] = Shard(1, bundled_instruments())
    run(shard, feeds(1), random.Random(3))
    for account in shard.applied:
        row = shard.row(account)
        assert row.partition == 1
        assert decode_account(encode_account(row)) == row
    lit = AccountRow(row.state, row.applied, 1, {"BTCUSDT": 4, "SOLUSDT": 1})
    assert decode_account(encode_account(lit)) == lit


def test_a_row_read_back_has_its_positions_sorted_by_symbol() -> None:
    # the reducer finds a position by bisection over sorted symbols: a row whose positions
    # come out of order (written by hand, or by another version) is sorted when read
    shard: Shard[None] = Shard(1, bundled_instruments())
    run(shard, feeds(1), random.Random(3))
    row = max((shard.row(a) for a in shard.applied), key=lambda r: len(r.state.positions))
    assert len(row.state.positions) >= 2
    encoded = orjson.loads(encode_account(row))
    encoded["positions"].reverse()
    assert decode_account(orjson.dumps(encoded)) == row


def test_an_engine_rejection_is_a_dead_letter_with_its_source() -> None:
    """Valid alone, impossible for the account (isolated margin asked for an open cross
    position): the dead letter names the input and where it came from, per the schema."""
    instruments = bundled_instruments()
    shard: Shard[None] = Shard(0, instruments)
    lines = [
        ("balances", {"type": "balance", "event_id": "d", "ts": 1, "account": "a",
                      "amount": "100", "reason": "deposit"}),
        ("fills", {"type": "fill", "fill_id": "f", "ts": 2, "account": "a",
                   "symbol": "BTCUSDT", "side": "buy", "qty": "0.001", "price": "60000"}),
        ("position_config", {"type": "position_config", "ts": 3, "account": "a",
                             "symbol": "BTCUSDT", "margin_mode": "isolated", "leverage": "5"}),
        (CLOCK_TOPIC, {"type": "mark", "ts": 4, "symbol": "BTCUSDT", "mark_price": "60000"}),
    ]  # fmt: skip
    for offset, (topic, obj) in enumerate(lines):
        event = decode_event(obj, frozenset(instruments), obj["type"])
        shard.push(event, obj, Source(topic, 0, 10 + offset), None)
    letters = [
        o.payload
        for item in shard.release([])
        for o in shard.apply(item).outputs
        if o.stream == "dead_letters"
    ]
    assert len(letters) == 1
    schema_validator("topic.dead_letters").validate(letters[0])
    assert (letters[0]["topic"], letters[0]["partition"], letters[0]["offset"]) == (
        "position_config",
        0,
        12,
    )
    assert letters[0]["field"] == "margin_mode"
    assert orjson.loads(letters[0]["input"])["margin_mode"] == "isolated"


def test_a_venue_resend_after_a_restart_is_still_a_duplicate() -> None:
    """A venue re-sends fill f-1 (a new message, a new offset) after the shard restarted
    from its rows: the rows carry the account's ids still in the dedupe window, so the
    re-send is ignored, as replay ignores it. (Ten SIGKILLs of account-agents applied the
    bundled cascade's re-sent f-1 to acct-00136: SOL short 6.66 instead of 15.73.)"""
    instruments = bundled_instruments()
    deposit = {"type": "balance", "event_id": "d", "ts": 1, "account": "a", "amount": "1000",
               "reason": "deposit"}  # fmt: skip
    fill = {"type": "fill", "fill_id": "f-1", "ts": 2, "account": "a", "symbol": "SOLUSDT",
            "side": "buy", "qty": "9.07", "price": "150"}  # fmt: skip

    def deliver(shard: Shard[None], topic: str, obj: dict[str, Any], offset: int) -> None:
        event = decode_event(obj, frozenset(instruments), obj["type"])
        assert shard.push(event, obj, Source(topic, 0, offset), None)
        for item in shard.release([], flush=True):
            shard.apply(item)

    first: Shard[None] = Shard(0, instruments)
    deliver(first, "balances", deposit, 0)
    deliver(first, "fills", fill, 0)
    row = decode_account(encode_account(first.row("a")))
    assert row.seen == {"Balance:a:d": 1, "fill:a:f-1": 2}
    second: Shard[None] = Shard(0, instruments)
    second.restore([row], [])
    deliver(second, "fills", {**fill, "ts": 60_000}, 1)  # the re-send, a minute later
    [position] = second.engine.accounts["a"].positions
    assert position.qty == 907_000_000  # 9.07 once, as before the restart
    assert second.engine.stats.duplicates == 1


def test_a_light_announced_to_a_position_closed_since_survives_a_restore() -> None:
    """A ranking the desk lights after one of its positions closed is judged by what
    was announced to that position: the account's row keeps it (``announced_lights``:
    opening 0, the closed position's opening, its light), so a shard restored from the
    rows lights a ranking kept across the restart as the live one does."""
    config = EngineConfig(light_locally=False, dedupe_by_account=True)
    live = Engine(bundled_instruments(), config)
    events = [deposit(f"d-{a}", a, "100000") for a in ("a", "b", "c", "z")]
    events.append(mark("BTCUSDT", "60000", 1))
    for n, (acct, qty) in enumerate([("a", "1"), ("b", "2"), ("c", "3")]):
        events.append(fill(f"f{n}", acct, "buy", qty, "60000", ts=2))
        events.append(fill(f"g{n}", "z", "sell", qty, "60000", ts=2))
    for event in events:
        live.apply(event)

    def light_ranked(engine: Engine, ranking: SideRanking, ts: int) -> list[tuple[str, int]]:
        count = len(ranking.accounts)
        alerts = engine.light("BTCUSDT", ranking, np.arange(1, count + 1), count, ts)
        return [(a.account, a.quantile) for a in alerts]

    live.rerank("BTCUSDT", 3)
    first = live.ranking("BTCUSDT", "long")
    assert first is not None
    assert light_ranked(live, first, 3)  # lit: something announced to a, b, c
    closer = "c"  # the most leveraged: first in the queue, the top light
    assert live.announced_lights(closer)["BTCUSDT"][2] == 5
    live.apply(deposit("d-c2", closer, "10000000", ts=4))  # now the least leveraged
    live.apply(mark("BTCUSDT", "61000", 4))
    live.rerank("BTCUSDT", 4)
    kept = copy.deepcopy(live.ranking("BTCUSDT", "long"))  # the desk answers later
    assert kept is not None
    assert kept.accounts.tolist()[-1] == closer
    live.apply(fill("close", closer, "sell", "3", "61000", ts=5))
    live.apply(fill("close-z", "z", "buy", "3", "61000", ts=5))
    rows = {a: live.announced_lights(a) for a in ("a", "b", "c")}
    opened, announced_to, light = rows[closer]["BTCUSDT"]
    assert opened == 0  # closed
    assert announced_to == int(kept.opened[kept.accounts.tolist().index(closer)])
    assert light > 0

    restored = Engine(bundled_instruments(), config)
    restored.marks["BTCUSDT"] = live.marks["BTCUSDT"]
    restored.restore(live.accounts.values())
    for acct, lights in rows.items():
        restored.restore_announced(acct, lights)
    want = light_ranked(live, copy.deepcopy(kept), 6)
    assert dict(want)[closer] < 5  # off the top light: announced though it closed
    assert light_ranked(restored, copy.deepcopy(kept), 6) == want
