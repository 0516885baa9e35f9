"""Stage A as Faust agents (DESIGN.md section 2): partitioned by account, one ``Shard``
per partition, its accounts in a changelog-backed Faust Table.

    mark_prices (1 partition, time order) --> [fanout] --> account_marks (every partition)
    fills, balances, position_config (key account) --+
    account_marks -----------------------------------+--> [accounts] --> account_risk,
                                                           liquidations, bankruptcies,
                                                           dead_letters

``accounts`` reads the four co-partitioned topics as one stream: partition p of each
goes to the same worker, and the changelog rows it writes while handling a partition-p
event land in changelog partition p, so a restarted or re-assigned partition finds its
accounts there. Acks are manual: an event is acknowledged once applied and its outputs
delivered and its row written, so the committed offset never passes an event still
waiting in the shard's buffer (at-least-once; re-delivered events are recognised by the
shard, see ``shard``). Faust's own offset keeping committed events no agent had handled
at a rebalance: ``acks`` takes that over (in-order delivery, Faust's acknowledgements
refused, the rows flushed before a commit).

The mark fan-out is not a Faust agent but a plain consumer (``fanout``: Faust acknowledges
events it drops at a rebalance, and marks were lost that way). Each forwarded mark names
the mark forwarded before it: an account partition checks the chain and counts a break
(``adl_agent_mark_gaps_total``, alert ``AdlMarksLost``), which is how a mark lost on its
own (Faust-read) input shows.

Faust's own ``exactly_once`` is not used: faust-streaming 0.15 binds each output send to
the transaction of the *output* partition's number (``TransactionManager.send``), which
is another input partition's transaction whenever output keys hash elsewhere.

Fund projections, triggers and rank lights need every account: the fund desk (stage B,
``desk``) merges the partitions' summaries. The read API and ``/metrics`` (``web``)
answer for every partition from any process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

import faust
import orjson
from faust.types import TP, EventT, StreamT

from streams import wire
from streams.agents.acks import AckGuard, InOrder, SeekGate, flush_fully, resume_offsets
from streams.agents.changelog import changelog_configs
from streams.agents.codec import (
    encode_account,
    encode_desk,
    partition_accounts,
    partition_marks,
    restore_desk,
)
from streams.agents.desk import SUMMARY_TOPIC, DeskItem, FundDesk
from streams.agents.fanout import PREV_HEADER, SOURCE_HEADER, MarkFanOut
from streams.agents.ranking_rows import decode_rankings, write_changes
from streams.agents.shard import (
    ACCOUNT_TOPICS,
    BOUNDARY_TOPIC,
    CLOCK_TOPIC,
    Output,
    Pending,
    Shard,
    Source,
)
from streams.agents.warm import (
    STANDBY_BUFFER_ROWS,
    WARM_REFRESH_S,
    Noted,
    NotedTable,
    WarmCopies,
    WarmCopy,
)
from streams.engine.errors import AdlMonitorError, InvalidEvent
from streams.engine.events import Depth, InsuranceFund, Mark
from streams.engine.instruments import Instrument
from streams.engine.quantiles import cuts_from_wire, cuts_to_wire
from streams.engine.signals import SideSummary
from streams.engine.summary import from_wire
from streams.pipeline.intake import dead_letter, decode_message
from streams.pipeline.memory import collector_paused, process_collections
from streams.pipeline.metrics import Metrics
from streams.pipeline.settings import Settings
from streams.pipeline.topics import OUTPUT_FOR_FILE, OUTPUTS, Topics, TopicSpec
from streams.pipeline.worker import Output as Sent

log = logging.getLogger("adl_monitor.agents")
# at most this many records per fetch: the desk's summaries are written while the
# shards work through a backlog and reach the desk only with a later fetch; a fetch of
# everything buffered (Faust's default) took the shards 10-40 s to drain, and the desk
# received nothing meanwhile (measured: docs/benchmarks.md, "Eighth session")
FETCH_RECORDS = 1000
FETCH_PARTITION_BYTES = 4 * 1024 * 1024
# how long the broker may hold a fetch that finds nothing new (Faust's: 1.5 s): the next
# fetch, the first with a seek's or a new assignment's positions, waits for it; the first
# delivery after a takeover came ~1.5 s after the recovery was over (2026-12-05)
FETCH_WAIT_MS = 100
FETCH_CHECK_S = 1.0  # an input partition out of Faust's fetch, nothing delivered: 2 checks
STALL_REPORT_S = 5.0  # an input behind, nothing delivered this long: where it stands, logged
T = TypeVar("T")
INDEX_HEADER = "adl-index"  # position among that input's outputs: (source, index) is unique
TICK = b'{"type":"tick"}'  # on account_marks: marks are idle, release what is buffered
CLOCK_SPEC = TopicSpec(CLOCK_TOPIC, "symbol", "topic.mark_prices")  # marks, every partition
# stage A -> stage B: one partition, the desk reads it whole and in order
SUMMARY_SPEC = TopicSpec(SUMMARY_TOPIC, "fund", "topic.risk_summaries", single_partition=True)
# stage B -> stage A: each message to every partition
BOUNDARY_SPEC = TopicSpec(BOUNDARY_TOPIC, "symbol", "topic.rank_boundaries")
INTERNAL = (CLOCK_SPEC, SUMMARY_SPEC, BOUNDARY_SPEC)
_KEYS = {spec.name: spec.key_field for spec in (*OUTPUTS, SUMMARY_SPEC)}
_TOPIC_FOR = {**OUTPUT_FOR_FILE, SUMMARY_TOPIC: SUMMARY_TOPIC}  # output stream -> topic
DESK_INPUTS = (SUMMARY_TOPIC, "insurance_fund", "book_depth")


@dataclass(slots=True)
class AgentStats:
    """The agents' own counts (the fan-out's are its own); per-partition ones are in each
    shard's ``ShardStats``, outputs (and the fund figures they carry) in ``Metrics``."""

    # account partition -> marks received whose predecessor never arrived (kept across
    # a partition's moves: the shard's own stats go with it)
    mark_gaps: dict[int, int] = field(default_factory=dict)
    restored: int = 0  # shards rebuilt from the changelog (first start, or moved here)
    taken_up: int = 0  # shards kept through a rebalance that gave their partition back
    warmed: int = 0  # shards taken over from a warm copy (a standby's partition moved here)
    revocations: int = 0  # rebalances that revoked partitions here
    refetched: int = 0  # input partitions put back into a fetch that left them out
    # input partitions sought back: the client's fetch had passed offsets Faust never
    # delivered (its flow control cleared them: docs/streaming.md, hole 11)
    passed_sought: int = 0
    stalls: int = 0  # inputs behind with nothing delivered for ``STALL_REPORT_S`` (logged)


def _drained(queue: Any) -> bool:
    """A stream buffer at or under the size where Faust fetches its partitions again."""
    return bool(queue.qsize() <= queue.pressure_drop_size)


def queued_in(queue: Any, seen: dict[int, set[TP]]) -> set[TP]:
    """The partitions of the records in a stream buffer (read once per ``seen``)."""
    tps = seen.get(id(queue))
    if tps is None:
        tps = seen[id(queue)] = {event.message.tp for event in tuple(queue._queue)}
    return tps


