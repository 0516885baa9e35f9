"""The streaming worker: input topics -> canonical order -> engine -> output topics.

Processing guarantee: exactly-once effect on the output topics, by deterministic
recomputation. On start the worker reads every input partition from the beginning and
re-applies events in canonical order (``sequencer``), which rebuilds the engine exactly;
every output message carries the sequence number of the input event that caused it,
and each batch of outputs is written in one Kafka transaction together with a progress
record (the last sequence written). After a crash, outputs up to the committed progress
are recomputed but not written again; an aborted batch is invisible to read_committed
consumers. So a SIGKILL at any point neither loses nor repeats an output.

The cost is a start-up proportional to the input history (fine for the retention of a
risk monitor's inputs; table snapshots would bound it, see the notes on the issue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams import wire
from streams.engine.config import EngineConfig
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError, ConfigError, EventFailed
from streams.engine.events import Event, Mark
from streams.engine.instruments import Instrument
from streams.engine.inverse import wallet_key
from streams.engine.signals import Signal
from streams.pipeline import snapshots
from streams.pipeline.intake import dead_letter_payload, decode_message
from streams.pipeline.memory import HeapTrimmer
from streams.pipeline.sequencer import Sequencer, canonical_key
from streams.pipeline.settings import Settings
from streams.pipeline.snapshot_fork import SnapshotFailed, SnapshotFork, can_fork
from streams.pipeline.snapshots import Snapshot, SnapshotRefused
from streams.pipeline.topics import (
    INPUTS,
    OUTPUT_FOR_FILE,
    OUTPUTS,
    PROGRESS,
    SNAPSHOTS,
    Topics,
    TopicSpec,
)

log = logging.getLogger("adl_monitor.worker")
SEQ_HEADER = "adl-seq"
PROGRESS_KEY = b"progress"
_OUTPUT_KEYS = {spec.name: spec.key_field for spec in OUTPUTS}


@dataclass(slots=True)
class Progress:
    seq: int = 0  # last input sequence whose outputs are committed
    dead: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> last offset


@dataclass(slots=True)
class WorkerStats:
    consumed: int = 0
    applied: int = 0
    dead_letters: int = 0
    outputs: int = 0
    skipped_outputs: int = 0  # recomputed after a restart, already committed
    late_events: int = 0  # arrived after later events were applied: applied out of order
    snapshots: int = 0  # snapshots of the state written
    snapshot_failures: int = 0  # snapshots a forked child did not deliver (logged)
    last_snapshot_held_s: float = 0.0  # how long the loop waited for the last one written
    resumed_at_seq: int = 0  # the input sequence of the snapshot this run started from
    buffered_peak: int = 0  # most decoded events held for the watermark at once
    held_ahead: int = 0  # times input partitions ahead of the watermark were paused


@dataclass(frozen=True, slots=True)
class MadeSnapshot:
    seq: int  # the input sequence it holds
    records: list[tuple[bytes, bytes]]  # its chunks then its header, to write in order
    made_s: float  # wall time to make it
    held_s: float  # of which the worker's loop waited (all of it, made in the loop)


@dataclass(frozen=True, slots=True)
class Output:
    topic: str  # base name
    key: bytes | None
    value: bytes
    seq: int


async def ensure_topics(
    settings: Settings, topics: Topics, extra: tuple[TopicSpec, ...] = ()
) -> None:
    """Create the topics that do not exist yet (``extra``: a consumer's own)."""
    specs = (*topics.all_specs(), *extra)
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                topics.name(spec.name),
                num_partitions=1 if _one_partition(spec) else settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=_topic_configs(spec, settings.input_retention_hours),
            )
            for spec in specs
            if topics.name(spec.name) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
        # the topics made here have the right counts; those found are used as they are
        found = [topics.name(s.name) for s in specs if topics.name(s.name) in existing]
        described = await admin.describe_topics(found) if found else []
    finally:
        await admin.close()
    counts = {t.name: t.num_partitions for t in wanted}
    counts |= {t["topic"]: len(t["partitions"]) for t in described}
    check_topology(topics, specs, counts)


