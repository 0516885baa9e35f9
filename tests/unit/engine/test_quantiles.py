"""Rank lights across partitions (engine.quantiles): score histograms up, cuts down.

References are written here: a light by place is ``5 - (5 * place) // count`` (the
venues' quintiles), settled when the places ``int(1% of count)`` above and below have
the same light; places come from sorting every partition's scores together. BitMEX's
lights go by quantity: ``6 - ceil(5 * cumulative quantity through the position / the
side's)``, written here with fractions.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.adl import UNDERWATER_SCORE
from streams.engine.profiles import PROFILES
from streams.engine.quantiles import (
    RankCuts,
    cuts_from_wire,
    cuts_to_wire,
    histogram,
    reaches_from_cuts,
    score_buckets,
    side_cuts,
)
from tests.helpers import schema_validator

ACCURACY = 1e-4
PROFILE = PROFILES["bybit"]


def light(place: int, count: int) -> int:
    return 5 - (5 * place) // count


def settled(place: int, count: int) -> bool:
    margin = int(count * 0.01)
    return light(max(place - margin, 0), count) == light(min(place + margin, count - 1), count)


def lit(scores_by_partition: list[list[float]]) -> list[list[tuple[int, bool]]]:
    """(light, settled) of each partition's positions (best first) from cuts."""
    queues = [sorted(s, reverse=True) for s in scores_by_partition]
    buckets = [score_buckets(q, ACCURACY) for q in queues]
    cuts = side_cuts([histogram(b) for b in buckets], PROFILE, 0.01)
    count = cuts.total
    out = []
    for b in buckets:
        places = [int(r) - 1 for r in reaches_from_cuts(b, None, cuts)]
        out.append([(light(p, count), settled(p, count)) for p in places])
    return out


def by_place(scores_by_partition: list[list[float]]) -> list[list[tuple[int, bool]]]:
    everyone = sorted((s for part in scores_by_partition for s in part), reverse=True)
    count = len(everyone)
    place = {s: i for i, s in enumerate(everyone)}  # distinct scores only
    return [
        [(light(place[s], count), settled(place[s], count)) for s in sorted(part, reverse=True)]
        for part in scores_by_partition
    ]


def test_buckets_keep_the_order_of_scores_and_their_width_is_the_accuracy() -> None:
    scores = [1e6, 10.0, 10.0 * (1 + 2 * ACCURACY), 1.0, 1e-13, 0.0, -1e-13, -0.5, -3.0,
              UNDERWATER_SCORE]  # fmt: skip
    buckets = score_buckets(sorted(scores, reverse=True), ACCURACY)
    assert list(buckets) == sorted(buckets, reverse=True)
    assert buckets[1] > buckets[2]  # 2x the accuracy apart: different buckets
    assert len(set(score_buckets([1e-13, 0.0, -1e-13], ACCURACY))) == 1  # below 1e-12: one
    # bucket k + 1 holds |score| in [1e-12 (1 + a)^k, 1e-12 (1 + a)^(k + 1)): a score in the
    # middle of bucket 1001 and one a tenth of a bucket above it share it; one whole
    # bucket above is the next; the same magnitudes negative mirror them
    middle = 1e-12 * (1 + ACCURACY) ** 1000.5
    near = [middle, middle * (1 + ACCURACY / 10), middle * (1 + ACCURACY)]
    assert list(score_buckets(near, ACCURACY)) == [1001, 1001, 1002]
    assert list(score_buckets([-x for x in near], ACCURACY)) == [-1001, -1001, -1002]


def test_hand_example_two_partitions_interleaved() -> None:
    # ten positions, scores 10..1; A holds the even ones, B the odd ones. Quintiles of
    # ten: places 0-1 light 5, 2-3 light 4, ... (margin int(0.1) = 0: always settled).
    a = [10.0, 8.0, 6.0, 4.0, 2.0]  # places 0, 2, 4, 6, 8
    b = [9.0, 7.0, 5.0, 3.0, 1.0]  # places 1, 3, 5, 7, 9
    got = lit([a, b])
    assert [x for x, _ in got[0]] == [5, 4, 3, 2, 1]
    assert [x for x, _ in got[1]] == [5, 4, 3, 2, 1]
    assert all(s for part in got for _, s in part)


def test_ties_across_partitions_are_spread_evenly() -> None:
    # ten positions with one score, five in each partition: the bucket holds all ten;
    # each partition takes its own as spread through it (places 0, 2, 4, 6, 8).
    got = lit([[1.0] * 5, [1.0] * 5])
    assert [x for x, _ in got[0]] == [x for x, _ in got[1]] == [5, 4, 3, 2, 1]


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=400))
def test_one_partition_gets_the_lights_of_its_places(scores: list[float]) -> None:
    queue = sorted(scores, reverse=True)
    count = len(queue)
    expected = [(light(i, count), settled(i, count)) for i in range(count)]
    assert lit([queue]) == [expected]