@dataclass(slots=True)
class EbbWaits:
    """Faust's conductor waits, before it puts a record in a stream buffer, for the
    producer's buffer to ebb under its ``max_messages`` (a flush of up to that many
    messages): the records the Kafka client handed over are held on their way in
    meanwhile. ``waiting``: such waits now; ``began``: in all (``count_ebb_waits``)."""

    waiting: int = 0
    began: int = 0


def count_ebb_waits(buffer: Any) -> EbbWaits:
    """Count the conductor's waits on the producer's ``buffer`` (installed before the
    conductor builds its handlers: each takes ``wait_until_ebb`` then)."""
    waits = EbbWaits()
    wait: Callable[[], Coroutine[Any, Any, None]] = buffer.wait_until_ebb

    async def counted_wait() -> None:
        if buffer.size <= buffer.max_messages:  # Faust's own test: no wait
            return
        waits.waiting += 1
        waits.began += 1
        try:
            await wait()
        finally:
            waits.waiting -= 1

    buffer.wait_until_ebb = counted_wait
    return waits


def kafka_client(consumer: Any) -> Any:
    """The aiokafka consumer Faust runs in its thread for ``consumer`` (``None`` before
    the thread made it; private)."""
    return consumer._thread._consumer


def fetch_position(consumer: Any, tp: TP) -> int | None:
    """Where the Kafka client Faust runs for ``consumer`` reads ``tp`` on: the offset
    after the last record it handed to Faust (aiokafka's position; private, read
    without its thread: one attribute); ``None`` before it is known."""
    client = kafka_client(consumer)
    subscription = None if client is None else client._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    state = None if assignment is None else assignment.state_value(tp)
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def fetch_pending(consumer: Any, tp: TP) -> bool:
    """The Kafka client Faust runs for ``consumer`` holds fetched records of ``tp`` it has
    not handed out yet (aiokafka's fetcher; private, one dict lookup)."""
    client = kafka_client(consumer)
    fetcher = None if client is None else getattr(client, "_fetcher", None)
    return fetcher is not None and tp in fetcher._records


class Kept(NamedTuple, Generic[T]):
    """A partition's shard put aside at a revocation: ``due``, the next offset of each
    input then (``unmoved``); ``resume``, where it reads on if taken up again
    (``resume_offsets``)."""

    shard: Shard[T]
    due: dict[TP, int]
    resume: dict[TP, int]


def unmoved(due: Mapping[TP, int], committed: Mapping[TP, int]) -> bool:
    """A partition's shard, put aside when it was revoked with the next offset ``due``
    of each input, is still current when given back: no input's committed offset is past
    it (another owner would have committed what it applied). Events between the
    committed offset and ``due`` are delivered again and recognised as applied; events
    another owner applied and did not commit are applied again (at-least-once, as after
    a crash)."""
    return all(committed.get(tp, 0) <= offset for tp, offset in due.items())


def restored_shard(
    partition: int,
    instruments: Mapping[str, Instrument],
    summary_interval_ms: int,
    account_rows: Iterable[bytes],
    mark_rows: Iterable[tuple[bytes, bytes]],
    rankings: Iterable[tuple[bytes, bytes]] = (),
) -> Shard[EventT]:
    """A partition's shard from the changelog tables' rows (every partition's rows as
    this process holds them: the partition's are picked by their content and key).

    Python's cyclic collector is paused meanwhile: the restore allocates objects that
    all live on, and the full collections their growth triggers took 40% of it
    (109,430 accounts, two runs side by side: 26.7 s with it, 16.1 s without); what it
    made is frozen after (``collector_paused``)."""
    with collector_paused(freeze=True):
        shard: Shard[EventT] = Shard(
            partition, instruments, summary_interval_ms=summary_interval_ms, persist_rankings=True
        )
        shard.restore(
            partition_accounts(partition, account_rows),
            partition_marks(partition, mark_rows),
            decode_rankings(partition, rankings),
        )
        return shard


def shorten_fetch_wait(consumer: Any, wait_ms: int) -> None:
    """The aiokafka consumer Faust makes for ``consumer`` (when its thread starts)
    long-polls at most ``wait_ms`` (Faust sets 1,500 ms, with no setting) and hands out
    its fetched records a partition at a time in turn (``take_turns``)."""
    thread = consumer._thread
    create = thread._create_worker_consumer

    def create_with_wait(transport: Any) -> Any:
        client = create(transport)
        client._fetch_max_wait_ms = wait_ms  # read by its fetcher, made at its start
        start = client.start

        async def start_taking_turns() -> None:
            await start()
            take_turns(client._fetcher)

        client.start = start_taking_turns
        return client

    thread._create_worker_consumer = create_with_wait


def take_turns(fetcher: Any) -> None:
    """aiokafka hands out what it fetched in the order the fetches landed, each
    partition's whole fetch (up to ``FETCH_PARTITION_BYTES``) before the next one's:
    the desk's summaries waited behind the account partitions' backlog (nothing
    delivered for 5-6 s in a two-process backlog; ~40 s once; faust-streaming #53).
    Now a partition that handed records out and has more goes behind the others: each
    batch Faust takes (``FETCH_RECORDS``) begins with the next partition in turn (the
    desk's inputs only first was tried too: docs/benchmarks.md, thirty-fourth
    session)."""
    fetched = fetcher.fetched_records

    async def fetched_in_turns(partitions: Any, timeout: float = 0, max_records: Any = None) -> Any:
        drained = await fetched(partitions, timeout, max_records=max_records)
        records = fetcher._records  # an OrderedDict: partition -> what is left of its fetch
        for tp in drained:
            if tp in records:
                records.move_to_end(tp)
        return drained

    fetcher.fetched_records = fetched_in_turns


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host}" for host in bootstrap.split(","))


def credentials(settings: Settings) -> Any:
    """Faust's form of the SASL/TLS settings (``None`` for PLAINTEXT)."""
    ssl_context = settings.ssl_context()
    if settings.uses_sasl:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            ssl_context=ssl_context,
            mechanism=settings.sasl_mechanism,
        )
    return None if ssl_context is None else faust.SSLCredentials(ssl_context)