def end_is_current(
    fetched_ms: float | None, newest_fetch_ms: float, now_ms: float, idle_flush_ms: int
) -> bool:
    """Whether a partition's end offset, from its last fetch (at ``fetched_ms``, wall ms),
    may be taken as its end now: that fetch is no older than the newest one that delivered
    records (``newest_fetch_ms``), or its fetches lag more than ``idle_flush_ms`` (a
    broker away: the others are not held for it). ``_bound`` says why."""
    if fetched_ms is None:
        return False
    return fetched_ms >= newest_fetch_ms or now_ms - fetched_ms >= idle_flush_ms


def _one_partition(spec: TopicSpec) -> bool:
    """A clock: its order across keys matters (the worker's progress has one key)."""
    return spec.single_partition or spec is PROGRESS


def check_topology(topics: Topics, specs: Sequence[TopicSpec], counts: Mapping[str, int]) -> None:
    """Refuse topics whose partitions break the order the monitor relies on (an existing
    cluster's topics are used as they are): a clock topic with more than one partition
    loses its order across keys; account-keyed inputs with different partition counts
    put one account's fills and balances on different partitions."""
    for spec in specs:
        name = topics.name(spec.name)
        if _one_partition(spec) and counts.get(name, 1) != 1:
            raise ConfigError(
                f"topic {name} has {counts[name]} partitions; adl-monitor needs 1 (its order "
                "across keys is the clock): recreate it with one partition"
            )
    keyed = {topics.name(s.name): counts.get(topics.name(s.name)) for s in INPUTS
             if s.key_field == "account"}  # fmt: skip
    if len(set(keyed.values())) > 1:
        raise ConfigError(
            f"the account-keyed inputs must have equal partition counts (one account's events "
            f"on one partition number): {keyed}"
        )


def _topic_configs(spec: TopicSpec, input_retention_hours: int = 0) -> dict[str, str]:
    if spec.compacted:
        return {"cleanup.policy": "compact"}
    if spec in INPUTS:
        # without snapshots a start recomputes the state from the whole input history:
        # keep all of it unless told otherwise (with snapshots, what follows the last)
        retention_ms = input_retention_hours * 3_600_000 if input_retention_hours else -1
        return {"retention.ms": str(retention_ms), "retention.bytes": "-1"}
    return {}


async def input_partitions(settings: Settings, topics: Topics) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        described = await admin.describe_topics(topics.inputs)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    ]
    return sorted(partitions)


