"""A bounded window of the ids already applied: venue re-sends are ignored, memory is not
kept per event forever.

An id is remembered for ``window_ms`` of event time after the event that carried it,
and at most ``max_ids`` ids are kept (the oldest go first). A re-send later than that
is applied again: size the window to the venue's re-send horizon (a re-delivered Kafka
message of a restarted partition is recognised by its offset, not here). Events come in
canonical (time) order, so ids are forgotten oldest first; one that came late is kept
until the ids before it go.

Memory: one dict entry per id in the window (~130 bytes with a 30-character id), so the
defaults bound it to ~130 MB at the worst; a 10k-account cascade keeps a few thousand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_WINDOW_MS = 15 * 60 * 1000  # a venue's re-send comes within seconds to minutes
DEFAULT_MAX_IDS = 1_000_000


class DedupeWindow:
    """Ids in the window, each under its owner (an account): what one owner's ids are is
    what a partitioned worker keeps with that account's changelog row, so a venue's
    re-send after a restart is still recognised."""

    __slots__ = ("_by_owner", "_ids", "max_ids", "window_ms")

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, max_ids: int = DEFAULT_MAX_IDS):
        if window_ms <= 0 or max_ids <= 0:
            raise ValueError(f"dedupe window {window_ms} ms / {max_ids} ids: both must be > 0")
        self.window_ms = window_ms
        self.max_ids = max_ids
        # id -> (event time, owner), oldest first
        self._ids: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._by_owner: dict[str, dict[str, int]] = {}  # owner -> its ids -> event time

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def add(self, key: str, ts_ms: int, owner: str = "") -> None:
        """Remember ``key`` (applied at ``ts_ms``) and forget what left the window."""
        ids = self._ids
        ids[key] = (ts_ms, owner)
        self._by_owner.setdefault(owner, {})[key] = ts_ms
        horizon = ts_ms - self.window_ms
        while ids:
            oldest_key, (oldest_ts, oldest_owner) = next(iter(ids.items()))
            if oldest_ts >= horizon and len(ids) <= self.max_ids:
                break
            del ids[oldest_key]
            mine = self._by_owner[oldest_owner]
            del mine[oldest_key]
            if not mine:
                del self._by_owner[oldest_owner]

    def of(self, owner: str) -> dict[str, int]:
        """The ids ``owner`` has in the window, with their event times."""
        return dict(self._by_owner.get(owner, {}))

    def restore(self, ids: Iterable[tuple[str, int, str]]) -> None:
        """Remember (id, event time, owner) triples again (a restart), oldest first."""
        for key, ts_ms, owner in sorted(ids, key=lambda i: i[1]):
            if key not in self._ids:
                self.add(key, ts_ms, owner)
