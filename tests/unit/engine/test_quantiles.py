"""Rank lights across partitions (engine.quantiles): score histograms up, cuts down.

References are written here: a light by place is ``5 - (5 * place) // count`` (the
venues' quintiles), settled when the places ``int(1% of count)`` above and below have
the same light; places come from sorting every partition's scores together.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.adl import UNDERWATER_SCORE
from streams.engine.profiles import PROFILES
from streams.engine.quantiles import (
    RankCuts,
    cuts_from_wire,
    cuts_to_wire,
    histogram,
    places_from_cuts,
    score_buckets,
    side_cuts,
)

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
    count = cuts.count
    out = []
    for b in buckets:
        places = places_from_cuts(b, cuts)
        out.append([(light(int(p), count), settled(int(p), count)) for p in places])
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