@given(
    st.lists(st.integers(-40_000, 40_000), min_size=1, max_size=500, unique=True),
    st.integers(2, 5),
    st.randoms(use_true_random=False),
)
def test_partitions_with_scores_apart_get_the_lights_of_their_places(
    ticks: list[int], partitions: int, rng: object
) -> None:
    # scores at least 0.1% apart (10x the accuracy): no bucket is shared
    scores = [float(np.sign(t) * 1.001 ** abs(t)) if t else 0.0 for t in ticks]
    parts: list[list[float]] = [[] for _ in range(partitions)]
    for s in scores:
        parts[rng.randrange(partitions)].append(s)  # type: ignore[attr-defined]
    assert lit(parts) == by_place(parts)


def test_cuts_survive_the_wire() -> None:
    buckets = score_buckets([5.0, 4.0, 3.0, 2.0, 1.0, 0.5, -1.0], ACCURACY)
    sides = {"long": side_cuts([histogram(buckets)], PROFILE, 0.01)}
    cuts = RankCuts("BTCUSDT", 1_000, sides)
    assert cuts_from_wire(cuts_to_wire(cuts)) == cuts


BITMEX = PROFILES["bitmex"]


def quantity_light(through: int, total: int) -> int:
    return 6 - math.ceil(Fraction(5 * through, total))


def lit_by_quantity(parts: list[list[tuple[float, int]]]) -> list[list[int]]:
    """BitMEX lights of each partition's (score, size) positions (best first), from cuts."""
    queues = [sorted(p, reverse=True) for p in parts]
    buckets = [score_buckets([s for s, _ in q], ACCURACY) for q in queues]
    sizes = [np.array([n for _, n in q], dtype=np.int64) for q in queues]
    cuts = side_cuts([histogram(b, w) for b, w in zip(buckets, sizes, strict=True)], BITMEX, 0.01)
    return [
        [int(BITMEX.light(r, cuts.total)) for r in reaches_from_cuts(b, w, cuts)]
        for b, w in zip(buckets, sizes, strict=True)
    ]


def test_bitmex_six_longs_across_two_partitions_light_by_their_cumulative_quantity() -> None:
    # BitMEX "Auto-Deleveraging Examples" (bitmex.com/app/autoDeleveragingExamples): six
    # longs ranked 6..1 with quantities 10, 20, 30, 10, 10, 20 get percentiles 20%,
    # 40%, 60%, 80%, 80%, 100% (cumulative 10, 30, 60, 70, 80, 100 of 100, rounded up
    # to 20%): lights 5, 4, 3, 2, 2, 1. Split over two partitions, as the agents hold them.
    a = [(6.0, 10), (4.0, 30), (2.0, 10)]  # accounts 2, 4, 6
    b = [(5.0, 20), (3.0, 10), (1.0, 20)]  # accounts 5, 1, 3
    assert lit_by_quantity([a, b]) == [[5, 3, 2], [4, 2, 1]]
    assert lit_by_quantity([a + b]) == [[5, 4, 3, 2, 2, 1]]


@given(
    st.lists(
        st.tuples(st.integers(-40_000, 40_000), st.integers(1, 10**12)),
        min_size=1,
        max_size=300,
        unique_by=lambda t: t[0],
    ),
    st.integers(1, 4),
    st.randoms(use_true_random=False),
)
def test_partitions_with_scores_apart_get_the_lights_of_their_cumulative_quantity(
    positions: list[tuple[int, int]], partitions: int, rng: object
) -> None:
    scored = [(float(np.sign(t) * 1.001 ** abs(t)) if t else 0.0, n) for t, n in positions]
    parts: list[list[tuple[float, int]]] = [[] for _ in range(partitions)]
    for p in scored:
        parts[rng.randrange(partitions)].append(p)  # type: ignore[attr-defined]
    everyone = sorted(scored, reverse=True)
    total = sum(n for _, n in everyone)
    through, running = {}, 0
    for s, n in everyone:
        running += n
        through[s] = running
    expected = [
        [quantity_light(through[s], total) for s, _ in sorted(p, reverse=True)] for p in parts
    ]
    assert lit_by_quantity(parts) == expected


def test_quantity_weights_past_int64_survive_the_histogram_and_the_wire() -> None:
    # three positions of 4e18 raw each (4e10 coins at 1e8 raw per coin): the side's
    # 1.2e19 is past int64; the middle one is at 8e18 / 1.2e19 = 66.7% -> 80% -> 2 lights
    sizes = np.array([4 * 10**18] * 3, dtype=np.int64)
    buckets = score_buckets([3.0, 2.0, 1.0], ACCURACY)
    cuts = side_cuts([histogram(buckets, sizes)], BITMEX, 0.01)
    assert cuts.total == 12 * 10**18
    wired = cuts_to_wire(RankCuts("PEPE", 1, {"long": cuts}))
    schema_validator("topic.rank_boundaries").validate(orjson.loads(orjson.dumps(wired)))
    assert cuts_from_wire(wired).sides["long"] == cuts
    assert [int(BITMEX.light(r, cuts.total)) for r in reaches_from_cuts(buckets, sizes, cuts)] == [
        4,
        2,
        1,
    ]
