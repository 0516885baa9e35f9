"""Rank lights across partitions: score sketches up, light boundaries down.

A light is a function of a position's reach in its symbol-side queue (the weight of the
queue from its top through it: positions, or quantity where the venue's lights go by
quantity; ``VenueProfile.light(reach, total)``) among every partition's positions; a
partition knows only its own. Each partition sends the histogram of its ranking's
scores on a logarithmic grid (relative width ``accuracy``, signed, so the order of
scores is the order of buckets), each bucket with its weight. Histograms add up. From
the merged one the fund desk finds, for each reach where the light or the alert
debounce changes (``cut_reaches``), the bucket holding that reach and how much of the
bucket's weight comes before it (``locate``). A partition then puts each of its
positions on the right side of every cut (``reaches_from_cuts``).

Exact when a bucket holding a cut has positions of one partition only (always with one
partition). Where positions of several partitions share such a bucket (scores within
``accuracy`` of each other), the partition assumes its own are spread evenly through
the bucket: a position may then fall on the wrong side of that cut.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.engine.profiles import VenueProfile
from streams.engine.profiles.base import exact_int_dtype

DEFAULT_ACCURACY = 1e-4  # relative width of a bucket
SMALLEST_SCORE = 1e-12  # |score| below: one bucket (0)

Histogram = tuple[tuple[int, int], ...]  # (bucket, weight), best bucket first


def score_buckets(
    scores: Sequence[float] | npt.NDArray[np.float64], accuracy: float
) -> npt.NDArray[np.int64]:
    """Bucket of each score: order-preserving (a better score never gets a lower
    bucket), 0 for |score| < SMALLEST_SCORE, negative for negative scores."""
    values = np.asarray(scores, dtype=np.float64)
    magnitude = np.maximum(np.abs(values), SMALLEST_SCORE)
    steps = np.floor(np.log(magnitude / SMALLEST_SCORE) / math.log1p(accuracy)).astype(np.int64)
    signs = np.sign(values).astype(np.int64)
    return np.where(np.abs(values) < SMALLEST_SCORE, 0, signs * (steps + 1))


def histogram(
    buckets: npt.NDArray[np.int64], weights: npt.NDArray[np.int64] | None = None
) -> Histogram:
    """Run lengths of a queue's buckets (a queue is ordered by score: buckets do not
    increase along it), or with ``weights`` (sizes, raw) the weight of each run."""
    if not len(buckets):
        return ()
    starts = np.flatnonzero(np.diff(buckets)) + 1
    bounds = np.concatenate(([0], starts, [len(buckets)]))
    if weights is None:
        return tuple((int(buckets[a]), int(b - a)) for a, b in itertools.pairwise(bounds))
    # one pass over the runs; Python ints where a side's weight may pass int64
    dtype = exact_int_dtype(float(weights.sum(dtype=np.float64)))
    sums = np.add.reduceat(weights.astype(dtype), bounds[:-1])
    return tuple(zip(buckets[bounds[:-1]].tolist(), map(int, sums.tolist()), strict=True))


def merge(histograms: Iterable[Histogram]) -> Histogram:
    counts: dict[int, int] = {}
    for h in histograms:
        for bucket, n in h:
            counts[bucket] = counts.get(bucket, 0) + n
    return tuple(sorted(counts.items(), reverse=True))


def cut_reaches(profile: VenueProfile, total: int, margin: int) -> list[int]:
    """Reaches (1 < reach <= total) where the light, or whether it is settled (the same
    light ``margin`` above and below), changes: each boundary ``b`` (light(b) !=
    light(b - 1)) and ``b - margin``, ``b + margin``."""
    boundaries = []
    reach = 1
    while reach <= total:
        light = profile.light(reach, total)
        lo, hi = reach + 1, total + 1  # first reach after ``reach`` with another light
        while lo < hi:
            mid = (lo + hi) // 2
            if profile.light(mid, total) != light:
                hi = mid
            else:
                lo = mid + 1
        if lo <= total:
            boundaries.append(lo)
        reach = lo
    cuts = {c for b in boundaries for c in (b - margin, b, b + margin) if 1 < c <= total}
    return sorted(cuts)


@dataclass(frozen=True, slots=True)
class Cut:
    reach: int
    bucket: int
    before: int  # weight of the bucket before the cut's position (reach - 1 - bucket start)
    bucket_weight: int  # the bucket's weight, every partition's


@dataclass(frozen=True, slots=True)
class SideCuts:
    total: int  # the side's weight, every partition's
    cuts: tuple[Cut, ...]  # by reach


def locate(merged: Histogram, reaches: Sequence[int]) -> tuple[Cut, ...]:
    """The bucket of each reach (ascending) in the merged histogram."""
    out = []
    first = 0  # weight before the bucket
    it = iter(merged)
    bucket, n = next(it, (0, 0))
    for reach in reaches:
        while reach > first + n:
            first += n
            bucket, n = next(it)
        out.append(Cut(reach, bucket, reach - 1 - first, n))
    return tuple(out)


def side_cuts(
    histograms: Iterable[Histogram], profile: VenueProfile, margin_share: float
) -> SideCuts:
    merged = merge(histograms)
    total = sum(n for _, n in merged)
    return SideCuts(total, locate(merged, cut_reaches(profile, total, int(total * margin_share))))


def reaches_from_cuts(
    buckets: npt.NDArray[np.int64], weights: npt.NDArray[np.int64] | None, cuts: SideCuts
) -> npt.NDArray[Any]:
    """For a partition's queue (its positions' buckets and weights, ``None``: 1 each, in
    queue order) the
    reach of each position as far as lights tell: the last cut at or before it (1 if
    none). Within a cut's bucket the partition's positions are taken as evenly spread
    through the bucket's ``bucket_weight``."""
    if weights is None:
        weights = np.ones(len(buckets), dtype=np.int64)
    widest = max((c.bucket_weight for c in cuts.cuts), default=0)
    # int64 while every product below stays exact, else Python ints
    most = max(cuts.total, int(weights.sum(dtype=np.float64)))
    dtype = exact_int_dtype(most * max(widest, 1))
    reaches = np.ones(len(buckets), dtype=dtype)
    if not len(buckets) or not cuts.cuts:
        return reaches
    # each position's weight before it among the partition's positions of its bucket,
    # and the partition's weight of the bucket
    exact = weights.astype(dtype)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(buckets)) + 1))
    lengths = np.diff(np.concatenate((starts, [len(buckets)])))
    through = np.cumsum(exact)
    start_before = np.repeat(through[starts] - exact[starts], lengths)
    ahead = through - exact - start_before
    local_weight = np.repeat(np.add.reduceat(exact, starts), lengths)
    for cut in cuts.cuts:
        # the weight of the bucket through the position, estimated; at or after the cut
        # once it passes the weight of the bucket before the cut
        through_cut = ahead * cut.bucket_weight // local_weight + exact
        after = (buckets < cut.bucket) | ((buckets == cut.bucket) & (through_cut > cut.before))
        reaches[after] = cut.reach
    return reaches


