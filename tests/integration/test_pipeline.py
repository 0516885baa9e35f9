"""The streaming worker on a real Kafka: the bundled cascade in, the same signals out as
the engine gives over the file (what ``replay`` writes), nothing lost or repeated."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import wire
from streams.brokers import Broker
from streams.cli import bundled
from streams.engine.decode import decode_line
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError
from streams.engine.instruments import load_instruments
from streams.pipeline.producer import produce_file
from streams.pipeline.settings import Settings
from streams.pipeline.topics import OUTPUT_FOR_FILE, OUTPUTS, Topics
from streams.pipeline.worker import SEQ_HEADER, Worker, ensure_topics, input_partitions
from tests.helpers import hostile_lines, schema_validator

CASCADE = Path(bundled("cascade.jsonl"))
INSTRUMENTS = load_instruments(bundled("instruments.toml"))
COMPARED = ("liquidations", "bankruptcies", "adl_triggers", "rank_alerts", "insurance_projection")


def reference() -> tuple[dict[str, list[tuple[int, bytes]]], Engine]:
    """The engine over the file, in file order: (sequence, payload) per output topic, and
    the engine at the end."""
    engine = Engine(INSTRUMENTS)
    out: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    seq = 0
    for line in CASCADE.read_bytes().splitlines():
        try:
            event = decode_line(line, INSTRUMENTS)
        except AdlMonitorError:
            continue
        seq += 1
        try:
            signals = engine.apply(event)
        except AdlMonitorError:
            continue
        for produced in signals:
            stream, payload = wire.render(produced)
            out[OUTPUT_FOR_FILE[stream]].append((seq, orjson.dumps(payload)))
    return out, engine


async def read_outputs(
    settings: Settings, deadline_s: float = 60.0
) -> dict[str, list[tuple[int, bytes]]]:
    """(sequence, payload) of every committed output message now in each output topic.

    Each partition is read to its end offset, which under ``read_committed`` is its last
    stable offset: what a transaction still undecided holds back is not waited for (the
    caller reads again), and no partition is skipped because a fetch came back empty for
    a while (a reader that stopped after a few quiet polls once missed a whole topic
    after a broker restart). ``deadline_s`` bounds a read that cannot reach an end."""
    topics = Topics(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        **settings.client_options(),
        isolation_level="read_committed",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    out: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topics.name(s.name), p)
            for s in OUTPUTS
            for p in consumer.partitions_for_topic(topics.name(s.name)) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        stop_at = asyncio.get_running_loop().time() + deadline_s
        while asyncio.get_running_loop().time() < stop_at and [
            tp for tp in tps if await consumer.position(tp) < ends[tp]
        ]:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for tp, messages in batch.items():
                for m in messages:
                    seq = int(dict(m.headers)[SEQ_HEADER])
                    out[topics.base(tp.topic)].append((seq, m.value))
    finally:
        await consumer.stop()
    return out


def produced(settings: Settings) -> Settings:
    """``settings``' topics made, the bundled cascade in them."""

    async def prepare() -> None:
        await ensure_topics(settings, Topics(settings.topic_prefix))
        await produce_file(settings, CASCADE)

    asyncio.run(prepare())
    return settings


def settings_for(kafka: Broker) -> Settings:
    return Settings(
        bootstrap=kafka.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:6]}.",
        partitions=3,
        idle_flush_ms=300,
    )


@pytest.fixture(scope="module")
def replayed() -> tuple[dict[str, list[tuple[int, bytes]]], Engine]:
    return reference()


@pytest.fixture(scope="module")
def expected(replayed) -> dict[str, list[tuple[int, bytes]]]:
    return replayed[0]


def assert_same(got, expected) -> None:
    for topic in COMPARED:
        assert sorted(got[topic]) == sorted(expected[topic]), topic
    assert len(got["dead_letters"]) == 3


