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
With ``by_owner`` (the partitioned shards: each account's ids go with its changelog row)
two more entries per id, about twice that.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_WINDOW_MS = 15 * 60 * 1000  # a venue's re-send comes within seconds to minutes
DEFAULT_MAX_IDS = 1_000_000


class DedupeWindow:
    """``by_owner``: also keep each id under its owner (an account), so that what one
    owner's ids are can be read (``of``) and written with that account's changelog row:
    a venue's re-send after a restart of a partitioned worker is still recognised. The
    single-process worker rebuilds its window from the input history: it keeps none."""

    __slots__ = ("_by_owner", "_ids", "_owners", "max_ids", "window_ms")

    def __init__(
        self,
        window_ms: int = DEFAULT_WINDOW_MS,
        max_ids: int = DEFAULT_MAX_IDS,
        by_owner: bool = False,
    ):
        if window_ms <= 0 or max_ids <= 0:
            raise ValueError(f"dedupe window {window_ms} ms / {max_ids} ids: both must be > 0")
        self.window_ms = window_ms
        self.max_ids = max_ids
        self._ids: OrderedDict[str, int] = OrderedDict()  # id -> event time, oldest first
        self._owners: dict[str, str] | None = {} if by_owner else None  # id -> owner
        self._by_owner: dict[str, dict[str, int]] = {}  # owner -> its ids -> event time

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def add(self, key: str, ts_ms: int, owner: str = "") -> None:
        """Remember ``key`` (applied at ``ts_ms``) and forget what left the window."""
        ids, owners = self._ids, self._owners
        ids[key] = ts_ms
        if owners is not None:
            owners[key] = owner
            self._by_owner.setdefault(owner, {})[key] = ts_ms
        horizon = ts_ms - self.window_ms
        while ids:
            oldest_key, oldest_ts = next(iter(ids.items()))
            if oldest_ts >= horizon and len(ids) <= self.max_ids:
                break
            del ids[oldest_key]
            if owners is not None:
                oldest_owner = owners.pop(oldest_key)
                mine = self._by_owner[oldest_owner]
                del mine[oldest_key]
                if not mine:
                    del self._by_owner[oldest_owner]

    def of(self, owner: str) -> dict[str, int]:
        """The ids ``owner`` has in the window, with their event times (``by_owner``)."""
        if self._owners is None:
            raise ValueError("this dedupe window keeps no ids by owner (by_owner=False)")
        return dict(self._by_owner.get(owner, {}))

    def restore(self, ids: Iterable[tuple[str, int, str]]) -> None:
        """Remember (id, event time, owner) triples again (a restart), oldest first."""
        for key, ts_ms, owner in sorted(ids, key=lambda i: i[1]):
            if key not in self._ids:
                self.add(key, ts_ms, owner)
