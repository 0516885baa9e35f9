"""Two ``account-agents`` processes on a real Kafka while the exchange is still writing:
one of them SIGKILLed mid-stream and started again (faust-streaming drops events it
fetched before a rebalance and acknowledges them: #216, #221/#223). Every valid mark
must still reach every account partition, and the desk must announce what replay finds.

Each role is killed in its own test: the process that forwards the marks (the fan-out's
owner) and the other one (only account partitions, perhaps the desk). The survivor takes
the dead one's partitions over from its warm copies before the dead one comes back."""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.agents.app import TICK
from streams.agents.shard import CLOCK_TOPIC
from streams.agents.warm import STANDBY_BUFFER_ROWS
from streams.brokers import Broker
from streams.brokers.base import free_port
from streams.pipeline.producer import produce_file
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from tests.helpers import (
    assert_rank_alerts_follow,
    assert_stages_follow,
    rank_alerts_matched,
    unmatched_alerts,
)
from tests.integration.test_account_agents import (
    CASCADE,
    SUMMARY_INTERVAL_MS,
    Outputs,
    agents_process,
    canonical,
    expected,  # noqa: F401  (the fixture: replay's outputs)
    prepared,
    read_until,
    scrape,
    stop_all,
)

RATE_PER_S = 500  # the cascade's ~14,700 events take ~29 s: the kill lands mid-stream
KILL_AFTER_S = 12.0
FANNED_OUT = "adl_agent_marks_fanned_out_total"
HOLDS = "adl_agent_holds"  # {role}: 1 where the role runs now
RESUMED = "adl_agent_partitions_resumed_total"  # {how}: restored | taken_up | warm
STANDBY_LAG = "adl_agent_standby_lag_rows"  # {table, partition}: changelog rows not read yet


async def read_topic(settings: Settings, topic: str) -> dict[int, list[tuple[int, bytes]]]:
    """Every message of ``topic`` now in it: partition -> [(offset, value)]."""
    consumer = AIOKafkaConsumer(
        **settings.client_options(), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:  # metadata not fetched yet for this topic
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[tuple[int, bytes]]] = {tp.partition: [] for tp in tps}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                out[tp.partition] += [(m.offset, m.value) for m in messages]
        return out
    finally:
        await consumer.stop()


Partitions = dict[int, list[tuple[int, bytes]]]


def read_outcome(
    settings: Settings, done: Any, logs: Path, timeout_s: float
) -> tuple[Outputs, int, Partitions, Partitions]:
    """The outputs once ``done(outputs)`` (deduplicated, with how many copies were
    dropped; the processes' log tails in the error if they never are), then the marks
    topic and the account partitions' clock topic as they are."""
    try:
        got, duplicates = asyncio.run(read_until(settings, done, settle_s=5.0, timeout_s=timeout_s))
    except AssertionError as stalled:  # say where each process stood
        tails = log_tails(sorted(logs.glob("*.log")))
        raise AssertionError(f"{stalled}\n{tails}") from None
    topics = Topics(settings.topic_prefix)
    marks = asyncio.run(read_topic(settings, topics.name("mark_prices")))
    clock = asyncio.run(read_topic(settings, topics.name(CLOCK_TOPIC)))
    return got, duplicates, marks, clock


def alarm_counts(outputs: Mapping[str, list[dict[str, Any]]]) -> tuple[int, int, int]:
    """(liquidations, bankruptcies, ``triggered`` announcements) among ``outputs``."""
    triggered = sum(t["stage"] == "triggered" for t in outputs["adl_triggers"])
    return len(outputs["liquidations"]), len(outputs["bankruptcies"]), triggered


def assert_every_mark_forwarded(got: Outputs, marks: Partitions, clock: Partitions) -> None:
    """Every valid mark (not dead-lettered) reached every account partition."""
    letters = {d["offset"] for d in got["dead_letters"] if d["topic"] == "mark_prices"}
    valid = {value for offset, value in marks[0] if offset not in letters}
    assert len(valid) > 10_000
    for partition, messages in clock.items():
        missing = valid - {value for _, value in messages if value != TICK}
        assert not missing, f"{len(missing)} marks never reached account partition {partition}"


def log_tails(logs: list[Path], lines: int = 12) -> str:
    """The last status lines, warnings and errors of each process's log."""
    keep = ("partition ", "fund desk", "mark fan-out", "WARNING", "ERROR", "Traceback", "Error")
    out = []
    for log in logs:
        text = log.read_text(errors="replace").splitlines()
        tail = [line[:400] for line in text if any(k in line for k in keep)][-lines:]
        out.append(f"== {log.name} ({len(text)} lines)\n" + "\n".join(tail))
    return "\n".join(out)