def test_worker_matches_the_engine_over_the_file(kafka: Broker, expected, replayed) -> None:
    settings = settings_for(kafka)

    async def scenario() -> dict[str, list[tuple[int, bytes]]]:
        await ensure_topics(settings, Topics(settings.topic_prefix))
        await produce_file(settings, CASCADE)
        stats = await Worker(settings, INSTRUMENTS).run(stop_when_idle=True)
        assert stats.dead_letters == 3
        return await read_outputs(settings)

    got = asyncio.run(scenario())
    assert_same(got, expected)
    # every message on every output topic matches the topic's schema
    for spec in OUTPUTS:
        check = schema_validator(spec.schema)
        for _, value in got[spec.name]:
            check.validate(orjson.loads(value))
    # the last account_risk message per account agrees with the replay's final accounts
    last: dict[str, dict] = {}
    for _, value in sorted(got["account_risk"]):
        row = orjson.loads(value)
        last[row["account"]] = row
    final = {row["account"]: row for row in wire.final_accounts(replayed[1])}
    assert last.keys() == final.keys()
    for acct, row in final.items():
        stream_row = last[acct]
        assert stream_row["wallet_balance"] == row["wallet_balance"]
        assert stream_row["state"] == row["state"], acct
        stable = ("symbol", "side", "qty", "entry_price")
        assert [{k: p[k] for k in stable} for p in stream_row["positions"]] == [
            {k: p[k] for k in stable} for p in row["positions"]
        ]
    letters = [orjson.loads(v) for _, v in got["dead_letters"]]
    assert {d["field"] for d in letters} == {"qty", "mark_price", "symbol"}
    assert all({"topic", "partition", "offset", "error"} <= d.keys() for d in letters)


async def committed_seq(settings: Settings) -> int:
    from streams.pipeline.worker import read_progress

    return (await read_progress(settings, Topics(settings.topic_prefix))).seq


def worker_process(
    settings: Settings,
    merge_logs: bool,
    log: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """The worker with many small transactions (a kill lands mid-stream); its output
    piped, or appended to ``log`` (stdout and stderr) when given."""
    env = {
        **os.environ,
        "ADL_BOOTSTRAP": settings.bootstrap,
        "ADL_TOPIC_PREFIX": settings.topic_prefix,
        "ADL_PARTITIONS": str(settings.partitions),
        "ADL_IDLE_FLUSH_MS": str(settings.idle_flush_ms),
        # many small transactions, also within a release: a kill lands mid-stream
        "ADL_MAX_POLL_RECORDS": "100",
        "ADL_MAX_OUTPUTS_PER_TRANSACTION": "200",
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "streams.cli", "worker", "--exit-when-idle"]
    if log is not None:
        with log.open("ab") as out:
            return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    return subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_logs else subprocess.PIPE,
    )


