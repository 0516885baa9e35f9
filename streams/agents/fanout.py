"""The mark fan-out: every valid mark of ``mark_prices`` (one partition, time order) to
every partition of ``account_marks``, committed only once delivered.

Not a Faust agent, on purpose. faust-streaming 0.15 drops the events a stream fetched
before a rebalance (their generation is stale) and *acknowledges* them, and commits the
first consecutive run of acknowledged offsets whether or not it starts at the committed
one (``Consumer._new_offset``); a partition kept across the rebalance resumes from the
fetch position. Measured here (issue 15): 209 marks, then 27, forwarded to no account
partition after a SIGKILL of the other process; upstream reports #216, #221/#223.

So the fan-out is a plain aiokafka consumer in its own group (one member holds the
topic's one partition; a dead member's share moves after the session timeout):
auto-commit off, the offset after a batch committed once every copy of every mark in it
is delivered, and a partition (re)assigned resumes at that committed offset. A kill at
any point re-forwards at most one batch (the shards recognise a copy: same symbol, not
a later time) and loses nothing.

Each copy names its source (``adl-source``, ``mark_prices:0:<offset>``) and the source
offset of the mark this run forwarded before it (``adl-prev``; absent on the first of a
run, whose predecessors the committed offset vouches for). An account partition that
receives a mark whose predecessor it never saw has lost marks on its own input: the
chain check in ``app`` counts it (``adl_agent_mark_gaps_total``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from streams.engine.errors import AdlMonitorError
from streams.pipeline.intake import decode_message
from streams.pipeline.settings import Settings

log = logging.getLogger("adl_monitor.agents.fanout")
SOURCE_HEADER = "adl-source"  # topic:partition:offset of the input that caused the output
PREV_HEADER = "adl-prev"  # source offset of the mark forwarded before this one (same run)
BATCH_MARKS = 500  # marks read, forwarded and committed together
RESTART_MIN_S, RESTART_MAX_S = 0.5, 30.0  # pause before the fan-out starts again

# (key, value, partition, headers) -> awaitable delivery
Send = Callable[[bytes | None, bytes, int, list[tuple[str, bytes]]], Awaitable[Awaitable[Any]]]
DeadLetter = Callable[[Any, AdlMonitorError], Awaitable[None]]


class _Restart(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition (re)assigned starts a new run: no predecessor to vouch for."""

    def __init__(self, fan_out: MarkFanOut) -> None:
        self.fan_out = fan_out

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._forget(assigned)

    def _forget(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.fan_out.prev_offset.pop(tp, None)
            self.fan_out.next_offset.pop(tp, None)


class MarkFanOut:
    """Reads ``marks_topic`` in the group ``group_id``; ``send`` writes one copy to one
    account partition; ``dead_letter`` reports an invalid mark (delivered when it returns)."""

    def __init__(
        self,
        settings: Settings,
        marks_topic: str,
        group_id: str,
        symbols: frozenset[str],
        send: Send,
        dead_letter: DeadLetter,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
    ) -> None:
        self.settings = settings
        self.marks_topic = marks_topic
        self.symbols = symbols
        self.send = send
        self.dead_letter = dead_letter
        self.options: dict[str, Any] = {
            **settings.client_options(),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            # an exchange writing in transactions: aborted marks are never forwarded
            "isolation_level": "read_committed",
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
        }
        self.consumer: AIOKafkaConsumer | None = None  # made in ``run`` (needs the loop)
        self.prev_offset: dict[TopicPartition, int] = {}  # last forwarded, this run
        self.next_offset: dict[TopicPartition, int] = {}  # every offset before: delivered
        self.marks_fanned_out = 0
        self.commits_refused = 0  # a rebalance took the partition mid-batch: re-read
        self.restarts = 0  # runs ended by an error (logged)
        self.last_mark_at = 0.0  # wall time of the last mark forwarded

    def assignment(self) -> set[TopicPartition]:
        return set() if self.consumer is None else set(self.consumer.assignment())

    def caught_up(self) -> bool:
        """Every mark now in the partitions this fan-out holds is forwarded (true when
        it holds none: another process forwards them)."""
        consumer = self.consumer
        if consumer is None:
            return False
        for tp in self.assignment():
            high = consumer.highwater(tp)
            done = self.next_offset.get(tp)
            if high is None or done is None or done < high:
                return False
        return True

    def positions(self) -> dict[int, tuple[int | None, int | None]]:
        """Partition -> (next offset to forward, end of the partition) of what it holds."""
        consumer = self.consumer
        if consumer is None:
            return {}
        return {
            tp.partition: (self.next_offset.get(tp), consumer.highwater(tp))
            for tp in self.assignment()
        }

    async def run(self) -> None:
        """Forward until cancelled. A Faust task is not supervised (an agent is): an
        error (the broker away, a send refused) is logged and the fan-out starts again
        from the committed offset after a pause, instead of stopping every mark."""
        pause_s = RESTART_MIN_S
        while True:
            started = time.monotonic()
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # logged; the next life re-reads the batch
                self.restarts += 1
                log.exception("mark fan-out failed: starting again in %.1f s", pause_s)
            if time.monotonic() - started > RESTART_MAX_S:
                pause_s = RESTART_MIN_S  # it ran a while: not a crash loop
            await asyncio.sleep(pause_s)
            pause_s = min(RESTART_MAX_S, pause_s * 2)

    async def _run_once(self) -> None:
        self.consumer = consumer = AIOKafkaConsumer(**self.options)
        self.prev_offset.clear()  # a new run: nothing forwarded yet
        self.next_offset.clear()
        try:
            await consumer.start()
            consumer.subscribe([self.marks_topic], listener=_Restart(self))
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=BATCH_MARKS)
                for tp, records in batch.items():
                    await self._forward(consumer, tp, records)
                for tp in self.assignment():  # what was handed out is delivered
                    try:
                        self.next_offset[tp] = await consumer.position(tp)
                    except IllegalStateError:  # revoked meanwhile
                        self.next_offset.pop(tp, None)
        finally:
            await consumer.stop()

    async def _forward(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Any]
    ) -> None:
        prev = self.prev_offset.get(tp)
        deliveries = []
        forwarded = 0
        for record in records:
            try:
                decode_message("mark_prices", record.value, self.symbols)
            except AdlMonitorError as exc:
                await self.dead_letter(record, exc)
                continue
            source = f"mark_prices:{tp.partition}:{record.offset}"  # base name, as outputs
            headers = [(SOURCE_HEADER, source.encode())]
            if prev is not None:
                headers.append((PREV_HEADER, str(prev).encode()))
            deliveries += [
                await self.send(record.key, record.value, p, headers)
                for p in range(self.settings.partitions)
            ]
            prev = record.offset
            forwarded += 1
        await asyncio.gather(*deliveries)  # every copy delivered before the commit
        self.marks_fanned_out += forwarded
        if forwarded:
            self.last_mark_at = time.monotonic()
        if prev is not None:
            self.prev_offset[tp] = prev
        try:
            await consumer.commit({tp: records[-1].offset + 1})
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # the group moved on (a rebalance): the partition's next holder re-reads
            # from the last committed offset; copies are recognised downstream
            self.commits_refused += 1
            log.warning("mark fan-out: commit refused (%s): the batch will be re-read", exc)