@dataclass(frozen=True, slots=True)
class RankCuts:
    """Light boundaries of one symbol's queues at ``ts_ms``, for every partition."""

    symbol: str
    ts_ms: int
    sides: dict[str, SideCuts]  # long / short


def cuts_to_wire(cuts: RankCuts) -> dict[str, Any]:
    return {
        "symbol": cuts.symbol,
        "ts": cuts.ts_ms,
        "sides": {
            side: {
                "count": wire_int(c.total),
                "cuts": [
                    # the wire's first field is the weight before the cut (reach - 1):
                    # the place of the cut's position by positions, as it always was
                    [wire_int(k.reach - 1), k.bucket, wire_int(k.before), wire_int(k.bucket_weight)]
                    for k in c.cuts
                ],
            }
            for side, c in cuts.sides.items()
        },
    }


def cuts_from_wire(obj: dict[str, Any]) -> RankCuts:
    sides = {
        str(side): SideCuts(
            int(c["count"]),
            tuple(
                Cut(int(place) + 1, int(b), int(before), int(n))
                for place, b, before, n in c["cuts"]
            ),
        )
        for side, c in obj["sides"].items()
    }
    return RankCuts(str(obj["symbol"]), int(obj["ts"]), sides)


INT64_MAX = 2**63 - 1


def wire_int(n: int) -> int | str:
    """An integer as JSON carries it: past int64 (a quantity weight), a decimal string."""
    return n if n <= INT64_MAX else str(n)
