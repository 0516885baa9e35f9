"""Warm copies: beside the partitions it owns, a process keeps a shard up to date for each
account partition whose changelog it reads as a standby (Faust's
``table_standby_replicas``), so taking over a dead peer's partition means bringing that
copy up to the last rows, not rebuilding the partition from every row (the preset's
opening, one partition of four: ``benchmarks/bench_rebalance.py`` times both).

A copy is fed what the changelog tables apply (``NotedTable``) and brought up to date
every ``WARM_REFRESH_S`` in a thread (``WarmCopy.refresh``: marks moved as an applied mark
moves them, changed accounts replaced and evaluated at those marks: ``Shard.refresh``).
Its state then equals what a restore from the same rows gives, up to what the engine's
own evaluations leave open (an account no mark crossed keeps its last evaluation, as in
the owner's engine); its health, liquidations and bankruptcies are the same
(``tests/unit/agents/test_warm.py``).

Faust's in-memory store forgets a standby partition's rows when a recovery completes,
and reads a partition's changelog again from its start whenever it becomes active here
(it keeps no offsets): ``KeptStore`` keeps both, so a takeover's recovery reads only the
rows written since the standby's last read. A copy keeps the bytes of every row it
applied: a row read again unchanged costs one comparison. A new copy starts from the
tables' rows of its partition (they hold what this process wrote while it owned the
partition, and what it read since). The rankings waiting for the desk's lights are
read from their table at the takeover (``agents.ranking_rows``), like a restore does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.stores import memory
from faust.types import TP

from streams.agents.codec import partition_accounts, partition_marks, row_partition
from streams.agents.shard import Shard
from streams.engine.instruments import Instrument
from streams.pipeline.memory import collector_paused

# how far a copy lags the rows its standby has read, at most (the standby itself lags the
# owner's writes by how fast Faust reads a changelog: ~3,000 rows/s, docs/benchmarks.md)
WARM_REFRESH_S = 1.0
# a standby's changelog rows reach its table (and a copy) in batches of this many: small
# enough that a copy is seconds behind at a quiet hour (Faust's default: 1,000)
STANDBY_BUFFER_ROWS = 100
Noted = Callable[[int, bytes, bytes | None], None]


class KeptStore(memory.Store):  # type: ignore[misc]  # Faust's classes are untyped
    """Faust's in-memory store, keeping what it read. The offset up to which it has
    read each changelog partition (``persisted_offset``), so a recovery reads only what
    came after it: a partition read here as a standby and taken over reads the last
    rows, not its whole changelog again (uncompacted, that is every row ever written).
    And a standby partition's rows across a recovery (the memory store drops every row
    of a partition not active here when one completes, then reads them again at the
    next). A partition neither active nor standby here any more loses its offset: read
    from the start if it comes back.

    Rows written here move the offset only while their partition is ``owned`` here (set
    by the adapter at each assignment, emptied at each revocation): a row delivered
    after a revocation (an apply the revocation interrupted) may land after a new
    owner's first rows, and an offset past them would skip rows this store never read;
    one delivered before it is in the log before any new owner writes. So a partition
    kept across a rebalance reads nothing again (Faust's store read it all: the
    survivor of a kill re-read every row of its own partitions)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.offsets: dict[TP, int] = {}
        self.owned: set[int] = set()  # partitions whose rows written here count

    def persisted_offset(self, tp: TP) -> int | None:
        return self.offsets.get(tp)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """A row written here was delivered at ``offset`` (Faust's callback)."""
        if tp.partition in self.owned:
            self.offsets[tp] = max(offset, self.offsets.get(tp, -1))

    def apply_changelog_batch(
        self, batch: Iterable[Any], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        super().apply_changelog_batch(batch, to_key, to_value)
        offsets = self.offsets
        for event in batch:
            message = event.message
            offsets[message.tp] = max(message.offset, offsets.get(message.tp, -1))

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        held = {tp.partition for tp in active_tps | standby_tps}
        for key in [k for k, p in self._key_partition.items() if p not in held]:
            self.data.pop(key, None)
            del self._key_partition[key]
        for tp in [tp for tp in self.offsets if tp.partition not in held]:
            del self.offsets[tp]


class NotedTable(faust.Table):  # type: ignore[misc]  # Faust's classes are untyped
    """A changelog table in a ``KeptStore`` that tells ``noted(partition, key,
    value)`` of each row it applies from its changelog (a recovery, a standby's
    reading; ``None``: deleted)."""

    def __init__(self, *args: Any, noted: Noted | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.noted = noted

    def _new_store(self) -> KeptStore:
        return KeptStore(
            "memory://",
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            options=self.options,
        )

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        super().apply_changelog_batch(batch)
        noted = self.noted
        if noted is None:
            return
        for event in batch:
            message = event.message
            noted(message.partition, event.key, message.value)


@dataclass(slots=True)
class WarmCopy:
    """One partition's copy: the shard (``None`` until its first rows) and the rows it
    holds. Refreshed in a thread: nothing else touches it meanwhile."""

    partition: int
    instruments: Mapping[str, Instrument]
    summary_interval_ms: int
    shard: Shard[Any] | None = None
    accounts: dict[bytes, bytes] = field(default_factory=dict)  # key -> row applied
    marks: dict[bytes, bytes] = field(default_factory=dict)

    def start(
        self, accounts: Iterable[tuple[bytes, bytes]], marks: Iterable[tuple[bytes, bytes]]
    ) -> int:
        """A new copy from the tables' rows as they are (every partition's: its own
        are picked, by their first bytes and their keys)."""
        prefix = f"{self.partition}:".encode()
        return self.refresh(
            {k: raw for k, raw in accounts if row_partition(raw) == self.partition},
            {k: raw for k, raw in marks if k.startswith(prefix)},
        )

    def refresh(self, accounts: Mapping[bytes, bytes], marks: Mapping[bytes, bytes]) -> int:
        """Bring the copy to these rows (read since the last refresh, by key; a row
        equal to the one it holds is skipped). Returns the accounts replaced."""
        held_accounts, held_marks = self.accounts, self.marks
        changed = {k: raw for k, raw in accounts.items() if held_accounts.get(k) != raw}
        moved = {k: raw for k, raw in marks.items() if held_marks.get(k) != raw}
        if self.shard is not None and not changed and not moved:
            return 0
        # a first refresh makes every object the shard holds: the collector's full
        # passes over them cost 40% of a restore (``restored_shard``), and each full
        # collection after it would walk them all again (frozen: a first refresh only)
        with collector_paused(freeze=self.shard is None):
            if self.shard is None:
                self.shard = Shard(
                    self.partition,
                    self.instruments,
                    summary_interval_ms=self.summary_interval_ms,
                    persist_rankings=True,
                )
            self.shard.refresh(
                partition_accounts(self.partition, changed.values()),
                partition_marks(self.partition, moved.items()),
            )
        held_accounts.update(changed)
        held_marks.update(moved)
        return len(changed)


@dataclass(slots=True)
class WarmCopies:
    """The process's copies and the rows noted for them since their last refresh (kept
    on the event loop; a refresh takes a partition's noted rows with it)."""

    instruments: Mapping[str, Instrument]
    summary_interval_ms: int
    copies: dict[int, WarmCopy] = field(default_factory=dict)
    standbys: set[int] = field(default_factory=set)  # as the last assignment said
    noted_accounts: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    noted_marks: dict[int, dict[bytes, bytes]] = field(default_factory=dict)

    def note_account(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is not None:  # account rows are never deleted
            self.noted_accounts.setdefault(partition, {})[key] = value

    def note_mark(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is not None:
            self.noted_marks.setdefault(partition, {})[key] = value

    def due(self, owned: Iterable[int]) -> list[int]:
        """Partitions owned elsewhere with rows noted for their copy, or standbys here
        with no copy yet."""
        mine = set(owned)
        noted = set(self.noted_accounts) | set(self.noted_marks)
        return sorted((noted | (self.standbys - set(self.copies))) - mine)

    def take_noted(self, partition: int) -> tuple[WarmCopy, dict[bytes, bytes], dict[bytes, bytes]]:
        """The partition's copy and the rows noted for it, which it now owes a
        refresh."""
        return (
            self.copies[partition],
            self.noted_accounts.pop(partition, {}),
            self.noted_marks.pop(partition, {}),
        )

    def new_copy(self, partition: int) -> WarmCopy:
        """A copy for ``partition``, to ``start`` from the tables' rows now (the rows
        noted so far are among them: dropped)."""
        self.forget(partition)
        copy = self.copies[partition] = WarmCopy(
            partition, self.instruments, self.summary_interval_ms
        )
        return copy

    def take(
        self, partition: int
    ) -> tuple[WarmCopy, dict[bytes, bytes], dict[bytes, bytes]] | None:
        """For a takeover: the partition's copy with the rows noted since its last
        refresh, no longer kept here; ``None`` if it has none yet (its noted rows are
        dropped: a restore reads the table)."""
        copy = self.copies.get(partition)
        if copy is None or copy.shard is None:
            self.forget(partition)
            return None
        taken = self.take_noted(partition)
        del self.copies[partition]
        return taken

    def give_back(self, copy: WarmCopy) -> None:
        """A copy taken for a takeover that did not happen (a rebalance came)."""
        self.copies[copy.partition] = copy

    def forget(self, partition: int) -> None:
        """The partition's copy and noted rows (it is owned here again, or nothing
        of it is read here any longer)."""
        self.copies.pop(partition, None)
        self.noted_accounts.pop(partition, None)
        self.noted_marks.pop(partition, None)

    def keep_only(self, standbys: Iterable[int], owned: Iterable[int]) -> None:
        """After an assignment: only the copies of the partitions read here as
        standbys, or owned here now (taken over at their first event), stay."""
        self.standbys = set(standbys)
        keep = self.standbys | set(owned)
        for p in set(self.copies) | set(self.noted_accounts) | set(self.noted_marks):
            if p not in keep:
                self.forget(p)