class AccountAgents:
    """The Faust app of stage A and its state (shards per assigned partition)."""

    def __init__(
        self,
        settings: Settings,
        instruments: Mapping[str, Instrument],
        idle_tick_s: float = 0.5,
        summary_interval_ms: int = 100,
        url: str | None = None,
    ) -> None:
        """``url``: where this process's read API listens, as its peers reach it (Faust
        advertises it at each rebalance; ``agents.web`` forwards requests there)."""
        self.settings = settings
        self.summary_interval_ms = summary_interval_ms
        self.desk: FundDesk[EventT] = FundDesk(instruments, settings.partitions)
        self.instruments = dict(instruments)
        self.symbols = frozenset(instruments)
        self.topics = Topics(settings.topic_prefix)
        self.idle_tick_s = idle_tick_s
        self.stats = AgentStats()
        # the single-process worker's output metrics: same names, same dashboards
        self.metrics = Metrics(instruments)
        self.shards: dict[int, Shard[EventT]] = {}
        # partition -> its shard as a rebalance revoked it, and the next offset due of
        # each of its inputs then: taken up again if the partition comes back unchanged
        self.kept: dict[int, Kept[EventT]] = {}
        self.restoring = asyncio.Lock()  # one restore at a time (each in a thread)
        self.next_offset: dict[TP, int] = {}
        # pipeline figures for ``Metrics.pipeline``, as the worker keeps them
        self.arrived: dict[tuple[TP, int], float] = {}  # buffered input -> arrival (monotonic)
        self.latencies_s: list[float] = []  # arrival -> outputs delivered, since last tick
        self.commit_s: list[float] = []  # delivering one released batch's outputs
        self.mark_arrived_at: dict[str, float] = {}  # symbol -> wall time of its last mark
        self.late_events = 0  # applied after later ones, every partition this process held
        self.datadir = tempfile.mkdtemp(prefix=f"{settings.topic_prefix}adl-monitor-accounts-")
        weakref.finalize(self, shutil.rmtree, self.datadir, ignore_errors=True)
        self.app = faust.App(
            f"{settings.topic_prefix}adl-monitor-accounts",
            broker=broker_url(settings.bootstrap),
            broker_credentials=credentials(settings),
            store="memory://",
            processing_guarantee="at_least_once",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            web_enabled=False,
            # Faust makes a data directory even for the memory store (empty): one of this
            # object's own, not in the cwd, removed with it (one per app id was left in
            # the temp dir by each test's app)
            datadir=self.datadir,
            # buffered events are not acknowledged: on shutdown, do not wait for them
            # (they are re-delivered to the next owner of the partition)
            stream_wait_empty=False,
            # a dead process's partitions move after the session timeout (Faust's
            # default: 60 s); heartbeats every second (settings.py says why)
            broker_session_timeout=settings.session_timeout_ms / 1000,
            broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
            broker_max_poll_records=FETCH_RECORDS,
            # per partition and fetch (Faust's default: 1 MB): a rankings row holds up to
            # 5,000 positions (~235 KB at 200,000 accounts): at 1 MB a standby read four
            # a fetch and fell ~3,000 rows behind its changelog; a takeover read them.
            # Not more: aiokafka hands out a partition's whole fetch before the next
            # partition's (16 MB: the 200,000-account opening 380 s instead of ~155 s)
            consumer_max_fetch_size=FETCH_PARTITION_BYTES,
            table_standby_replicas=settings.standby_replicas,
            autodiscover=False,
            **({} if url is None else {"canonical_url": url}),
        )
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        # a shard kept warm for each partition read here as a standby (``agents.warm``)
        self.warm = WarmCopies(instruments, summary_interval_ms)
        warm = settings.warm_copies  # off: no rows noted, no copy made, restores only
        self.account_rows = self._table("accounts", self.warm.note_account if warm else None)
        self.mark_rows = self._table("marks", self.warm.note_mark if warm else None)
        # partition -> the highest mark_prices offset among the marks it received
        self.chain_rows = self._table("mark_chain")
        # the rankings each partition summarised that the desk has not lit yet
        self.ranking_rows = self._table("rankings")
        # the desk's inputs have one partition: so has its table's changelog
        self.desk_rows = self._table("desk", partitions=1)
        # the desk is current for this assignment (taken up or restored from its rows);
        # else, put aside at the last revocation with the next offset due of each input
        self.desk_live = False
        self.desk_due: dict[TP, int] | None = None
        # the tables recovered since the last rebalance (Faust's ``in_recovery`` is still
        # false for a moment after an assignment, before the recovery starts): the read
        # API may restore from the rows only then
        self.tables_ready = False
        name = self.topics.name
        self.clock_topic = self.app.topic(name(CLOCK_TOPIC), partitions=settings.partitions, **raw)
        self.boundary_topic = self.app.topic(
            name(BOUNDARY_TOPIC), partitions=settings.partitions, **raw
        )
        self.account_inputs = self.app.topic(
            *[name(t) for t in (*ACCOUNT_TOPICS, CLOCK_TOPIC, BOUNDARY_TOPIC)], **raw
        )
        self.outputs = {t: self.app.topic(name(t), **raw) for t in _KEYS}
        # Faust holds a table write at 100 buffered changelog messages until they drain
        # (with a warning): a released batch writes one row per account it touched
        self.app.producer.buffer.max_messages = 10_000
        self.fan_out = MarkFanOut(
            settings,
            name("mark_prices"),
            group_id=f"{self.app.conf.id}-mark-fanout",
            symbols=self.symbols,
            send=self._send_mark,
            dead_letter=lambda record, exc: self._dead_letter("mark_prices", record, exc),
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
        )
        self.app.task(self.fan_out.run)
        self.app.agent(self.account_inputs, name="accounts")(self._accounts)
        self.desk_inputs = self.app.topic(*[name(t) for t in DESK_INPUTS], **raw)
        inputs = [*self.account_inputs.topics, *self.desk_inputs.topics]
        self.acks = AckGuard(inputs, ordered=inputs)
        self.acks.install(self.app.consumer)
        self.in_order = InOrder()
        self.sought_at: dict[TP, float] = {}  # input partition sought back -> when (monotonic)
        self.collections = process_collections()  # the collector's pauses, reported
        self.seek_gate = SeekGate(
            lambda: int(self.app.consumer_generation_id), then=self.resume_kept
        )
        self.seek_gate.install(self.app.consumer)
        shorten_fetch_wait(self.app.consumer, FETCH_WAIT_MS)
        flush_fully(self.app.producer.buffer)
        self.ebb_waits = count_ebb_waits(self.app.producer.buffer)
        self.ebb_waits_seen = 0  # ``ebb_waits.began`` at the last look (``_seek_passed``)
        self.app.agent(self.desk_inputs, name="fund_desk")(self._fund_desk)
        self.app.timer(idle_tick_s)(self._tick_when_idle)
        self.app.timer(10.0)(self._report)
        if warm:
            self.app.timer(WARM_REFRESH_S)(self._keep_warm)
        self.app.timer(1.0)(self._metrics_tick)
        self.app.timer(FETCH_CHECK_S)(self._check_fetch)
        # input partition -> its next offset due when found out of Faust's fetch
        self.out_of_fetch: dict[TP, int] = {}
        # input partition behind -> (its next offset due, since when (monotonic), reported)
        self.stalled: dict[TP, tuple[int, float, bool]] = {}
        # input partition -> its offset due when its client read on past it undelivered
        # (last check), and the offset due it was sought back to (``_seek_passed``)
        self.passed: dict[TP, int] = {}
        self.passed_sought: dict[TP, int] = {}
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)
        self.app.on_rebalance_complete.connect(self._on_tables_ready)

    def _table(self, name: str, noted: Noted | None = None, partitions: int | None = None) -> Any:
        """A changelog table of rows (bytes) in a ``KeptStore``: a recovery reads what
        it does not hold yet; its changelog rows, as recovered or read as a standby, also
        go to ``noted``."""
        table = NotedTable(
            self.app,
            name=name,
            beacon=self.app.tables.beacon,
            key_type=bytes,
            value_type=bytes,
            default=None,
            partitions=partitions or self.settings.partitions,
            standby_buffer_size=STANDBY_BUFFER_ROWS,
            extra_topic_configs=changelog_configs(self.settings),
            noted=noted,
        )
        return self.app.tables.add(table)

    async def _keep_warm(self) -> None:
        """Each partition read here as a standby: its copy brought up to the rows noted
        since (in a thread, one at a time, never while a partition is restored or
        taken over)."""
        for partition in self.warm.due(self.held()):
            async with self.restoring:
                if partition in self.held() or partition in self.shards:
                    continue  # taken over meanwhile
                if partition in self.warm.copies:
                    copy, accounts, marks = self.warm.take_noted(partition)
                    await asyncio.to_thread(copy.refresh, accounts, marks)
                    continue
                copy = self.warm.new_copy(partition)
                # the rows as they are now (standby updates go on while the thread reads)
                rows = list(self.account_rows.items()), list(self.mark_rows.items())
                began = time.monotonic()
                count = await asyncio.to_thread(copy.start, *rows)
                log.info("partition %d: warm copy of %d accounts made in %.1f s",
                         partition, count, time.monotonic() - began)  # fmt: skip

    # ------------------------------------------------------------------ marks
    async def _send_mark(
        self, key: bytes | None, value: bytes, partition: int, headers: list[tuple[str, bytes]]
    ) -> Any:
        return await self.clock_topic.send(
            key=key, value=value, partition=partition, headers=headers
        )

    async def _tick_when_idle(self) -> None:
        """Marks idle and every mark forwarded: tell the account partitions (a tick
        before the fan-out caught up would release account events ahead of marks)."""
        fan_out = self.fan_out
        if time.monotonic() - fan_out.last_mark_at < self.idle_tick_s:
            return
        if not fan_out.assignment() or not fan_out.caught_up():
            return
        for p in range(self.settings.partitions):
            await self.clock_topic.send(value=TICK, partition=p)

    async def _check_fetch(self) -> None:
        """Faust stops fetching a partition whose stream buffer is under pressure and
        fetches it again once the buffer drains (``Consumer.on_buffer_full`` /
        ``on_buffer_drop``). After a takeover at 200,000 accounts one input partition
        stayed out of the fetch for the rest of the run (fills[2]: 1,167 offsets
        undelivered for 55 s, its partition waiting on it; 2026-12-05). An input
        partition assigned here, behind, not paused by a recovery, out of the fetch while
        its stream buffers are drained (where Faust fetches again) and with nothing
        delivered for two checks in a row is put back into it. One the client read on
        past records Faust dropped is sought back (``_seek_passed``)."""
        consumer = self.app.consumer
        if self.app.in_recovery or not self.tables_ready:
            self.out_of_fetch.clear()
            self.stalled.clear()
            self.passed.clear()
            return
        self._note_stalls(consumer)
        await self._seek_passed(consumer)
        active = consumer._active_partitions
        if active is None:
            return
        out = {
            tp: self._next_due(tp)
            for tp, buffers in self._behind_inputs(consumer)
            if tp not in active and tp not in consumer._paused_partitions
            and all(map(_drained, buffers))
        }  # fmt: skip
        for tp, due in out.items():
            if self.out_of_fetch.get(tp) == due:  # nothing delivered since the last check
                log.warning(
                    "%s[%d]: left out of the fetch with offsets %d-%s undelivered: fetched "
                    "again", tp.topic, tp.partition, due, consumer.highwater(tp),
                )  # fmt: skip
                consumer._buffered_partitions.discard(tp)
                active.add(tp)
                self.stats.refetched += 1
        self.out_of_fetch = {tp: due for tp, due in out.items() if tp not in active}

    async def _seek_passed(self, consumer: Any) -> None:
        """Faust's flow control empties every stream buffer when it resumes, and its
        recovery resumes it after the inputs' fetch began: records fetched in between
        are dropped while the client reads on past them (docs/streaming.md, hole 11).
        A partition that receives more shows the gap to ``InOrder``, which seeks back;
        one that receives nothing more stalled (a restarted process's ``balances[0]``
        and ``[1]`` delivered nothing for 3.5 minutes, 2026-12-06). An input partition
        whose client position is past its offset due, none of its records in the
        stream buffers (drained: nothing held on the way in) nor held by the client
        (``fetch_pending``), flow on, no wait of
        Faust's conductor for the producer since the last look (``EbbWaits``: under
        load it held ~900 fills that long) and nothing delivered for two checks in a
        row is sought back to the offset due, once per offset due (offsets holding
        only a transaction's marker look the same: a second seek would find them
        again)."""
        flowing = consumer.flow_active and self.app.flow_control.is_active()
        waits, seen = self.ebb_waits, self.ebb_waits_seen
        self.ebb_waits_seen = waits.began
        if not (flowing and self.seek_gate.open()) or waits.waiting or waits.began != seen:
            self.passed.clear()  # records were held on their way in: not judged
            return
        buffers = dict(self._input_buffers())  # a channel's queue is shared by its topics
        queued: dict[int, set[TP]] = {}  # queue -> the partitions of the records in it
        passed: dict[TP, int] = {}
        for tp in consumer.assignment():
            queues = buffers.get(tp.topic)
            if queues is None or not all(map(_drained, queues)):
                continue  # not an input; or records may be on their way into its buffer
            due = self.in_order.due(tp, self._committed(tp))
            position = fetch_position(consumer, tp)
            # records the client still holds: not stalled, and a seek then raced
            # aiokafka's hand-out (``KeyError`` in ``fetched_records`` crashed a
            # failover test's process, 2026-12-06)
            if position is None or position <= due or fetch_pending(consumer, tp):
                continue
            if any(tp in queued_in(queue, queued) for queue in queues):
                continue
            if self.passed.get(tp) == due and self.passed_sought.get(tp) != due:
                log.warning(
                    "%s[%d]: read on to %d while %d was due, nothing delivered: read "
                    "again from %d", tp.topic, tp.partition, position, due, due,
                )  # fmt: skip
                self.passed_sought[tp] = due
                self.sought_at[tp] = time.monotonic()
                self.stats.passed_sought += 1
                await consumer.seek(tp, due)
            passed[tp] = due
        self.passed = passed

    def _input_buffers(self) -> Iterator[tuple[str, list[Any]]]:
        """Each input topic with its stream buffers (Faust's queues of its channels)."""
        channels = self.app.topics._topic_name_index
        for topic in self.acks.topics:
            yield topic, [channel.queue for channel in channels.get(topic, ())]

    def _behind_inputs(self, consumer: Any) -> Iterator[tuple[TP, list[Any]]]:
        """The input partitions assigned here with data not delivered yet (or an end not
        known yet), each with its stream buffers (Faust's queues of its topic)."""
        buffers = dict(self._input_buffers())
        for tp in consumer.assignment():
            if tp.topic in buffers and self._behind(tp):
                yield tp, buffers[tp.topic]

    def _note_stalls(self, consumer: Any) -> None:
        """An input partition behind with nothing delivered for ``STALL_REPORT_S`` out of
        a recovery while its stream buffers are empty (its agent waits, not busy with a
        backlog): where it stands in Faust's consumer, logged once per stall (a
        shard waiting on it holds everything after; the log says whether it is out of
        the fetch, paused or held by the seek gate, for the stalls ``_check_fetch`` does
        not cure: issue 15's note)."""
        now = time.monotonic()
        stalled: dict[TP, tuple[int, float, bool]] = {}
        for tp, buffers in self._behind_inputs(consumer):
            if consumer.highwater(tp) is None:
                continue
            if any(buffer.qsize() for buffer in buffers):
                continue  # its agent is busy with what was delivered (a backlog, no stall)
            due = self._next_due(tp)
            last_due, since, told = self.stalled.get(tp, (due, now, False))
            if last_due != due:  # delivered since the last check
                since, told = now, False
            if not told and now - since >= STALL_REPORT_S:
                told = True
                self.stats.stalls += 1
                log.warning(
                    "%s[%d]: nothing delivered for %.0f s with offsets %d-%d undelivered "
                    "(in the fetch: %s, held by Faust's buffer pressure: %s, paused: %s, "
                    "seek gate open: %s)", tp.topic, tp.partition,
                    now - since, due, consumer.highwater(tp),
                    tp in (consumer._active_partitions or ()),
                    tp in consumer._buffered_partitions, tp in consumer._paused_partitions,
                    self.seek_gate.open(),
                )  # fmt: skip
            stalled[tp] = (due, since, told)
        self.stalled = stalled

    async def _report(self) -> None:
        fan_out = self.fan_out
        if fan_out.marks_fanned_out or fan_out.assignment():
            log.info(
                "mark fan-out: %d forwarded, %d commits refused, %d restarts, (next, end) %s",
                fan_out.marks_fanned_out, fan_out.commits_refused, fan_out.restarts,
                fan_out.positions(),
            )  # fmt: skip
        desk = self.desk
        if desk.stats.summaries:
            # what holds complete marks back: a partition whose summaries have not come
            # (the others' wait here), or fund/book inputs not yet delivered (``held``)
            waiting = {
                fund: {p: len(q) for p, q in sorted(queues.items())}
                for fund, queues in desk.waiting.items()
            }
            log.info(
                "fund desk: %s, caught up %s, summaries waiting by partition %s, %d held "
                "for the fund and books", desk.stats, self.desk_caught_up(), waiting,
                len(desk.sequencer),
            )  # fmt: skip
        collections = self.collections
        if collections.count:  # every thread waits for one: a stall no other log explains
            log.info(
                "full collections: %d, %.1f s in all, the longest since the last report "
                "%.2f s", collections.count, collections.total_s, collections.take_longest(),
            )  # fmt: skip
        order = self.in_order
        stats = self.stats
        held = self.seek_gate.held
        if (order.seeks or self.acks.refused or held or stats.refetched or stats.stalls
                or stats.passed_sought):  # fmt: skip
            log.info(
                "inputs: %d sought back, %d empty offset ranges, %d acknowledgements by "
                "Faust refused, %d deliveries held until the committed offsets were read, "
                "%d partitions put back into the fetch, %d stalls, %d read on past "
                "undelivered offsets and sought back", order.seeks, order.gaps,
                self.acks.refused, held, stats.refetched, stats.stalls, stats.passed_sought,
            )  # fmt: skip
        for p, shard in sorted(self.shards.items()):
            clock = None if shard.clock_key is None else shard.clock_key[0]
            offsets = {
                topic: (self.next_offset.get(tp), self.app.consumer.highwater(tp))
                for topic in (*ACCOUNT_TOPICS, CLOCK_TOPIC)
                for tp in [TP(self.topics.name(topic), p)]
            }
            log.info(
                "partition %d: %d buffered, clock at %s, waiting on %s, %s, (next, end) %s",
                p, len(shard.sequencer), clock, self._pending(p), shard.stats, offsets,
            )  # fmt: skip

    # ------------------------------------------------------------------ accounts
    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        """Faust's rebalances are eager: every partition is revoked, most come back.
        A shard is put aside with how far its inputs were delivered (``shard``)."""
        self.stats.revocations += 1
        self.tables_ready = False
        self._own_rows(set(), set())  # rows delivered from now on may follow a new owner's
        if self.desk_live and self._desk_partitions() & revoked:
            self.desk_due = self._due(self._desk_partitions())
            self.desk.rewind()
            self.desk_live = False
        for p in self._account_partitions(revoked):
            shard = self.shards.pop(p, None)
            if shard is not None:
                due = self._due(self._inputs_of(p))
                buffered = [(i.token.message.tp, i.token.message.offset)
                            for i in shard.sequencer.items()]  # fmt: skip
                self.kept[p] = Kept(shard, due, resume_offsets(due, buffered))
        self.in_order.forget(revoked)
        self.acks.forget(revoked)
        self.arrived = {k: at for k, at in self.arrived.items() if k[0] not in revoked}
        for tp in revoked:  # the partition's state moves with its changelog
            self.next_offset.pop(tp, None)
            self.sought_at.pop(tp, None)
            self.passed_sought.pop(tp, None)

    async def _on_assigned(self, app: Any, assigned: set[TP], **_: Any) -> None:
        """Shards put aside for partitions gone elsewhere are stale: dropped."""
        for p in set(self.kept) - self._account_partitions(assigned):
            del self.kept[p]
        self._own_rows(
            self._account_partitions(assigned),
            {0} if self._desk_partitions() <= assigned else set(),
        )
        changelog = self.account_rows.changelog_topic.get_topic_name()
        standbys = app.assignor.assigned_standbys()
        self.warm.keep_only(
            {tp.partition for tp in standbys if tp.topic == changelog},
            self._account_partitions(assigned),
        )
        if not self._desk_partitions() <= assigned:
            self.desk_due = None  # the desk moved elsewhere: its rows say where it is

    async def _on_tables_ready(self, app: Any, **_: Any) -> None:
        """Sent by Faust's recovery once the active tables are read, before the streams
        resume."""
        self.tables_ready = True

    def _own_rows(self, accounts: set[int], desk: set[int]) -> None:
        """The changelog partitions whose rows this process writes now (``KeptStore``:
        only their delivered rows move the offset a recovery reads on from)."""
        for table in self._tables():
            table.data.owned = desk if table is self.desk_rows else accounts

    def _tables(self) -> tuple[Any, ...]:
        return (self.account_rows, self.mark_rows, self.chain_rows, self.ranking_rows,
                self.desk_rows)  # fmt: skip

    def changelog_topics(self) -> list[str]:
        return [table.changelog_topic.get_topic_name() for table in self._tables()]

    def _due(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The next offset due of each of ``tps`` as a revocation puts their shard or
        desk aside: ``InOrder``'s (seeded by ``_resume_at_committed``), since Faust forgot
        the committed offsets before the revocation signal."""
        return {tp: self.in_order.next_offset.get(tp, 0) for tp in tps}

    def _resume_at_committed(self, tps: Iterable[TP]) -> None:
        """At the first delivery of an assignment (the committed offsets are read):
        where each of ``tps`` resumes, what a shard or desk covers if it is put aside
        with nothing more delivered (an input's first delivery seeds its own)."""
        for tp in tps:
            self.in_order.next_offset.setdefault(tp, self._committed(tp))

    def _still_current(self, due: Mapping[TP, int]) -> bool:
        """A shard or desk put aside with ``due`` is still current (``unmoved``)."""
        return unmoved(due, {tp: self._committed(tp) for tp in due})

    def _account_partitions(self, tps: Iterable[TP]) -> set[int]:
        """The account partitions among ``tps`` (any of their inputs)."""
        inputs = set(self.account_inputs.topics)
        return {tp.partition for tp in tps if tp.topic in inputs}

    def _committed(self, tp: TP) -> int:
        """``tp``'s committed offset as Faust keeps it (a private map, filled when it
        seeks at assignment); 0 before any."""
        return self.app.consumer._committed_offset.get(tp) or 0

    def _inputs_of(self, partition: int) -> list[TP]:
        return [TP(topic, partition) for topic in self.account_inputs.topics]

    async def shard(self, partition: int) -> Shard[EventT] | None:
        """The partition's shard: the one put aside at the last revocation if nobody
        moved the partition's inputs past it meanwhile (``unmoved``), else restored from
        the changelog table; when first asked after an assignment. ``None``: a
        rebalance came while it was restored (the caller's event is delivered again).

        A restore runs in a thread, one at a time: a partition of the real scale takes
        tens of seconds (``benchmarks/bench_rebalance.py``), and on the event loop it
        would stop the heartbeats past the session timeout (the process evicted, its
        partitions moved again)."""
        shard = self.shards.get(partition)
        if shard is None:
            shard = self._taken_up(partition)
        if shard is not None:
            return shard
        async with self.restoring:
            shard = self.shards.get(partition)
            if shard is not None:  # restored for another caller meanwhile
                return shard
            revocations = self.stats.revocations
            warm = self.warm.take(partition)
            if warm is not None:
                return await self._warmed(partition, *warm)
            # the rows as they are now (standby updates go on while the thread reads)
            accounts, marks = list(self.account_rows.values()), list(self.mark_rows.items())
            rankings = list(self.ranking_rows.items())
            began = time.monotonic()
            shard = await asyncio.to_thread(
                restored_shard, partition, self.instruments, self.summary_interval_ms,
                accounts, marks, rankings,
            )  # fmt: skip
            if self.stats.revocations != revocations:
                log.info("partition %d: revoked while restored: dropped", partition)
                return None
            log.info("partition %d: restored %d accounts in %.1f s",
                     partition, len(shard.applied), time.monotonic() - began)  # fmt: skip
            self.stats.restored += 1
            self.shards[partition] = shard
            self.warm.forget(partition)
            return shard

    async def _warmed(
        self,
        partition: int,
        copy: WarmCopy,
        accounts: dict[bytes, bytes],
        marks: dict[bytes, bytes],
    ) -> Shard[EventT] | None:
        """The partition taken over from its warm copy: brought up to the rows
        recovered since its last refresh, with the rankings waiting for their lights."""
        revocations = self.stats.revocations
        began = time.monotonic()
        replaced = await asyncio.to_thread(copy.refresh, accounts, marks)
        if self.stats.revocations != revocations:
            log.info("partition %d: revoked while taken over: copy kept warm", partition)
            self.warm.give_back(copy)
            return None
        shard: Shard[EventT] | None = copy.shard
        if shard is None:  # not after a refresh: its first makes the shard
            return None
        shard.resume(decode_rankings(partition, self.ranking_rows.items()))
        log.info("partition %d: taken over from its warm copy (%d accounts brought up to "
                 "date) in %.2f s", partition, replaced, time.monotonic() - began)  # fmt: skip
        self.stats.warmed += 1
        self.shards[partition] = shard
        return shard

    def _taken_up(self, partition: int) -> Shard[EventT] | None:
        """The shard put aside for ``partition``, rewound, if it is still current."""
        kept = self.kept.pop(partition, None)
        if kept is None:
            return None
        shard, due, _ = kept
        if not self._still_current(due):
            log.info("partition %d: moved on elsewhere meanwhile: restored", partition)
            return None
        dropped = shard.rewind()
        log.info("partition %d: taken up again (%d buffered events to be delivered "
                 "again)", partition, dropped)  # fmt: skip
        self.stats.taken_up += 1
        self.shards[partition] = shard
        self.warm.forget(partition)
        return shard

    async def resume_kept(self) -> None:
        """After Faust sought an assignment's inputs to their committed offsets, before
        anything of it is delivered (``SeekGate``): each partition given back with its
        shard still current is taken up, and its inputs read on from where the shard got
        to (``resume_offsets``), not from their committed offsets. The offsets between
        were applied here and their outputs delivered: read again they were only dropped
        as copies, but the re-read began behind everything the moved partitions had
        fetched meanwhile (200,000 accounts, 2026-12-05: a kept partition's next mark
        came 7.8 s after the takeover, a moved one's 0.3 s). For the commit they count
        as handled (a gap, in Faust's terms). Faust seeks to the committed offsets again
        at times (a fetch while the flow is stopped): every input whose next offset is
        known here is sought on to it each time."""
        consumer = self.app.consumer
        assignment = consumer.assignment()
        for p in sorted(self.kept):
            resume = self.kept[p].resume
            if not resume.keys() <= assignment or self._taken_up(p) is None:
                continue
            for tp, offset in resume.items():
                committed = self._committed(tp)
                self.in_order.next_offset[tp] = self.next_offset[tp] = offset
                if offset > committed:
                    consumer._gap[tp].addi(committed, offset)
        onwards = {
            tp: offset
            for tp, offset in self.in_order.next_offset.items()
            if tp in assignment and offset > self._committed(tp)
        }
        if onwards:
            try:
                await consumer.seek_wait(onwards)
            except Exception as exc:  # read from the committed offsets: slower, loses nothing
                log.warning("inputs not sought on to %s (%r): the offsets before are "
                            "delivered and dropped as delivered", onwards, exc)  # fmt: skip

    def _next_due(self, tp: TP) -> int:
        """The next offset of ``tp`` to deliver: before anything is delivered, the
        partition resumes at its committed offset."""
        return max(self.next_offset.get(tp, 0), self._committed(tp))

    def _behind(self, tp: TP) -> bool:
        """Data in ``tp`` not yet delivered to this worker's agents."""
        high = self.app.consumer.highwater(tp)
        return high is None or high > self._next_due(tp)

    def held(self) -> set[int]:
        """The account partitions assigned to this process."""
        inputs = {self.topics.name(t) for t in (*ACCOUNT_TOPICS, CLOCK_TOPIC)}
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in inputs}

    def standby_lag_rows(self) -> dict[tuple[str, int], float]:
        """Per table and partition read here as a standby: rows of its changelog written
        and not yet applied here (a takeover reads them first: the account rows are
        what a warm copy misses beyond its last refresh, the rankings' rows are large
        and fell furthest behind). NaN until Faust knows the changelog's end (no fetch
        answered yet): a standby listed either way."""
        lag: dict[tuple[str, int], float] = {}
        standbys = self.app.assignor.assigned_standbys()
        for table in self._tables():
            changelog = table.changelog_topic.get_topic_name()
            read = table.data.offsets
            for tp in standbys:
                if tp.topic == changelog:
                    end = self.app.consumer.highwater(tp)
                    rows = math.nan if end is None else max(0, end - read.get(tp, -1) - 1)
                    lag[(table.name, tp.partition)] = rows
        return lag

    def caught_up(self) -> bool:
        """Every input of what this process holds delivered and applied: the fan-out's
        marks (if it forwards them), each held partition's account inputs, clock and
        light boundaries, nothing buffered; if it runs the desk, the desk's summaries all
        in and every complete mark applied. With several processes each says it for its
        own share (a process that holds nothing is not caught up: it is not in yet)."""
        held = self.held()
        desk = self.holds_desk()
        if not held and not desk:
            return False
        for p in held:
            shard = self.shards.get(p)
            if self._pending(p, clock=True) or self._behind(
                TP(self.topics.name(BOUNDARY_TOPIC), p)
            ):
                return False
            if shard is not None and (len(shard.sequencer) or shard.due_summaries):
                return False
        return self.fan_out.caught_up() and (not desk or self.desk_caught_up())

    def desk_caught_up(self) -> bool:
        """The desk's inputs delivered, no mark group waiting for a partition or for
        the fund and books (what is left are fund or book updates after the last mark)."""
        mine = [tp for tp in self.app.consumer.assignment() if tp in self._desk_partitions()]
        desk = self.desk
        return (
            len(mine) == len(DESK_INPUTS)
            and not any(self._behind(tp) for tp in mine)
            and not any(q for queues in desk.waiting.values() for q in queues.values())
            and all(item.event is not None for item in desk.sequencer.items())
        )

    def holds_desk(self) -> bool:
        """This process runs the fund desk (its inputs are assigned here)."""
        return self._desk_partitions() <= set(self.app.consumer.assignment())

    def restore_desk(self, recovered: bool = False) -> bool:
        """Make the desk current for this assignment once the tables are recovered
        (``recovered``: the caller, the desk's agent, knows they are and that the
        committed offsets are read; ``False``: the read API, while they may not be).
        From the agent: the desk put aside at the last revocation if nobody moved its
        inputs past it meanwhile (``unmoved``; ``FundDesk.rewind`` dropped what it had
        buffered); else, or from the read API, a new desk from its changelog rows (always
        right: what they cover is recognised when delivered again)."""
        if self.desk_live or not (recovered or self.tables_ready):
            return self.desk_live
        due, self.desk_due = self.desk_due, None
        tps = self._desk_partitions()
        if recovered:
            self._resume_at_committed(tps)
        if recovered and due is not None and self._still_current(due):
            log.info("fund desk: taken up again")
        else:
            self.desk = FundDesk(self.instruments, self.settings.partitions)
            for raw in self.desk_rows.values():
                restore_desk(self.desk, raw)
            log.info("fund desk: restored %d funds", len(self.desk.complete_key))
        self.desk_live = True
        return True

    def lag(self) -> dict[str, int]:
        """Input messages not yet delivered, by topic (base name), over the partitions
        this process holds; the mark fan-out's ``mark_prices`` among them."""
        consumer = self.app.consumer
        inputs = {*ACCOUNT_TOPICS, CLOCK_TOPIC, BOUNDARY_TOPIC, *DESK_INPUTS}
        out: dict[str, int] = {}
        for tp in consumer.assignment():
            base = self.topics.base(tp.topic)
            high = consumer.highwater(tp)
            if base not in inputs or high is None:
                continue
            out[base] = out.get(base, 0) + max(0, high - self._next_due(tp))
        for done, high in self.fan_out.positions().values():
            if high is not None:
                out["mark_prices"] = out.get("mark_prices", 0) + max(0, high - (done or 0))
        return out

    async def _metrics_tick(self) -> None:
        """The pipeline's figures and, from this process's partitions, the dashboards'
        per-side numbers (summed over processes by the dashboards' queries). A failure
        here is logged, never raised: it would stop the Faust app with it."""
        try:
            self._measure()
        except Exception:
            log.exception("metrics tick failed (the agents go on)")

    def _measure(self) -> None:
        metrics = self.metrics
        metrics.pipeline(
            self.latencies_s, self.commit_s, self.late_events, self.lag(), self.mark_arrived_at
        )
        self.latencies_s.clear()
        self.commit_s.clear()
        # this 1 s timer sets the pace: a 1 s bound in ``due`` skipped early ticks
        if metrics.due(every_s=0.0):
            shards = list(self.shards.values())
            metrics.sides(
                self.instruments,
                lambda sym, side: SideSummary.merged(
                    [shard.engine.side_summary(sym, side) for shard in shards]
                ),
            )

    def _desk_partitions(self) -> set[TP]:
        return {TP(self.topics.name(t), 0) for t in DESK_INPUTS}

    def _pending(self, partition: int, clock: bool = False) -> list[str]:
        """Account inputs of the partition (and the clock) with data not yet delivered."""
        topics = (*ACCOUNT_TOPICS, CLOCK_TOPIC) if clock else ACCOUNT_TOPICS
        return [
            f"{topic}:{partition}"
            for topic in topics
            if self._behind(TP(self.topics.name(topic), partition))
        ]

    async def _accounts(self, stream: StreamT[bytes]) -> None:
        async for event in stream.noack().events():
            message = event.message
            shard = await self._shard_for(event)
            if shard is None:
                continue
            base = self.topics.base(message.topic)
            self.next_offset[message.tp] = message.offset + 1
            if base == BOUNDARY_TOPIC:
                await self._light(shard, message)
                await self.acks.ack(stream, event)
                continue
            flush = False
            if base == CLOCK_TOPIC and message.value == TICK:
                flush = True
            else:
                if base == CLOCK_TOPIC:
                    self._check_chain(shard, message)
                try:
                    topic = "mark_prices" if base == CLOCK_TOPIC else base
                    decoded, obj = decode_message(topic, message.value, self.symbols)
                except AdlMonitorError as exc:
                    await self._dead_letter(base, message, exc)
                    await self.acks.ack(stream, event)
                    continue
                source = Source(base, message.partition, message.offset)
                late = shard.stats.late
                if not shard.push(decoded, obj, source, event):  # counted by the shard
                    await self.acks.ack(stream, event)
                    continue
                self.late_events += shard.stats.late - late
                self.arrived[(message.tp, message.offset)] = time.monotonic()
                if isinstance(decoded, Mark):
                    self.mark_arrived_at[decoded.symbol] = time.time()
            pending = self._pending(message.partition, clock=flush)
            # a tick flushes only as the latest thing said: a tick replayed from the past
            # (written while the fan-out paused) is followed by marks still to come
            flushed = flush and not pending
            released = shard.release(pending, flush=flushed)
            await self._apply(shard, released)
            if flushed:  # caught up: the last mark group's summaries are due now
                source = Source(base, message.partition, message.offset)
                summaries = shard.summaries()
                await self._persist_rankings(shard)
                await self._deliver(summaries, source)
            for item in released:
                await self.acks.ack(stream, item.token)
            if flush:
                await self.acks.ack(stream, event)

    async def _shard_for(self, event: EventT) -> Shard[EventT] | None:
        """The shard of a delivered event's partition; ``None``: the event is not due
        (``_in_order``), or its partition was revoked while its shard was restored (it
        is delivered again to the next owner)."""
        if not await self._in_order(event):
            return None
        partition = event.message.partition
        if partition not in self.shards:  # the first delivery of this assignment
            self._resume_at_committed(self._inputs_of(partition))
        return await self.shard(partition)

    async def _in_order(self, event: EventT) -> bool:
        """Deliver each input partition's offsets in order, from the committed offset
        on after an assignment (``acks``)."""
        message = event.message
        tp = message.tp
        consumer = self.app.consumer
        gate = self.seek_gate
        if not gate.open() and not await gate.passed(lambda: tp in consumer.assignment()):
            return False
        deliver, seek_to, gap = self.in_order.verdict(
            tp, message.offset, consumer._committed_offset.get(tp)
        )
        if seek_to is not None:
            log.warning(
                "%s[%d]: offset %d delivered while %d was due: read again from %d",
                tp.topic, tp.partition, message.offset, seek_to, seek_to,
            )  # fmt: skip
            self.sought_at[tp] = time.monotonic()
            await consumer.seek(tp, seek_to)
        elif deliver and tp in self.sought_at:  # how long a re-read takes to begin
            waited_s = time.monotonic() - self.sought_at.pop(tp)
            log.info("%s[%d]: the re-read began at offset %d after %.2f s",
                     tp.topic, tp.partition, message.offset, waited_s)  # fmt: skip
        if gap is not None:  # no events there: the commit may pass them
            consumer._gap[tp].addi(*gap)
        if deliver:
            self.acks.delivered(event)
        return deliver

    def _check_chain(self, shard: Shard[EventT], message: Any) -> None:
        """A forwarded mark whose predecessor (``adl-prev``) this partition never saw:
        marks were lost on the way (counted, logged with the missing source range).
        The highest source offset seen is written with the marks' rows (changelog)."""
        headers = dict(message.headers or ())
        source = headers.get(SOURCE_HEADER)
        if source is None:  # not from the fan-out (an older version, a hand-made copy)
            return
        offset = int(source.rsplit(b":", 1)[1])
        p = message.partition
        if shard.chain_last is None:  # restored: the last life's, from the changelog
            row = self.chain_rows.get(str(p).encode())
            if row is not None:
                shard.chain_last = int(row)
        last = shard.chain_last
        prev = headers.get(PREV_HEADER)
        if last is not None and prev is not None and int(prev) > last:
            gaps = self.stats.mark_gaps
            gaps[p] = gaps.get(p, 0) + 1
            log.error(
                "partition %d: marks lost: mark_prices offsets %d-%d were forwarded and "
                "never received", p, last + 1, int(prev),
            )  # fmt: skip
        if last is None or offset > last:
            shard.chain_last = offset

    async def _light(self, shard: Shard[EventT], message: Any) -> None:
        """Stage B's light boundaries: the partition's rank alerts (not sequenced: they
        describe a ranking the partition already summarised)."""
        try:
            cuts = _internal(message.value, cuts_from_wire, "boundaries", "rank boundaries")
        except AdlMonitorError as exc:
            await self._dead_letter(BOUNDARY_TOPIC, message, exc)
            return
        source = Source(BOUNDARY_TOPIC, message.partition, message.offset)
        lit = shard.light(cuts)
        await self._deliver(lit.outputs, source)
        self._write_rows(shard, lit.accounts, ())
        await self._persist_rankings(shard)  # the lit ranking's rows deleted

    async def _apply(self, shard: Shard[EventT], released: list[Pending[EventT]]) -> None:
        if not released:
            return
        accounts: set[str] = set()
        symbols: set[str] = set()
        outputs = []
        for item in released:
            applied = shard.apply(item)
            accounts.update(applied.accounts)
            if applied.mark_symbol is not None:
                symbols.add(applied.mark_symbol)
            outputs += [(out, item.source, n) for n, out in enumerate(applied.outputs)]
        began = time.monotonic()
        await self._persist_rankings(shard)  # before the summaries that describe them
        sends = [await self._send(out, source, n) for out, source, n in outputs]
        await asyncio.gather(*sends)  # outputs delivered before the rows that cover them
        done = time.monotonic()
        self.commit_s.append(done - began)
        for item in released:
            message = item.token.message
            arrived = self.arrived.pop((message.tp, message.offset), None)
            if arrived is not None:
                self.latencies_s.append(done - arrived)
        self._write_rows(shard, accounts, symbols)

    def _write_rows(
        self, shard: Shard[EventT], accounts: Iterable[str], symbols: Iterable[str]
    ) -> None:
        p = shard.partition
        for account in sorted(accounts):
            self.account_rows[account.encode()] = encode_account(shard.row(account))
        for symbol in sorted(symbols):
            self.mark_rows[f"{p}:{symbol}".encode()] = orjson.dumps(list(shard.mark_row(symbol)))
        if symbols and shard.chain_last is not None:
            self.chain_rows[str(p).encode()] = str(shard.chain_last).encode()

    async def _persist_rankings(self, shard: Shard[EventT]) -> None:
        """Write the rankings the shard kept since the last call and delete those it
        forgot (``agents.ranking_rows``). A ranking's rows are delivered before the
        summary that describes it is sent: the desk lights only rankings a restart
        finds again (a crash before the flush leaves the mark uncommitted: applied and
        summarised again)."""
        if write_changes(self.ranking_rows, shard.partition, shard.ranking_changes()):
            await self.app.producer.flush()

    async def _send(self, out: Output, source: Source, index: int) -> Any:
        topic = _TOPIC_FOR[out.stream]
        key_field = _KEYS[topic]
        key = None if key_field is None else str(out.payload[key_field]).encode()
        value = orjson.dumps(out.payload)
        self.metrics.observe(Sent(topic, key, value, 0))
        headers = [(SOURCE_HEADER, source.header), (INDEX_HEADER, str(index).encode())]
        return await self.outputs[topic].send(key=key, value=value, headers=headers)

    async def _dead_letter(self, base: str, message: Any, error: AdlMonitorError) -> None:
        source = Source(base, message.partition, message.offset)
        letter = dead_letter(base, message.partition, message.offset, message.value, error)
        await self._deliver([Output("dead_letters", letter)], source)

    async def _deliver(self, outputs: list[Output], source: Source) -> None:
        """Send the outputs of one input (each with its index) and wait for delivery."""
        sends = [await self._send(out, source, n) for n, out in enumerate(outputs)]
        await asyncio.gather(*sends)

    # ------------------------------------------------------------------ fund desk
    async def _fund_desk(self, stream: StreamT[bytes]) -> None:
        """Stage B: every partition's summaries, the fund and the books, in order."""
        async for event in stream.noack().events():
            if not await self._in_order(event):
                continue
            self.restore_desk(recovered=True)  # Faust recovers tables before streams start
            desk = self.desk
            message = event.message
            base = self.topics.base(message.topic)
            self.next_offset[message.tp] = message.offset + 1
            try:
                if base == SUMMARY_TOPIC:
                    summary = _internal(message.value, from_wire, "summary", "a risk summary")
                    counted = desk.push_summary(summary, event)
                else:
                    decoded, obj = decode_message(base, message.value, self.symbols)
                    if not isinstance(decoded, InsuranceFund | Depth):
                        raise InvalidEvent("type", f"{base} carries no {type(decoded).__name__}")
                    counted = desk.push_event(decoded, obj, base, message.offset, event)
            except AdlMonitorError as exc:
                await self._dead_letter(base, message, exc)
                counted = False
            if not counted:
                await self.acks.ack(stream, event)
            pending = [t for t in DESK_INPUTS[1:] if self._behind(TP(self.topics.name(t), 0))]
            await self._desk_apply(stream, desk.release(pending))

    async def _desk_apply(self, stream: StreamT[bytes], released: list[DeskItem[EventT]]) -> None:
        for item in released:
            result = self.desk.apply(item)
            last = item.tokens[-1].message  # a complete mark has its own summaries' tokens
            source = Source(self.topics.base(last.topic), last.partition, last.offset)
            # delivered before the row and the acks
            outputs = [Output(*wire.render(signal)) for signal in result.signals]
            sends = [
                await self.boundary_topic.send(
                    key=cuts.symbol.encode(), value=orjson.dumps(cuts_to_wire(cuts)), partition=p
                )
                for cuts in result.cuts
                for p in range(self.settings.partitions)
            ]
            await self._deliver(outputs, source)
            await asyncio.gather(*sends)
            fund = self.desk.fund_of(item)
            self.desk_rows[fund.encode()] = encode_desk(self.desk, fund)
            for token in item.tokens:
                await self.acks.ack(stream, token)


def _internal(value: bytes, from_wire: Callable[[Any], T], field: str, what: str) -> T:
    """A message of an internal topic (``risk_summaries``, ``rank_boundaries``);
    malformed (another writer, a bad deploy) -> rejected."""
    try:
        return from_wire(orjson.loads(value))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEvent(field, f"not {what}: {exc}") from exc
