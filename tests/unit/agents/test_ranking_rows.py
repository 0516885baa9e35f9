"""The changelog rows of the rankings waiting for the desk's lights: what lighting reads
comes back whole (a side far over a Kafka message split in chunks, a ranking with no
side, rows of version 1 written before an upgrade), an incomplete or unreadable ranking
is dropped, a row never inflates past what its header states."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
import pytest

from streams.agents import ranking_rows as rows_module
from streams.agents.ranking_rows import decode_rankings, ranking_keys, ranking_rows
from streams.engine.queue import SideRanking
from streams.engine.summary import SummarisedRanking

KAFKA_MESSAGE_BYTES = 1 << 20  # a broker's and a producer's default ceiling


def side(name: str, accounts: list[str], seed: int) -> tuple[SideRanking, Any]:
    rng = np.random.default_rng(seed)
    n = len(accounts)
    scores = rng.normal(size=n)
    if n > 3:
        scores[3] = np.nan  # a score the venue cannot compute
    ranking = SideRanking.of_accounts(
        name,
        accounts,
        sizes=rng.integers(1, 10**12, size=n),
        scores=scores,
        opened=rng.integers(1, 10**6, size=n),
        mark_price=6_000_000_000_000,
        entries=rng.uniform(1, 1e5, size=n),
    )
    return ranking, rng.integers(-(10**6), 10**6, size=n)


def assert_same(got: SummarisedRanking, want: SummarisedRanking) -> None:
    assert got.ranked_at_ms == want.ranked_at_ms
    assert sorted(got.sides) == sorted(want.sides)
    for name, (ranking, buckets) in want.sides.items():
        back, back_buckets = got.sides[name]
        assert back.side == name
        assert back.accounts.tolist() == ranking.accounts.tolist()
        for column in ("sizes", "opened", "lights"):
            assert getattr(back, column).tolist() == getattr(ranking, column).tolist()
        np.testing.assert_array_equal(back.scores, ranking.scores)  # NaN where NaN
        # not kept: lighting does not read it (``QueueTable.light_at``, ``reaches_from_cuts``)
        assert np.isnan(back.entries).all()
        assert len(back.entries) == len(ranking.entries)
        assert back.mark_price == ranking.mark_price
        assert back_buckets.tolist() == buckets.tolist()


def test_a_large_ranking_comes_back_whole_in_rows_under_a_kafka_message() -> None:
    # 12,000 longs with names of the longest kind (256 characters, some 4 bytes in
    # UTF-8: 1 KB each), 7 shorts
    longs = [f"{k:06d}" + "\U0001f4b0" * 250 for k in range(12_000)]
    ranking = SummarisedRanking(
        1_760_129_571_000,
        {"long": side("long", longs, 1), "short": side("short", [f"s{k}" for k in range(7)], 2)},
    )
    rows = ranking_rows(3, "BTC:USDT", ranking)  # a symbol with a colon
    assert len(rows) > 2  # the long side split
    assert max(len(value) for _, value in rows) < KAFKA_MESSAGE_BYTES
    assert [key for key, _ in rows] == ranking_keys(3, "BTC:USDT", ranking)
    other = SummarisedRanking(1_760_129_572_000, {})  # nothing ranked then
    rows += ranking_rows(3, "BTC:USDT", other)
    rows += ranking_rows(4, "BTC:USDT", ranking)  # another partition's
    back = list(decode_rankings(3, reversed(rows)))
    assert [(sym, r.ranked_at_ms) for sym, r in back] == [
        ("BTC:USDT", ranking.ranked_at_ms),
        ("BTC:USDT", other.ranked_at_ms),
    ]
    assert_same(back[0][1], ranking)
    assert back[1][1].sides == {}


@pytest.mark.parametrize("lose", ["a chunk", "a side", "nothing"])
def test_a_ranking_missing_a_row_is_dropped(monkeypatch: pytest.MonkeyPatch, lose: str) -> None:
    monkeypatch.setattr(rows_module, "CHUNK_ENTRIES", 4)
    ranking = SummarisedRanking(
        5, {"long": side("long", list("abcdefghij"), 3), "short": side("short", ["k"], 4)}
    )
    rows = ranking_rows(0, "ETHUSDT", ranking)
    assert len(rows) == 3 + 1  # 10 longs in chunks of 4, 1 short
    if lose == "a chunk":
        rows = [r for r in rows if r[0] != b"0:ETHUSDT:5:long:1"]
    elif lose == "a side":
        rows = [r for r in rows if b":short:" not in r[0]]
    back = list(decode_rankings(0, rows))
    if lose == "nothing":
        assert_same(back[0][1], ranking)
    else:
        assert back == []


def test_an_unreadable_row_is_dropped() -> None:
    ranking = SummarisedRanking(7, {"long": side("long", ["a", "b"], 5)})
    ((key, value),) = ranking_rows(0, "SOLUSDT", ranking)
    good = ranking_rows(0, "XRPUSDT", ranking)
    header = rows_module.HEADER
    fields = header.unpack_from(value)
    other_version = header.pack(3, *fields[1:]) + value[header.size :]
    as_version_1 = header.pack(1, *fields[1:]) + value[header.size :]  # a compressed body
    body = zlib.decompress(value[header.size :])
    bad_names = header.pack(*fields) + zlib.compress(body[:-1] + b"\xff")  # not UTF-8
    longer = header.pack(*fields) + zlib.compress(body + b"x")
    for bad in (
        b"not a row",
        value[:-1],  # the stream cut short
        value + b"x",  # bytes after it
        value + zlib.compress(b""),  # a second stream after it
        other_version,
        as_version_1,
        bad_names,
        longer,
    ):
        rows = [(key, bad), *good, (b"garbage-key", b"")]
        assert [sym for sym, _ in decode_rankings(0, rows)] == ["XRPUSDT"]


def test_a_row_never_inflates_past_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row whose body inflates to 64 MB while its header states two positions is
    refused after inflating at most what the header states (plus one byte)."""
    ranking = SummarisedRanking(7, {"long": side("long", ["a", "b"], 5)})
    ((key, value),) = ranking_rows(0, "SOLUSDT", ranking)
    header = rows_module.HEADER
    bomb = header.unpack_from(value)
    stated = 4 * 8 * 2 + len(b"a\nb")  # four 8-byte columns of two positions, the names
    inflated: list[int] = []
    real = zlib.decompressobj

    class Counting:  # zlib's own inflater, counting what it gives
        def __init__(self) -> None:
            self.inner = real()

        def decompress(self, data: Any, max_length: int = 0) -> bytes:
            out = self.inner.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    row = header.pack(*bomb) + zlib.compress(bytes(64 << 20), 9)
    monkeypatch.setattr(rows_module.zlib, "decompressobj", Counting)
    assert list(decode_rankings(0, [(key, row)])) == []
    assert sum(inflated) == stated + 1