def fan_out_owner(ports: list[int]) -> int | None:
    """Index of the process forwarding marks (its metrics say it holds them), if one does
    yet, and it has forwarded some (the exchange is writing)."""
    for i, port in enumerate(ports):
        metrics = scrape(port)
        if metrics.get((HOLDS, (("role", "mark_fan_out"),))) == 1.0 and metrics.get(
            (FANNED_OUT, ()), 0.0
        ):
            return i
    return None


def standby_lags(ports: list[int]) -> list[dict[tuple[str, int], float]]:
    """Per process, the changelog rows each of its standbys (table, partition) has not
    read yet."""
    return [
        {(dict(labels)["table"], int(dict(labels)["partition"])): rows
         for (name, labels), rows in scrape(port).items() if name == STANDBY_LAG}
        for port in ports
    ]  # fmt: skip


@pytest.mark.parametrize("victim", ["fan-out owner", "other process"])
def test_no_mark_lost_when_a_process_dies_mid_stream(
    kafka: Broker,
    expected: dict[str, list[dict[str, Any]]],  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    victim: str,
) -> None:
    settings = prepared(kafka, produce=False)
    ports = [free_port(), free_port()]
    procs = [agents_process(settings, tmp_path / f"agents-{i}.log", ports[i]) for i in range(2)]
    time.sleep(8)  # both in the group before the exchange starts writing
    # (after a kill the desk works through a backlog: ~1-2 minutes on this machine)
    producer = threading.Thread(
        target=lambda: asyncio.run(produce_file(settings, CASCADE, rate_per_s=RATE_PER_S))
    )
    began = time.monotonic()
    producer.start()
    want = alarm_counts(expected)

    def done(out: Outputs) -> bool:
        return alarm_counts(out) == want

    try:
        while time.monotonic() - began < KILL_AFTER_S or fan_out_owner(ports) is None:
            assert time.monotonic() - began < 60, "no process forwards marks"
            time.sleep(0.5)
        owner = fan_out_owner(ports)
        assert owner is not None
        killed = owner if victim == "fan-out owner" else 1 - owner
        desk = [scrape(port).get((HOLDS, (("role", "fund_desk"),))) == 1.0 for port in ports]
        print(f"killed process {killed} (fan-out: {owner}, desk: {desk})")
        procs[killed].send_signal(signal.SIGKILL)
        procs[killed].wait()
        # the survivor read the dead one's partitions as a standby: it takes them over
        # from its warm copies (``agents.warm``), not from a restore of every row
        killed_at = time.monotonic()
        while scrape(ports[1 - killed]).get((RESUMED, (("how", "warm"),)), 0.0) == 0.0:
            assert time.monotonic() - killed_at < 45, "no partition taken over from a warm copy"
            time.sleep(0.5)
        print(f"first partition taken over from a warm copy {time.monotonic() - killed_at:.1f} s "
              f"after the kill")  # fmt: skip
        again = tmp_path / f"agents-{killed}-again.log"
        procs[killed] = agents_process(settings, again, ports[killed])
        producer.join()
        got, _, marks, clock = read_outcome(settings, done, tmp_path, timeout_s=420.0)
        # the exchange is done: each process reports the lag of the standbys it holds
        # (changelog rows not applied yet; NaN: the changelog's end not known yet). Not
        # waited down to a bound: an idle standby stayed 421 rows behind in one run
        # (open, issue 15's note); Faust applies a standby's rows in batches of
        # ``STANDBY_BUFFER_ROWS``, so up to 99 wait at idle even when it reads on
        lags = standby_lags(ports)
        while not all(lags):
            assert time.monotonic() - began < 540, f"a process reports no standby: {lags}"
            time.sleep(1.0)
            lags = standby_lags(ports)
        rows = [r for lag in lags for r in lag.values()]
        assert all(math.isnan(r) or r >= 0 for r in rows), lags
        lagging = [r for r in rows if r >= STANDBY_BUFFER_ROWS]
        print(f"standby lags when idle: {lags} ({len(lagging)} beyond a batch)")
    finally:
        stop_all(procs)
    assert_every_mark_forwarded(got, marks, clock)
    assert canonical(got["liquidations"]) == canonical(expected["liquidations"])
    assert canonical(got["bankruptcies"]) == canonical(expected["bankruptcies"])
    assert_stages_follow(expected["adl_triggers"], got["adl_triggers"], SUMMARY_INTERVAL_MS, True)
    # the lights of the rankings the dead process had summarised come from the
    # partitions' new owner (``agents.ranking_rows``)
    want_alerts, got_alerts = expected["rank_alerts"], got["rank_alerts"]
    print(f"rank alerts: replay {len(want_alerts)}, agents {len(got_alerts)}, identical "
          f"{rank_alerts_matched(want_alerts, got_alerts)}\n"
          f"{unmatched_alerts(want_alerts, got_alerts)}")  # fmt: skip
    assert_rank_alerts_follow(want_alerts, got_alerts)
