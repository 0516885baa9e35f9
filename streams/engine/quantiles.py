"""Rank lights across partitions: score sketches up, light boundaries down.

A light is a function of a position's place in its symbol-side queue among every
partition's positions (``VenueProfile.light(place, count)``); a partition knows only its
own. Each partition sends the histogram of its ranking's scores on a logarithmic grid
(relative width ``accuracy``, signed, so the order of scores is the order of buckets).
Histograms add up. From the merged one the fund desk finds, for each place where the
light or the alert debounce changes (``cut_places``), the bucket holding that place and
how many of the bucket's positions come before it (``locate``). A partition then puts
each of its positions on the right side of every cut (``places_from_cuts``).

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

DEFAULT_ACCURACY = 1e-4  # relative width of a bucket
SMALLEST_SCORE = 1e-12  # |score| below: one bucket (0)

Histogram = tuple[tuple[int, int], ...]  # (bucket, positions), best bucket first


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


def histogram(buckets: npt.NDArray[np.int64]) -> Histogram:
    """Run lengths of a queue's buckets (a queue is ordered by score: buckets do not
    increase along it)."""
    if not len(buckets):
        return ()
    starts = np.flatnonzero(np.diff(buckets)) + 1
    bounds = np.concatenate(([0], starts, [len(buckets)]))
    return tuple((int(buckets[a]), int(b - a)) for a, b in itertools.pairwise(bounds))


def merge(histograms: Iterable[Histogram]) -> Histogram:
    counts: dict[int, int] = {}
    for h in histograms:
        for bucket, n in h:
            counts[bucket] = counts.get(bucket, 0) + n
    return tuple(sorted(counts.items(), reverse=True))


def cut_places(profile: VenueProfile, count: int, margin: int) -> list[int]:
    """Places (0 < place < count) where the light of a place, or whether it is settled
    (the same light ``margin`` places above and below), changes: each boundary ``b``
    (light(b) != light(b - 1)) and ``b - margin``, ``b + margin``."""
    boundaries = []
    place = 0
    while place < count:
        light = profile.light(place, count)
        lo, hi = place + 1, count  # first place after ``place`` with another light
        while lo < hi:
            mid = (lo + hi) // 2
            if profile.light(mid, count) != light:
                hi = mid
            else:
                lo = mid + 1
        if lo < count:
            boundaries.append(lo)
        place = lo
    cuts = {c for b in boundaries for c in (b - margin, b, b + margin) if 0 < c < count}
    return sorted(cuts)


@dataclass(frozen=True, slots=True)
class Cut:
    place: int
    bucket: int
    before: int  # positions of the bucket placed before ``place``
    bucket_count: int  # positions in the bucket, every partition's


@dataclass(frozen=True, slots=True)
class SideCuts:
    count: int  # positions on the side, every partition's
    cuts: tuple[Cut, ...]  # by place


def locate(merged: Histogram, places: Sequence[int]) -> tuple[Cut, ...]:
    """The bucket of each place (ascending) in the merged histogram."""
    out = []
    first = 0  # place of the bucket's first position
    it = iter(merged)
    bucket, n = next(it, (0, 0))
    for place in places:
        while place >= first + n:
            first += n
            bucket, n = next(it)
        out.append(Cut(place, bucket, place - first, n))
    return tuple(out)


def side_cuts(
    histograms: Iterable[Histogram], profile: VenueProfile, margin_share: float
) -> SideCuts:
    merged = merge(histograms)
    count = sum(n for _, n in merged)
    return SideCuts(count, locate(merged, cut_places(profile, count, int(count * margin_share))))


def places_from_cuts(buckets: npt.NDArray[np.int64], cuts: SideCuts) -> npt.NDArray[np.int64]:
    """For a partition's queue (its positions' buckets, in queue order) the place of
    each position as far as lights tell: the last cut at or before it (0 if none).
    Within a cut's bucket the partition's positions are taken as evenly spread among
    the bucket's ``bucket_count``."""
    places = np.zeros(len(buckets), dtype=np.int64)
    if not len(buckets) or not cuts.cuts:
        return places
    # each position's index among the partition's positions of its bucket, and their number
    starts = np.concatenate(([0], np.flatnonzero(np.diff(buckets)) + 1))
    lengths = np.diff(np.concatenate((starts, [len(buckets)])))
    first = np.repeat(starts, lengths)
    local_count = np.repeat(lengths, lengths)
    index = np.arange(len(buckets)) - first
    for cut in cuts.cuts:
        spread = index * cut.bucket_count // local_count  # place within the bucket, estimated
        after = (buckets < cut.bucket) | ((buckets == cut.bucket) & (spread >= cut.before))
        places[after] = cut.place
    return places


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
                "count": c.count,
                "cuts": [[k.place, k.bucket, k.before, k.bucket_count] for k in c.cuts],
            }
            for side, c in cuts.sides.items()
        },
    }


def cuts_from_wire(obj: dict[str, Any]) -> RankCuts:
    sides = {
        str(side): SideCuts(
            int(c["count"]),
            tuple(Cut(int(p), int(b), int(before), int(n)) for p, b, before, n in c["cuts"]),
        )
        for side, c in obj["sides"].items()
    }
    return RankCuts(str(obj["symbol"]), int(obj["ts"]), sides)