def test_a_row_written_before_the_upgrade_is_read() -> None:
    """Version 1 (uncompressed: sizes, scores, opening numbers, entry prices, buckets,
    then the names), laid out by hand as it was written: what lighting reads comes back."""
    sizes, scores, opened, entries, buckets = [5, 7], [1.5, 0.25], [11, 12], [9.0, 8.0], [3, 2]
    columns = (
        struct.pack("<2q", *sizes)
        + struct.pack("<2d", *scores)
        + struct.pack("<2q", *opened)
        + struct.pack("<2d", *entries)
        + struct.pack("<2q", *buckets)
    )
    names = b"acct-a\nacct-b"
    # version, ranked at, mark price, chunk 0 of 1, one side, 2 positions, names' bytes
    row = struct.pack("<8q", 1, 42, 6_000, 0, 1, 1, 2, len(names)) + columns + names
    ((sym, back),) = decode_rankings(2, [(b"2:ETHUSDT:42:short:0", row)])
    assert (sym, back.ranked_at_ms, list(back.sides)) == ("ETHUSDT", 42, ["short"])
    ranking, back_buckets = back.sides["short"]
    assert ranking.accounts.tolist() == ["acct-a", "acct-b"]
    assert ranking.sizes.tolist() == sizes
    assert ranking.opened.tolist() == opened
    assert ranking.scores.tolist() == scores
    assert back_buckets.tolist() == buckets
    assert ranking.mark_price == 6_000