async def _read_committed(settings: Settings, topic: str) -> list[Any]:
    """Every committed message of a one-partition topic, in order (read_committed)."""
    consumer = AIOKafkaConsumer(
        **settings.client_options(),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        messages: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 30
        while await consumer.position(tp) < end:
            if asyncio.get_running_loop().time() > deadline:
                raise AdlMonitorError(f"could not read {tp.topic} to its end ({end})")
            batch = await consumer.getmany(tp, timeout_ms=500)
            messages += batch.get(tp, [])
        return messages
    finally:
        await consumer.stop()


async def read_progress(settings: Settings, topics: Topics) -> Progress:
    """The last committed progress record (read_committed), or a fresh start."""
    progress = Progress()
    for message in await _read_committed(settings, topics.name(PROGRESS.name)):
        if message.key == PROGRESS_KEY and message.value:
            raw = orjson.loads(message.value)
            progress = Progress(int(raw["seq"]), dict(raw["dead"]))
    return progress


async def read_snapshot(settings: Settings, topics: Topics) -> Snapshot | None:
    """The last snapshot committed, if snapshots are on and it verifies (else ``None``:
    the reason is logged, the history is replayed)."""
    if not settings.snapshot_key:
        return None
    messages = await _read_committed(settings, topics.name(SNAPSHOTS.name))
    try:
        return snapshots.decode(((m.key, m.value) for m in messages), settings.snapshot_key)
    except SnapshotRefused as exc:
        log.warning("the last snapshot is not loaded: %s; the input history is replayed", exc)
        return None


class Worker:
    def __init__(
        self,
        settings: Settings,
        instruments: dict[str, Instrument],
        config: EngineConfig | None = None,
        on_output: Callable[[Output], None] | None = None,
        on_tick: Callable[[Worker], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.engine = Engine(instruments, config)
        self.symbols = frozenset(instruments)
        # (event, arrival time, the Kafka message it came in)
        self.sequencer: Sequencer[tuple[Event, float, Any]] = Sequencer()
        self.stats = WorkerStats()
        self.progress = Progress()
        self.seq = 0
        self.on_output = on_output
        self.on_tick = on_tick
        self.mark_arrived_at: dict[str, float] = {}  # symbol -> wall time of its last mark
        self.lag: dict[str, int] = {}  # input topic -> messages not yet consumed
        self.latencies_s: list[float] = []  # arrival -> committed, since last drained
        self.commit_s: list[float] = []  # duration of each output transaction
        self._stop = asyncio.Event()
        self._last_ts: dict[TopicPartition, int] = {}
        self._next_offset: dict[TopicPartition, int] = {}
        self._applied_ts = -1  # event time of the last event applied
        # wall ms of the newest fetch that delivered records (``_bound``)
        self._newest_fetch_ms = 0
        self.heap = HeapTrimmer()  # freed memory back to the system, about once a minute
        # where each input partition was read from at start (0, or the snapshot's), and
        # the offsets after it a snapshot says were applied already (not applied again)
        self._start_offsets: dict[TopicPartition, int] = {}
        self._skip: dict[TopicPartition, set[int]] = {}
        self._snapshot_at = 0.0  # loop time of the last snapshot (or of the start)
        self._snapshot_seq = 0  # the input sequence it holds
        self._fork: SnapshotFork | None = None  # a snapshot being made off the loop
        self._held: set[TopicPartition] = set()  # inputs paused ahead of the watermark

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ decoding
    def _decode(self, topic: str, value: bytes | None) -> tuple[Event, dict[str, Any]]:
        return decode_message(
            self.topics.base(topic), value, self.symbols, self.settings.max_message_bytes
        )

    def _dead_letter_payload(self, message: Any, error: AdlMonitorError) -> bytes:
        return dead_letter_payload(self.topics.base(message.topic), message, error)

    def _dead_letter(self, message: Any, error: AdlMonitorError) -> Output | None:
        """A message that does not decode: written once per offset (progress.dead)."""
        where = f"{message.topic}:{message.partition}"
        self.stats.dead_letters += 1
        if message.offset <= self.progress.dead.get(where, -1):
            self.stats.skipped_outputs += 1
            return None
        self.progress.dead[where] = message.offset
        return Output("dead_letters", None, self._dead_letter_payload(message, error), self.seq)

    # ------------------------------------------------------------------ applying
    def _apply(self, event: Event, message: Any) -> list[Output]:
        self.seq += 1
        self.stats.applied += 1
        outputs = []
        try:
            signals: list[Signal] = self.engine.apply(event)
        except Exception as exc:  # contained: see EventFailed
            # AdlMonitorError: valid alone, impossible for the account: rejected
            error = exc if isinstance(exc, AdlMonitorError) else EventFailed(exc)
            if isinstance(error, EventFailed):
                log.exception("applying %s:%s:%s failed: dead-lettered", message.topic,
                              message.partition, message.offset)  # fmt: skip
            signals = []
            self.stats.dead_letters += 1
            payload = self._dead_letter_payload(message, error)
            outputs.append(Output("dead_letters", None, payload, self.seq))
        outputs += [self._output(*wire.render(s)) for s in signals]
        for acct in sorted(self.engine.touched):  # the engine's own latest evaluation
            risk = self.engine.risks[acct]
            outputs.append(self._output("accounts", wire.account_risk(risk, self.engine)))
        self.engine.touched.clear()
        if self.seq <= self.progress.seq:
            self.stats.skipped_outputs += len(outputs)
            return []
        return outputs

    def _output(self, stream: str, payload: dict[str, Any]) -> Output:
        topic = OUTPUT_FOR_FILE[stream]
        key_field = _OUTPUT_KEYS[topic]
        if key_field is None:
            return Output(topic, None, orjson.dumps(payload), self.seq)
        key = str(payload[key_field])
        if "settlement" in payload:
            # an account's coin wallet is a line of its own (a compacted topic keeps the
            # last per key): the key names the wallet as the engine does
            key = wallet_key(key, payload["settlement"])
        return Output(topic, key.encode(), orjson.dumps(payload), self.seq)

    # ------------------------------------------------------------------ the loop
    async def _bound(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        delivered: Iterable[TopicPartition],
    ) -> tuple[int, bool]:
        """(event time before which everything buffered may be applied, whether an input
        has data still to deliver). The bound is the least recent event time among the
        inputs with data still to deliver, and no later than the allowed lateness behind
        the newest event seen: an input that is caught up now may still deliver that
        far back (several producers do not write in step).

        Caught up means: read to the end the broker gave in a fetch no older than the
        newest fetch that delivered records (``delivered``: the partitions of this batch).
        The consumer leaves a partition with records still buffered out of its fetches,
        so its end offset ages while the others' fetches bring newer events; taken at
        face value, that partition looked caught up and its next records came late (the
        demo on a loaded machine: 100-400 events). A partition whose fetches lag longer
        than ``idle_flush_ms`` (a broker away) is taken as caught up again: the others'
        events are not held for it."""
        now_ms = time.time() * 1000
        for tp in delivered:
            fetched = consumer.last_poll_timestamp(tp)
            if fetched is not None and fetched > self._newest_fetch_ms:
                self._newest_fetch_ms = fetched
        bound = max(self._last_ts.values(), default=-1) - self.settings.allowed_lateness_ms
        pending = False
        for tp in partitions:
            end = consumer.last_stable_offset(tp)
            if (
                end is None
                or not end_is_current(
                    consumer.last_poll_timestamp(tp),
                    self._newest_fetch_ms,
                    now_ms,
                    self.settings.idle_flush_ms,
                )
                or await consumer.position(tp) < end
            ):
                pending = True
                bound = min(bound, self._last_ts.get(tp, -1))
        return bound, pending

    def _hold_ahead(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition], bound: int
    ) -> None:
        """Memory bounded in a backlog: with more than ``max_buffered_events`` held for the
        watermark, the inputs whose newest event is past it (and past the lateness
        allowed beyond it) are paused, until it catches up with them or the events held
        are under half that. The input that holds the watermark back is never paused
        (its newest event is the watermark), nor one the watermark reached: the order
        applied is the same. Without it a restart over 10M events (marks gating, the
        sparse inputs read to their end) held ~2.9 GB of decoded events."""
        held = len(self.sequencer)
        if not self._held and held <= self.settings.max_buffered_events:
            return  # live: nothing paused, nothing to pause (each loop: no set built)
        limit = bound + self.settings.allowed_lateness_ms
        ahead = {tp for tp in partitions if self._last_ts.get(tp, -1) > limit}
        if held > self.settings.max_buffered_events:
            if ahead - self._held:
                self.stats.held_ahead += 1
        elif held <= self.settings.max_buffered_events // 2:
            ahead = set()
        else:
            ahead &= self._held  # those paused and still ahead stay so
        consumer.pause(*(ahead - self._held))
        consumer.resume(*(self._held - ahead))
        self._held = ahead

    async def run(self, stop_when_idle: bool = False) -> WorkerStats:
        settings = self.settings
        await ensure_topics(settings, self.topics)
        self.progress = await read_progress(settings, self.topics)
        consumer = AIOKafkaConsumer(
            **settings.client_options(),
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
        )
        transactional = (
            {"transactional_id": f"{settings.topic_prefix}{settings.transactional_id}"}
            if settings.transactions
            else {"acks": "all"}
        )
        producer = AIOKafkaProducer(**settings.client_options(), linger_ms=5, **transactional)
        snapshot = await read_snapshot(settings, self.topics)
        await consumer.start()
        await producer.start()
        try:
            partitions = await input_partitions(settings, self.topics)
            consumer.assign(partitions)
            self._resume(snapshot, partitions)
            await self._check_history(consumer)
            for tp in partitions:
                consumer.seek(tp, self._start_offsets[tp])
            self._snapshot_at = asyncio.get_running_loop().time()
            await self._loop(consumer, producer, partitions, stop_when_idle)
        finally:
            if self._fork is not None:  # stopped while one was being made: not written
                self._fork.cancel()
                self._fork = None
            await consumer.stop()
            await producer.stop()
        return self.stats

    def _resume(self, snapshot: Snapshot | None, partitions: list[TopicPartition]) -> None:
        """Start from ``snapshot`` if it fits this worker (same instruments and engine
        settings: the state depends on them), else from the beginning of every input."""
        engine = self.engine
        if snapshot is not None and (
            snapshot.engine.instruments != engine.instruments
            or snapshot.engine.config != engine.config
        ):
            log.warning("the last snapshot was taken with other instruments or engine "
                        "settings: not loaded; the input history is replayed")  # fmt: skip
            snapshot = None
        if snapshot is None:
            self._start_offsets = dict.fromkeys(partitions, 0)
            return
        self.engine = snapshot.engine
        self.seq = self._snapshot_seq = self.stats.resumed_at_seq = snapshot.seq
        self._applied_ts = snapshot.applied_ts
        for tp in partitions:
            first, done = snapshot.resume.get(f"{tp.topic}:{tp.partition}", (0, []))
            self._start_offsets[tp] = first
            if done:
                self._skip[tp] = set(done)
        log.info("started from the snapshot at input sequence %d (outputs committed through "
                 "%d)", snapshot.seq, self.progress.seq)  # fmt: skip

    async def _check_history(self, consumer: AIOKafkaConsumer) -> None:
        """Refuse to start when an input no longer holds what the state needs (deleted
        by retention, or by hand): the state would silently miss those events."""
        firsts = await consumer.beginning_offsets(list(self._start_offsets))
        for tp, needed in sorted(self._start_offsets.items()):
            if firsts[tp] > needed:
                since = "the snapshot's" if self.stats.resumed_at_seq else "the beginning"
                raise ConfigError(
                    f"input {tp.topic}:{tp.partition} starts at offset {firsts[tp]}, but the "
                    f"worker needs it from offset {needed} ({since}): its history was deleted "
                    "(retention?); set ADL_SNAPSHOT_KEY so a start needs only the input after "
                    "the last snapshot, and keep ADL_INPUT_RETENTION_HOURS well above "
                    "ADL_SNAPSHOT_INTERVAL_S"
                )

    def _intake(self, batch: dict[TopicPartition, list[Any]], arrived: float) -> list[Output]:
        """Decode a batch into the sequencer; what does not decode becomes a dead letter."""
        outputs: list[Output] = []
        for tp, messages in batch.items():
            skip = self._skip.get(tp)
            for message in messages:
                self.stats.consumed += 1
                self._next_offset[tp] = message.offset + 1
                if skip and message.offset in skip:  # applied before the snapshot was taken
                    skip.discard(message.offset)
                    continue
                try:
                    event, obj = self._decode(message.topic, message.value)
                except AdlMonitorError as exc:
                    dead = self._dead_letter(message, exc)
                    outputs.extend([dead] if dead else [])
                    continue
                self._last_ts[tp] = max(self._last_ts.get(tp, -1), event.ts_ms)
                if event.ts_ms < self._applied_ts:
                    self.stats.late_events += 1
                if isinstance(event, Mark):
                    self.mark_arrived_at[event.symbol] = time.time()
                key = (*canonical_key(obj), message.topic, message.partition, message.offset)
                self.sequencer.push(key, (event, arrived, message))
        return outputs

    async def _loop(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        partitions: list[TopicPartition],
        stop_when_idle: bool,
    ) -> None:
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=100, max_records=self.settings.max_poll_records
            )
            outputs = self._intake(batch, loop.time())
            self.stats.buffered_peak = max(self.stats.buffered_peak, len(self.sequencer))
            bound, pending = await self._bound(consumer, partitions, batch)
            release_all = False
            now = loop.time()
            if batch or pending or idle_since is None:
                idle_since = now  # input is flowing, or still to deliver: not idle
            elif (now - idle_since) * 1000 >= self.settings.idle_flush_ms:
                release_all = True  # nothing came for a while: nothing older will come
            watermark = None if release_all else bound
            arrivals = []
            released = self.sequencer.release(watermark)
            for n, (event, arrived, message) in enumerate(released, start=1):
                outputs.extend(self._apply(event, message))
                self._applied_ts = max(self._applied_ts, event.ts_ms)
                arrivals.append(arrived)
                if len(outputs) >= self.settings.max_outputs_per_transaction:
                    await self._commit_timed(producer, outputs)
                    outputs = []
                elif n % 500 == 0:
                    await asyncio.sleep(0)  # let the metrics and summary tasks run
            self._hold_ahead(consumer, partitions, bound)
            made = self._snapshot_made()  # (first: its child may start the next)
            snapshot = self._snapshot_due(loop.time())
            if outputs or snapshot or made:
                await self._commit_timed(producer, outputs, snapshot, made)
            if self.on_tick is not None:
                done = loop.time()
                self.latencies_s.extend(done - arrived for arrived in arrivals)
                self._measure_lag(consumer, partitions)
                self.on_tick(self)
            self.heap.maybe_trim()
            if stop_when_idle and release_all and not batch and not len(self.sequencer):
                if self._fork is None:
                    return
                # caught up: the snapshot being made is written before leaving
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._fork.done.wait(), 1.0)

    def _measure_lag(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        lag: dict[str, int] = {}
        for tp in partitions:
            high = consumer.highwater(tp)
            if high is not None:
                base = self.topics.base(tp.topic)
                lag[base] = lag.get(base, 0) + max(0, high - self._next_offset.get(tp, 0))
        self.lag = lag

    async def _commit_timed(
        self,
        producer: AIOKafkaProducer,
        outputs: list[Output],
        snapshot: Snapshot | None = None,
        made: MadeSnapshot | None = None,
    ) -> None:
        began = asyncio.get_running_loop().time()
        await self._commit(producer, outputs, snapshot, made)
        if self.on_tick is not None:  # it drains them (metrics): else none are kept
            self.commit_s.append(asyncio.get_running_loop().time() - began)

    def _snapshot_due(self, now: float) -> Snapshot | None:
        """The state to write with this commit, when a snapshot is due: snapshots on,
        events applied since the last one, its interval passed."""
        settings = self.settings
        if (
            not settings.snapshot_key
            or self._fork is not None  # one at a time
            or self.seq == self._snapshot_seq
            or now - self._snapshot_at < settings.snapshot_interval_s
        ):
            return None
        buffered: dict[TopicPartition, set[int]] = {}
        for _, _, message in self.sequencer.items():
            tp = TopicPartition(message.topic, message.partition)
            buffered.setdefault(tp, set()).add(message.offset)
        resume = {}
        for tp, start in self._start_offsets.items():
            read_to = self._next_offset.get(tp, start)  # the next offset to read
            held = buffered.get(tp, set())
            first = min(held, default=read_to)
            # read since ``first`` and not buffered: applied (or dead-lettered, written
            # once anyway); and what an earlier snapshot said to skip, not read yet
            done = (set(range(first, read_to)) - held) | self._skip.get(tp, set())
            resume[f"{tp.topic}:{tp.partition}"] = (first, sorted(done))
        return Snapshot(self.engine, self.seq, self._applied_ts, resume)

    def _snapshot_made(self) -> MadeSnapshot | None:
        """The records of the snapshot a child finished making, once (``None``: none
        finished); one it did not deliver is logged, counted and forgotten (the next is
        due an interval later)."""
        fork = self._fork
        if fork is not None and fork.expired():
            log.warning("the snapshot child %d still works after %.0f s: killed", fork.pid,
                        time.monotonic() - fork.began)  # fmt: skip
            fork.cancel()
        if fork is None or not fork.done.is_set():
            return None
        self._fork = None
        try:
            return MadeSnapshot(fork.seq, fork.records(), fork.made_s, fork.held_s)
        except SnapshotFailed as exc:
            self.stats.snapshot_failures += 1
            log.warning("the snapshot at input sequence %d was not made: %s", fork.seq, exc)
            return None

    async def _commit(
        self,
        producer: AIOKafkaProducer,
        outputs: list[Output],
        snapshot: Snapshot | None = None,
        made: MadeSnapshot | None = None,
    ) -> None:
        """The outputs, the progress record covering them and, when given, a snapshot of
        the state after them: in one transaction. Forking (``ADL_SNAPSHOT_FORK``), the
        snapshot is only started after the transaction, and ``made``, the records of one
        a child finished, are written in it instead."""
        fork = snapshot is not None and self.settings.snapshot_fork and can_fork()
        if snapshot is not None and not fork:
            # made before the transaction opens: it is not held open meanwhile (~49 s at
            # the preset's scale, against the producer's 60 s transaction timeout)
            made = self._snapshot_in_loop(snapshot)
        last_seq = max(
            self.progress.seq,
            max((o.seq for o in outputs), default=0),
            0 if snapshot is None else snapshot.seq,  # every output through it is here
        )
        progress = {"seq": last_seq, "dead": self.progress.dead}
        async with (
            producer.transaction() if self.settings.transactions else contextlib.nullcontext()
        ):
            for out in outputs:
                await producer.send(
                    self.topics.name(out.topic),
                    value=out.value,
                    key=out.key,
                    headers=[(SEQ_HEADER, str(out.seq).encode())],
                )
                if self.on_output is not None:
                    self.on_output(out)
            if not self.settings.transactions:
                await producer.flush()  # outputs before the progress that covers them
            await producer.send(
                self.topics.name(PROGRESS.name), value=orjson.dumps(progress), key=PROGRESS_KEY
            )
            writing_began = time.monotonic()
            if made is not None:
                await self._write_records(producer, made.records)
        self.progress.seq = last_seq
        if made is not None:  # committed
            self._snapshot_written(made, time.monotonic() - writing_began)
        if snapshot is not None:
            if fork:  # the progress just committed covers it; its records: a later commit
                key = self.settings.snapshot_key
                self._fork = SnapshotFork.start(snapshot, key, os.urandom(16))
            self._snapshot_at = asyncio.get_running_loop().time()
            self._snapshot_seq = snapshot.seq
        self.stats.outputs += len(outputs)
        log.info("committed %d outputs through input sequence %d", len(outputs), last_seq)

    def _snapshot_in_loop(self, snapshot: Snapshot) -> MadeSnapshot:
        """The snapshot made in the loop (it waits)."""
        began = time.monotonic()
        records = snapshots.encode(snapshot, self.settings.snapshot_key, os.urandom(16))
        made_s = time.monotonic() - began
        return MadeSnapshot(snapshot.seq, records, made_s, made_s)

    async def _write_records(
        self, producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]]
    ) -> None:
        """A snapshot's chunks, then its header (inside the commit's transaction, after
        the progress record; without transactions, after the progress is delivered)."""
        if not self.settings.transactions:
            await producer.flush()
        topic = self.topics.name(SNAPSHOTS.name)
        for key, value in records:
            await producer.send(topic, value=value, key=key)

    def _snapshot_written(self, made: MadeSnapshot, written_s: float) -> None:
        self.stats.snapshots += 1
        self.stats.last_snapshot_held_s = made.held_s
        size_mb = sum(len(v) for _, v in made.records) / 1e6
        log.info("snapshot at input sequence %d: %.1f MB in %d messages, made in %.2f s "
                 "(the loop held %.3f s), written and committed in %.2f s", made.seq, size_mb,
                 len(made.records), made.made_s, made.held_s, written_s)  # fmt: skip
