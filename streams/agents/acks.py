"""The committed offsets of the agents' inputs cover only events the agents handled.

faust-streaming 0.15 keeps the offsets of a stream's inputs itself, and under a rebalance
it committed events no agent had handled. A CI run (2026-12-02) lost marks 2074-5889 of
one account partition after the other process was killed; the same test here then lost
945-5976 and 2029-6951 (the mark chain check logged each; the outputs stayed short).
Read from those runs' ``__consumer_offsets`` and changelogs and from Faust's code:

1. **Offsets not delivered count as acknowledged.** The fetch loop takes any jump in the
   offsets it reads, past its read offset, for a gap (``Consumer._add_gap``: meant for
   an exchange's transaction markers), and gaps count as acknowledged at the next
   commit. After a rebalance the fetch of a kept partition went on from where it had
   got to while Faust's read offset went back to the committed one: 1,083 marks no
   agent had seen became a "gap" and were committed. The same read offset silently
   drops what is fetched below it. For the agents' inputs there is no read offset any
   more (``_ReadOffsets``): ``InOrder`` does its two jobs, knowing more.
2. **Delivered out of order.** For the same reason a kept partition is delivered from
   its fetch position first, then again from the committed offset; a shard drops the
   re-read marks as copies (not later than the last seen). ``InOrder`` delivers each
   partition's offsets in order: an offset ahead of the next expected one makes it seek
   the partition back and drop what was fetched before, until the re-read begins; if
   the re-read begins at that same offset, the skipped offsets hold no events
   (transaction markers, compacted away) and are recorded as a gap. An exchange writing
   in transactions costs one seek per transaction boundary this way.
3. **Skipped events acknowledged.** Events a stream skips at a rebalance (stale
   generation, flow stopped) are acknowledged by Faust's pure-Python stream iterator
   even under ``noack()`` (the compiled one, used when its extension is built and
   ``NO_CYTHON`` unset, does not). ``AckGuard`` refuses any acknowledgement of an agent
   input that did not come through ``AckGuard.ack``.
4. **Acknowledged out of order.** The commit takes the first consecutive run of
   acknowledged offsets and accepts a run that starts one past the committed offset:
   an event waiting in a shard's buffer while a later one of its partition was
   acknowledged (a tick, a copy) could be committed past. ``AckGuard`` passes
   acknowledgements to Faust in offset order per partition.
5. **The commit does not wait for the agents' rows.** Before it commits, Faust flushes
   its producer, but the buffer of pending changelog writes only until no message
   leaves it for 0.1 s (``ProducerBuffer.flush_atmost``): offsets could be committed with
   the rows of the events they cover still buffered. ``flush_fully`` drains it.

6. **Nothing committed taken for "anything goes".** Faust says ``None`` for a partition
   never committed (and for offset 0); ``InOrder`` then took the first offset delivered
   for the start. After a rebalance that was a record fetched before it: the re-read
   from the start came below it and was dropped as copies, and the events a shard had
   buffered (and dropped when it was taken up again) were never applied. The every-role
   soak test lost fills 78-121 of one partition this way, early in the run, and failed
   in about half its runs (2026-12-03). Now such a partition is delivered from offset
   0 (a log that starts later: the re-read proves the offsets before it empty, a gap).
7. **Delivered before the committed offsets are read.** Faust's recovery resumes the
   fetch of an assignment's partitions, then seeks them to their committed offsets and
   fills its map of them (``Recovery.on_recovery_completed``: ``resume_partitions``,
   then ``perform_seek``). An event delivered in between found no committed offset and
   its partition was read again from offset 0: at 200,000 accounts every input of the
   survivor of a kill was re-read, the first output of a moved partition came 79 s after
   the kill (2026-12-05, ``bench_takeover.py --accounts 200000``). ``SeekGate`` holds
   each delivery until the assignment's seek is done.

Every guard covers the account agent's inputs and the fund desk's (which recognises a
fund or book update delivered again by its offset, ``FundDesk.applied``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping
from typing import Any

from faust.types import TP, EventT, StreamT

log = logging.getLogger("adl_monitor.agents.acks")

FLUSH_POLL_S = 0.005
FLUSH_TIMEOUT_S = 60.0
SEEK_POLL_S = 0.05  # a delivery held by ``SeekGate`` looks again
SEEK_WAIT_S = 60.0  # then passed without: read from its start (slow, loses nothing)


class AckGuard:
    """Installed on the app's consumer; the agents tell it what was delivered
    (``delivered``) and acknowledge through ``ack``. Acknowledgements reach Faust in
    offset order per partition: its commit takes the first consecutive run of
    acknowledged offsets and lets it start one past the committed offset, so an event
    still buffered in a shard while a later one of its partition was acknowledged (a
    tick, a copy) could be committed past."""

    def __init__(self, topics: Collection[str], ordered: Collection[str] = ()) -> None:
        """``topics``: the agents' inputs (Faust's acknowledgements refused); ``ordered``:
        those delivered through ``InOrder`` (registered with ``delivered``)."""
        self.topics = frozenset(topics)
        self.ordered = frozenset(ordered)
        self.refused = 0  # acknowledgements Faust tried to make for an agent (skipped events)
        self._ours = False
        # per partition, delivered events in offset order: None until handled
        self._waiting: dict[TP, OrderedDict[int, tuple[StreamT[Any], EventT] | None]] = {}

    def install(self, consumer: Any) -> None:
        acknowledge: Callable[[Any], bool] = consumer.ack

        def guarded_ack(message: Any) -> bool:
            if self._ours or message.topic not in self.topics:
                return acknowledge(message)
            self.refused += 1
            return False

        consumer.ack = guarded_ack
        # Faust's read offsets drop what it fetches below them and take a jump above
        # them for a gap: for the agents' inputs ``InOrder`` does both, knowing more
        consumer._read_offset = _ReadOffsets(self.ordered)

    def delivered(self, event: EventT) -> None:
        message = event.message
        self._waiting.setdefault(message.tp, OrderedDict())[message.offset] = None

    def forget(self, tps: Collection[TP]) -> None:
        for tp in tps:
            self._waiting.pop(tp, None)

    async def ack(self, stream: StreamT[Any], event: EventT) -> None:
        """The agent handled ``event`` (applied, outputs and rows written)."""
        message = event.message
        if message.topic not in self.ordered:
            await self._acknowledge(stream, event)
            return
        waiting = self._waiting.get(message.tp)
        if waiting is None or message.offset not in waiting:
            return  # delivered before the partition was revoked: not ours to commit now
        waiting[message.offset] = (stream, event)
        while waiting:
            handled = waiting[next(iter(waiting))]
            if handled is None:
                return
            waiting.popitem(last=False)
            await self._acknowledge(*handled)

    async def _acknowledge(self, stream: StreamT[Any], event: EventT) -> None:
        # ``Stream.ack`` runs to the consumer's ``ack`` without suspending: the flag
        # covers exactly this call
        self._ours = True
        try:
            await stream.ack(event)
        finally:
            self._ours = False


class _ReadOffsets(dict[TP, "int | None"]):
    """Faust's read offset per partition, none for the agents' inputs."""

    def __init__(self, topics: frozenset[str]) -> None:
        super().__init__()
        self.topics = topics

    def __getitem__(self, tp: TP) -> int | None:
        return None if tp.topic in self.topics else self.get(tp)


def flush_fully(buffer: Any) -> None:
    """Make the producer buffer's ``flush`` (called before every commit) return once every
    message put in it before the call is handed to the client (the client's own flush,
    next, waits for their delivery); messages put while it waits do not hold it.
    Installed before the buffer starts: its sending task takes ``_send_pending`` when it
    starts."""
    send: Callable[[Any], Coroutine[Any, Any, None]] = buffer._send_pending
    put: Callable[[Any], None] = buffer.put
    counts = {"put": 0, "sent": 0}

    def counted_put(fut: Any) -> None:
        counts["put"] += 1
        put(fut)

    async def counted_send(fut: Any) -> None:
        try:
            await send(fut)
        finally:
            counts["sent"] += 1

    async def flush() -> None:
        due = counts["put"]
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while counts["sent"] < due:
            # a stopping buffer sends nothing more; a broker gone for a minute: either
            # way no commit (Faust's own flush raises when stopping with messages left)
            if buffer.should_stop or time.monotonic() > deadline:
                raise RuntimeError(f"{due - counts['sent']} table rows not written: no commit")
            await asyncio.sleep(FLUSH_POLL_S)

    buffer.put = counted_put
    buffer._send_pending = counted_send
    buffer.flush = flush


class SeekGate:
    """Open once Faust has sought the partitions of the consumer's current generation
    to their committed offsets (``Consumer.perform_seek``, which also fills the map
    ``InOrder`` is given them from). A seek started under an earlier generation (Faust
    seeks too when it fetches while the flow is stopped, mid-rebalance) opens nothing."""

    def __init__(
        self,
        generation: Callable[[], int],
        then: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """``then``: run after Faust's seek, before the gate opens (no delivery of the
        generation comes between: ``AccountAgents.resume_kept`` seeks on from there)."""
        self.generation = generation
        self.then = then
        self.sought: int | None = None  # the generation of the last seek completed
        self.held = 0  # deliveries that waited for a seek

    def install(self, consumer: Any) -> None:
        perform_seek: Callable[[], Coroutine[Any, Any, None]] = consumer.perform_seek

        async def perform_seek_then_open() -> None:
            generation = self.generation()
            await perform_seek()
            if self.then is not None and self.generation() == generation:
                await self.then()
            self.sought = generation

        consumer.perform_seek = perform_seek_then_open

    def open(self) -> bool:
        """The current generation's committed offsets are read (the common case: a
        delivery checks this first, without a coroutine)."""
        return self.sought == self.generation()

    async def passed(self, assigned: Callable[[], bool]) -> bool:
        """Wait until the committed offsets are read; ``False``: the event's partition was
        revoked meanwhile (it is delivered again to its next owner)."""
        began = None
        while not self.open():
            if not assigned():
                return False
            now = time.monotonic()
            if began is None:
                began, self.held = now, self.held + 1
            elif now - began > SEEK_WAIT_S:  # Faust's seek failed: no committed offset
                log.warning("no seek to committed offsets in %.0f s: read from 0", now - began)
                return True
            await asyncio.sleep(SEEK_POLL_S)
        return True


def resume_offsets(due: Mapping[TP, int], buffered: Iterable[tuple[TP, int]]) -> dict[TP, int]:
    """Where a shard put aside at a revocation (``due``: the next offset of each input
    then) reads on when it is taken up again: at the lowest offset it had buffered and
    not applied (``Shard.rewind`` drops those: delivered again), else at ``due``.
    Everything below was applied by the shard and its outputs delivered, even when its
    offsets were not committed yet."""
    resume = dict(due)
    for tp, offset in buffered:
        if tp in resume and offset < resume[tp]:
            resume[tp] = offset
    return resume


class InOrder:
    """Per input partition, the next offset to deliver: from the committed offset after
    an assignment, then each offset in turn."""

    def __init__(self) -> None:
        self.next_offset: dict[TP, int] = {}
        self.rereading: dict[TP, int] = {}  # sought back: the offset that came ahead
        self.seeks = 0
        self.gaps = 0  # offsets found to hold no events (markers), recorded as a gap

    def forget(self, tps: Collection[TP]) -> None:
        for tp in tps:
            self.next_offset.pop(tp, None)
            self.rereading.pop(tp, None)

    def due(self, tp: TP, committed: int | None) -> int:
        """The offset of ``tp`` to deliver next: the one after the last delivered, or
        the committed offset if none was since the assignment."""
        # nothing committed (Faust says ``None`` for 0 too): the partition is read from
        # its start (``auto_offset_reset=earliest``). Taking whatever comes first instead
        # took a record fetched before a rebalance for the start and dropped the re-read
        # below it as copies: events no shard had applied were never delivered (the
        # every-role soak test lost fills 78-121 of one partition this way)
        return self.next_offset.get(tp, committed or 0)

    def verdict(
        self, tp: TP, offset: int, committed: int | None
    ) -> tuple[bool, int | None, tuple[int, int] | None]:
        """(deliver this event?, offset to seek the partition back to, offsets
        ``[from, to)`` found to hold no events)."""
        expected = self.due(tp, committed)
        ahead = self.rereading.get(tp)
        gap = None
        if ahead is not None:
            if offset > ahead:  # fetched before the seek back
                return False, None, None
            del self.rereading[tp]  # the re-read began
            if offset > expected:
                gap = (expected, offset)  # the re-read skipped them too: no events there
                self.gaps += 1
        elif offset != expected:
            if offset < expected:  # delivered before, in order
                return False, None, None
            self.rereading[tp] = offset
            self.seeks += 1
            return False, expected, None
        self.next_offset[tp] = offset + 1
        return True, None, gap
