"""The agents' read API without a broker: where an account lives, and the merge of the
partitions' queues and dashboard numbers."""

from __future__ import annotations

import math
from typing import Any

import pytest

from streams.agents.web import merge_queues, partition_of
from streams.engine.signals import SideSummary

# Kafka's own murmur2 test vectors (clients/src/test/.../utils/UtilsTest.java,
# testMurmur2): the partitioner takes the hash's low 31 bits modulo the partition count
KAFKA_MURMUR2 = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
                 "abc": 479470107}  # fmt: skip


@pytest.mark.parametrize("key", sorted(KAFKA_MURMUR2))
@pytest.mark.parametrize("partitions", [1, 3, 4, 7])
def test_an_account_is_where_kafkas_default_partitioner_puts_it(key: str, partitions: int) -> None:
    assert partition_of(key, partitions) == (KAFKA_MURMUR2[key] & 0x7FFFFFFF) % partitions


def test_partition_of_by_hand() -> None:
    # 479470107 = 3 * 159823369: partition 0 of 3; 479470107 mod 4 = 3 (..07 -> 07 mod 4)
    assert partition_of("abc", 3) == 0
    assert partition_of("abc", 4) == 3


def entry(account: str, qty: str, score: float, quantile: int | None = 2) -> dict[str, Any]:
    return {"rank": 0, "account": account, "qty": qty, "rank_score": score, "quantile": quantile}


def body(ranked_at: int | None, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": "long", "ranked_at": ranked_at, "queue": list(entries)}


def test_partitions_queues_merge_in_the_engines_order() -> None:
    p0 = body(2_000, entry("b", "1.5", 9.0), entry("d", "2", 4.0), entry("e", "10", 1.0))
    p1 = body(1_000, entry("a", "3", 9.0), entry("c", "1.5", 9.0, None), entry("f", "1", 0.5))
    merged = merge_queues([p0, p1], 4, "BTCUSDT", "long")
    # score 9.0 three times: larger size first (a: 3), then 1.5 twice by account (b, c)
    assert [(e["rank"], e["account"]) for e in merged["queue"]] == [
        (1, "a"), (2, "b"), (3, "c"), (4, "d"),
    ]  # fmt: skip
    assert merged["queue"][2]["quantile"] is None  # as the partition said: not lit yet
    assert merged["ranked_at"] == 1_000  # the oldest ranking among the parts
    assert (merged["symbol"], merged["side"]) == ("BTCUSDT", "long")


def test_quantities_compare_as_numbers_not_strings() -> None:
    # "10" < "9" as strings; as sizes 10 goes first
    merged = merge_queues([body(1, entry("x", "9", 1.0)), body(1, entry("y", "10", 1.0))], 2,
                          "BTCUSDT", "long")  # fmt: skip
    assert [e["account"] for e in merged["queue"]] == ["y", "x"]


def test_no_partition_ranked_yet() -> None:
    merged = merge_queues([body(None), body(None)], 20, "ETHUSDT", "short")
    assert merged == {"symbol": "ETHUSDT", "side": "short", "ranked_at": None, "queue": []}
    assert merge_queues([], 5, "ETHUSDT", "short")["queue"] == []


def test_side_summaries_add_up_over_partitions() -> None:
    a = SideSummary(7, (1, 2, 0, 0, 0, 1), 1, 0, 0, (5.0, 3.0, 2.0, 1.0, 0.5))
    b = SideSummary(5, (0, 0, 3, 0, 1, 0), 2, 1, 40, (4.0, 2.5))
    merged = SideSummary.merged([a, b])
    assert merged.open_interest == 12
    assert merged.positions_by_light == (1, 2, 3, 0, 1, 1)
    assert (merged.liquidatable, merged.bankrupt, merged.bankrupt_deficit) == (3, 1, 40)
    assert merged.top_scores == (5.0, 4.0, 3.0, 2.5, 2.0)  # the best five of both
    empty = SideSummary.merged([])
    assert (empty.open_interest, empty.positions_by_light, empty.top_scores) == (0, (), ())
    assert not any(math.isnan(s) for s in merged.top_scores)
