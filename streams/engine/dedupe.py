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

DEFAULT_WINDOW_MS = 15 * 60 * 1000  # a venue's re-send comes within seconds to minutes
DEFAULT_MAX_IDS = 1_000_000


class DedupeWindow:
    __slots__ = ("_ids", "max_ids", "window_ms")

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, max_ids: int = DEFAULT_MAX_IDS):
        if window_ms <= 0 or max_ids <= 0:
            raise ValueError(f"dedupe window {window_ms} ms / {max_ids} ids: both must be > 0")
        self.window_ms = window_ms
        self.max_ids = max_ids
        self._ids: OrderedDict[str, int] = OrderedDict()  # id -> event time, oldest first

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def add(self, key: str, ts_ms: int) -> None:
        """Remember ``key`` (applied at ``ts_ms``) and forget what left the window."""
        ids = self._ids
        ids[key] = ts_ms
        horizon = ts_ms - self.window_ms
        while ids:
            oldest_key, oldest_ts = next(iter(ids.items()))
            if oldest_ts >= horizon and len(ids) <= self.max_ids:
                break
            del ids[oldest_key]
