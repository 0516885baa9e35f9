"""A bounded window of the ids already applied: venue re-sends are ignored, memory is not
kept per event forever.

An id is remembered for at least ``window_ms`` of event time after the event that
carried it, and at most one slice (``window_ms / 16``) longer: ids are kept in slices
of event time and a slice is forgotten whole once all of its ids are older than the
window. At most ``max_ids`` ids are kept (the oldest slices go first; a slice holds at
most ``max_ids / 16`` ids, so at most that many are forgotten early). A re-send later
than that is applied again: size the window to the venue's re-send horizon (a
re-delivered Kafka message of a restarted partition is recognised by its offset, not
here). Events come in canonical (time) order; an id that comes late joins the newest
slice (it is kept a little longer).

Why slices and not one ordered map of id -> time: no time object kept per id (the
soak's window of ~870k ids: 214 MB of worker RSS at its 16th minute against 278 MB with
the map), and a slice is dropped at once. (The RSS steps the soak showed after the window
was full were the heap keeping freed pages: ``pipeline/memory.py``.) The ids are asked
in one set of the whole window; each slice lists its own, to take out of that set when
it goes (a set per slice made a miss, every new event, ~17 lookups in as many cold
tables: 2.5% of the crash's replay).

Memory: a set entry and a list slot per id (~100 bytes with a 30-character id), so the
defaults bound it to ~100 MB at the worst; a 10k-account cascade keeps a few thousand. With
``by_owner`` (the partitioned shards: each account's ids go with its changelog row)
about twice that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_WINDOW_MS = 15 * 60 * 1000  # a venue's re-send comes within seconds to minutes
DEFAULT_MAX_IDS = 1_000_000
SLICES = 16  # per window


@dataclass(slots=True)
class _Slice:
    number: int  # event time // slice width of its first id
    ids: list[str] = field(default_factory=list)  # each in the window's ``_ids`` too
    owners: dict[str, str] = field(default_factory=dict)  # id -> owner (``by_owner``)


class DedupeWindow:
    """``by_owner``: also keep each id under its owner (an account), so that what one
    owner's ids are can be read (``of``) and written with that account's changelog row:
    a venue's re-send after a restart of a partitioned worker is still recognised. The
    single-process worker rebuilds its window from the input history: it keeps none."""

    __slots__ = ("_by_owner", "_ids", "_slice_ids", "_slice_ms", "_slices", "max_ids",
                 "window_ms")  # fmt: skip

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
        self._slice_ms = max(1, window_ms // SLICES)
        self._slice_ids = max(1, -(-max_ids // SLICES))  # a slice's most ids
        self._slices: deque[_Slice] = deque()  # oldest first
        self._ids: set[str] = set()  # every slice's ids: one lookup, not one per slice
        # owner -> its ids -> event time (``by_owner``; ``None``: not kept)
        self._by_owner: dict[str, dict[str, int]] | None = {} if by_owner else None

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def add(self, key: str, ts_ms: int, owner: str = "") -> None:
        """Remember ``key`` (applied at ``ts_ms``) and forget what left the window."""
        if key not in self:
            self.add_unseen(key, ts_ms, owner)

    def add_unseen(self, key: str, ts_ms: int, owner: str = "") -> None:
        """``add`` for a key the caller has just found not ``in`` the window (the
        engine's every event: asked once, not twice)."""
        slices = self._slices
        number = ts_ms // self._slice_ms
        if not slices or (slices[-1].number < number or len(slices[-1].ids) >= self._slice_ids):
            slices.append(_Slice(max(number, slices[-1].number) if slices else number))
        newest = slices[-1]
        newest.ids.append(key)
        self._ids.add(key)
        if self._by_owner is not None:
            newest.owners[key] = owner
            self._by_owner.setdefault(owner, {})[key] = ts_ms
        # a slice goes once all its ids are older than the window, or to keep max_ids
        horizon = ts_ms - self.window_ms
        while slices and (
            (slices[0].number + 1) * self._slice_ms <= horizon or len(self._ids) > self.max_ids
        ):
            self._forget(slices.popleft())

    def _forget(self, old: _Slice) -> None:
        self._ids.difference_update(old.ids)
        if self._by_owner is None:
            return
        for key, owner in old.owners.items():
            mine = self._by_owner[owner]
            del mine[key]
            if not mine:
                del self._by_owner[owner]

    def of(self, owner: str) -> dict[str, int]:
        """The ids ``owner`` has in the window, with their event times (``by_owner``)."""
        if self._by_owner is None:
            raise ValueError("this dedupe window keeps no ids by owner (by_owner=False)")
        return dict(self._by_owner.get(owner, {}))

    def restore(self, ids: Iterable[tuple[str, int, str]]) -> None:
        """Remember (id, event time, owner) triples again (a restart), oldest first."""
        for key, ts_ms, owner in sorted(ids, key=lambda i: i[1]):
            if key not in self:
                self.add(key, ts_ms, owner)