def test_a_backlog_is_written_in_bounded_transactions(
    kafka: Broker, expected, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole cascade waiting when the worker starts is released at once; its outputs
    go out in transactions of about ``max_outputs_per_transaction`` (plus one event's), not
    in one (held in memory, a real crash's took the worker past 22 GB), and are the
    same."""
    caplog.set_level(logging.INFO, logger="adl_monitor.worker")
    settings = produced(dataclasses.replace(settings_for(kafka), max_outputs_per_transaction=300))
    asyncio.run(Worker(settings, INSTRUMENTS).run(stop_when_idle=True))
    sizes = [int(n) for n in re.findall(r"committed (\d+) outputs", caplog.text)]
    per_event: dict[int, int] = defaultdict(int)
    for topic in expected.values():
        for seq, _ in topic:
            per_event[seq] += 1
    total = sum(per_event.values())
    assert len(sizes) > total // (300 + max(per_event.values()))
    assert max(sizes) < 300 + max(per_event.values()), (max(sizes), max(per_event.values()))
    assert_same(asyncio.run(read_outputs(settings)), expected)


def test_a_backlog_holds_a_bounded_number_of_events_for_the_watermark(
    kafka: Broker, expected
) -> None:
    """In a backlog the sparse inputs were read to their end while the dense one held
    the watermark back: every decoded event waited in the worker (a restart over 10M
    events: ~2.9 GB). With ``max_buffered_events`` the inputs ahead of the watermark
    are paused while more than that wait. The whole cascade waiting at the start, read
    50 records a batch. What may wait beyond the cap, by design: a batch from each
    input partition before the watermark is known (each must deliver once), and the
    events within the allowed lateness of the watermark (not paused: they may hold it;
    counted in the file). Without a cap more than that waits at some point (3,447 and
    11,247 of the 14,689 in two runs); with a cap of 150 no more than that, inputs are
    paused, and the outputs are the same."""
    batch, cap = 50, 150
    free = produced(dataclasses.replace(settings_for(kafka), max_poll_records=batch))
    unbounded = asyncio.run(Worker(free, INSTRUMENTS).run(stop_when_idle=True))
    capped = produced(
        dataclasses.replace(settings_for(kafka), max_poll_records=batch, max_buffered_events=cap)
    )
    bounded = asyncio.run(Worker(capped, INSTRUMENTS).run(stop_when_idle=True))
    events = [orjson.loads(line) for line in CASCADE.read_bytes().splitlines() if line.strip()]
    times = sorted(e["ts"] for e in events if isinstance(e.get("ts"), int))
    lateness = capped.allowed_lateness_ms
    in_a_window = max(bisect.bisect_right(times, t + lateness) - i for i, t in enumerate(times))
    input_partitions = 3 * capped.partitions + 3  # fills, balances, position_config; 3 clocks
    allowed = cap + input_partitions * batch + in_a_window
    assert bounded.held_ahead >= 1
    assert bounded.buffered_peak <= allowed < unbounded.buffered_peak, (bounded, unbounded, allowed)
    assert bounded.late_events == unbounded.late_events == 0
    assert_same(asyncio.run(read_outputs(capped)), expected)


def test_sigkill_mid_stream_loses_and_repeats_nothing(kafka: Broker, expected) -> None:
    settings = produced(settings_for(kafka))
    first = worker_process(settings, merge_logs=True)
    seq = 0
    assert first.stdout is not None
    for line in first.stdout:  # the worker logs each committed transaction
        match = re.search(rb"through input sequence (\d+)", line)
        if match and int(match.group(1)) >= 2000:  # well into the stream
            seq = int(match.group(1))
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 2000 <= seq < len(CASCADE.read_bytes().splitlines()) - 4
    assert asyncio.run(committed_seq(settings)) >= seq
    second = worker_process(settings, merge_logs=False)
    out, logs = second.communicate(timeout=300)
    assert second.returncode == 0, logs.decode()[-2000:]
    stats = json.loads(out)
    assert stats["skipped_outputs"] > 0  # recomputed, not written twice
    got = asyncio.run(read_outputs(settings))
    assert_same(got, expected)


def test_engine_rejections_are_dead_lettered_with_their_source(kafka: Broker, tmp_path) -> None:
    settings = settings_for(kafka)
    events = tmp_path / "events.jsonl"
    lines = [
        {"type": "balance", "event_id": "d", "ts": 1, "account": "a", "amount": "100",
         "reason": "deposit"},
        {"type": "fill", "fill_id": "f", "ts": 2, "account": "a", "symbol": "BTCUSDT",
         "side": "buy", "qty": "0.001", "price": "60000"},
        # valid alone, impossible here: the cross position is open
        {"type": "position_config", "ts": 3, "account": "a", "symbol": "BTCUSDT",
         "margin_mode": "isolated", "leverage": "5"},
        {"type": "insurance_fund", "ts": 4, "fund": "nope", "balance": "1"},
    ]  # fmt: skip
    events.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")

    async def scenario() -> dict[str, list[tuple[int, bytes]]]:
        await ensure_topics(settings, Topics(settings.topic_prefix))
        await produce_file(settings, events)
        await Worker(settings, INSTRUMENTS).run(stop_when_idle=True)
        return await read_outputs(settings)

    letters = [orjson.loads(v) for _, v in asyncio.run(scenario())["dead_letters"]]
    assert sorted((d["topic"], d["field"]) for d in letters) == [
        ("insurance_fund", "fund"),
        ("position_config", "margin_mode"),
    ]
    assert all(d["offset"] >= 0 for d in letters)
    assert "flat" in next(d["error"] for d in letters if d["topic"] == "position_config")


@pytest.mark.parametrize(("hours", "retention_ms"), [(0, "-1"), (48, str(48 * 3_600_000))])
def test_inputs_keep_their_history_as_long_as_told(
    kafka: Broker, hours: int, retention_ms: str
) -> None:
    """Forever by default (a start without snapshots replays it all), else as set."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    settings = dataclasses.replace(settings_for(kafka), input_retention_hours=hours)
    topics = Topics(settings.topic_prefix)

    async def configs() -> dict[str, str]:
        await ensure_topics(settings, topics)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topics.name("fills"))]
            )
        finally:
            await admin.close()
        [resource] = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}

    found = asyncio.run(configs())
    for _ in range(20):  # a topic just made may not be described yet
        if "retention.ms" in found:
            break
        time.sleep(0.5)
        found = asyncio.run(configs())
    assert found["retention.ms"] == retention_ms
    assert found["retention.bytes"] == "-1"


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "in-loop"])
def test_a_start_needs_only_the_input_after_its_snapshot(
    kafka: Broker, expected, fork: str
) -> None:
    """The inputs' first records deleted (retention, or by hand): without a snapshot the
    worker refuses to start, in one line (its state would silently miss them); with one
    taken after them, it starts from it and its outputs are replay's. Snapshots made by
    a forked child (the default) or in the loop."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.records_to_delete import RecordsToDelete

    settings = produced(settings_for(kafka))
    keyed = {"ADL_SNAPSHOT_KEY": "the key", "ADL_SNAPSHOT_INTERVAL_S": "0"}
    keyed["ADL_SNAPSHOT_FORK"] = fork
    done = worker_process(settings, merge_logs=True, extra_env=keyed)
    log, _ = done.communicate(timeout=300)
    assert done.returncode == 0, log[-3000:]
    assert b"snapshot at input sequence" in log
    assert_same(asyncio.run(read_outputs(settings)), expected)
    topics = Topics(settings.topic_prefix)

    async def delete_history() -> None:  # every input's records but its last
        consumer = AIOKafkaConsumer(**settings.client_options())
        admin = AIOKafkaAdminClient(**settings.client_options())
        await consumer.start()
        await admin.start()
        try:
            tps = await input_partitions(settings, topics)
            ends = await consumer.end_offsets(tps)
            await admin.delete_records(
                {tp: RecordsToDelete(end - 1) for tp, end in ends.items() if end > 1}
            )
        finally:
            await consumer.stop()
            await admin.close()

    asyncio.run(delete_history())
    refused = worker_process(settings, merge_logs=False)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2, err[-3000:]
    assert b"its history was deleted" in err.strip().splitlines()[-1], err[-3000:]
    again = worker_process(settings, merge_logs=True, extra_env=keyed)
    log, _ = again.communicate(timeout=300)
    assert again.returncode == 0, log[-3000:]
    assert b"started from the snapshot at input sequence" in log
    stats = orjson.loads(log[log.rindex(b"\n{") :])
    assert (stats["applied"], stats["outputs"]) == (0, 0)  # nothing after the snapshot
    assert_same(asyncio.run(read_outputs(settings)), expected)


def test_poison_in_the_history_survives_three_restarts(kafka: Broker, expected, tmp_path) -> None:
    # the worker rebuilds from the whole input history at every start: one message that
    # crashes it stops the monitor for good. Hostile lines (those the broker takes: up to
    # its 1 MB message limit) mixed into the cascade; a message limit of 500 KB here.
    settings = dataclasses.replace(settings_for(kafka), max_message_bytes=500_000)
    poison = [(b, field) for b, field in hostile_lines() if len(b) < 900_000]
    poison.append((b'{"type":"mark","pad":"' + b"x" * 600_000 + b'"}', "$size"))
    lines = CASCADE.read_bytes().splitlines()
    for n, (b, _) in enumerate(poison):
        lines.insert(1000 + 500 * n, b)
    events = tmp_path / "poisoned.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")

    async def scenario() -> dict[str, list[tuple[int, bytes]]]:
        await ensure_topics(settings, Topics(settings.topic_prefix))
        await produce_file(settings, events)
        for _ in range(4):  # the first life and three restarts, each over the whole history
            await Worker(settings, INSTRUMENTS).run(stop_when_idle=True)
        return await read_outputs(settings)

    got = asyncio.run(scenario())
    for topic in COMPARED:  # the poison changed nothing and no restart repeated anything
        assert sorted(got[topic]) == sorted(expected[topic]), topic
    letters = [orjson.loads(v) for _, v in got["dead_letters"]]
    assert len(letters) == 3 + len(poison)  # each once, whatever the restarts
    assert sorted(d["field"] for d in letters) == sorted(
        ["qty", "mark_price", "symbol"] + [field for _, field in poison]
    )
    assert max(len(v) for _, v in got["dead_letters"]) < 2_000


def test_topics_that_break_the_order_are_refused_at_start(kafka: Broker) -> None:
    """An existing cluster's topics are used as they are: a mark topic with 3 partitions
    (its order across symbols is the clock) or fills and balances partitioned apart stop
    the worker and the agents with one line, exit 2."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def make(settings: Settings, name: str, partitions: int) -> None:
        admin = AIOKafkaAdminClient(**settings.client_options())
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()

    for topic, partitions, said in (
        ("mark_prices", 3, "has 3 partitions; adl-monitor needs 1"),
        ("balances", 5, "the account-keyed inputs must have equal partition counts"),
    ):
        settings = settings_for(kafka)  # 3 partitions for the topics it makes
        asyncio.run(make(settings, f"{settings.topic_prefix}{topic}", partitions))
        env = {**os.environ, "ADL_BOOTSTRAP": kafka.bootstrap,
               "ADL_TOPIC_PREFIX": settings.topic_prefix, "ADL_PARTITIONS": "3"}  # fmt: skip
        for command in (["worker", "--exit-when-idle"], ["account-agents"]):
            done = subprocess.run(
                [sys.executable, "-m", "streams.cli", *command],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 2, (command, done.stderr[-2000:])
            assert said in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]
