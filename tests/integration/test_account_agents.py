"""The Faust agents on a real Kafka: the bundled cascade in; out, per account, what
``replay`` finds over the whole file (stage A), and the fund desk's stages and plans
following replay's (stage B); after a SIGKILL and a restart from the changelog, nothing
lost and nothing applied twice."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from streams.agents.app import INDEX_HEADER, INTERNAL
from streams.agents.changelog import changelog_rows
from streams.agents.fanout import PREV_HEADER, SOURCE_HEADER
from streams.agents.shard import CLOCK_TOPIC
from streams.brokers import Broker
from streams.brokers.base import free_port
from streams.cli import bundled
from streams.engine.instruments import load_instruments
from streams.pipeline.producer import produce_file
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import ensure_topics
from streams.replay.runner import replay
from tests.helpers import assert_rank_alerts_follow, assert_stages_follow, rank_alerts_matched

CASCADE = Path(bundled("cascade.jsonl"))
STREAMS = {"liquidations": "liquidations", "bankruptcies": "bankruptcies",
           "account_risk": "accounts", "dead_letters": "dead_letters",
           "adl_triggers": "adl_triggers", "insurance_projection": "fund_projection",
           "rank_alerts": "rank_alerts"}  # fmt: skip
SUMMARY_INTERVAL_MS = 100  # the command's default
Outputs = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("replay")
    replay(CASCADE, load_instruments(bundled("instruments.toml")), out, progress=False)
    return {
        name: [orjson.loads(line) for line in (out / f"{name}.jsonl").read_bytes().splitlines()]
        for name in STREAMS.values()
    }


def prepared(kafka: Broker, produce: bool = True, **overrides: Any) -> Settings:
    """Fresh topics (a prefix per test), the bundled cascade in them unless not
    ``produce``; ``overrides``: other settings."""
    settings = Settings(
        bootstrap=kafka.bootstrap, topic_prefix=f"a{uuid.uuid4().hex[:6]}.", partitions=3,
        **overrides,
    )  # fmt: skip

    async def prepare() -> None:
        await ensure_topics(settings, Topics(settings.topic_prefix), INTERNAL)
        if produce:
            await produce_file(settings, CASCADE)

    asyncio.run(prepare())
    return settings


async def compacted_rows(settings: Settings, within_s: float = 90.0) -> int:
    """Changelog rows the broker's cleaner removed, once it has removed some (it looks
    every 15 s; 0 if none within ``within_s``)."""
    deadline = time.monotonic() + within_s
    while True:
        written, held = await changelog_rows(settings)
        if held < written or time.monotonic() > deadline:
            return written - held
        await asyncio.sleep(3)


def agents_process(settings: Settings, log: Path, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ADL_BOOTSTRAP": settings.bootstrap,
        "ADL_TOPIC_PREFIX": settings.topic_prefix,
        "ADL_PARTITIONS": str(settings.partitions),
        "ADL_CHANGELOG_SEGMENT_MS": str(settings.changelog_segment_ms),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "account-agents",
            "--loglevel",
            "info",
            "--metrics-port",
            str(metrics_port),
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process, then wait for each (killed after 60 s)."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def read_until(
    settings: Settings, done: Any, settle_s: float = 3.0, timeout_s: float = 240.0
) -> tuple[Outputs, int]:
    """Output messages (deduplicated on their source and index) once ``done(outputs)``
    holds and nothing more arrives for ``settle_s``; and how many duplicates were dropped."""
    topics = Topics(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        *[topics.name(t) for t in STREAMS],
        **settings.client_options(),
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    out: Outputs = defaultdict(list)
    seen: set[tuple[str, bytes, bytes]] = set()
    duplicates = 0
    deadline = time.monotonic() + timeout_s
    try:
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for tp, messages in batch.items():
                for m in messages:
                    headers = dict(m.headers)
                    identity = (tp.topic, headers[SOURCE_HEADER], headers[INDEX_HEADER])
                    if identity in seen:
                        duplicates += 1
                        continue
                    seen.add(identity)
                    out[topics.base(tp.topic)].append(orjson.loads(m.value))
            if batch:
                quiet_since = time.monotonic()
            # quiet first: ``done`` may scrape and parse /metrics, several times a second
            # while outputs flow, on the cores the agents need
            if time.monotonic() - quiet_since >= settle_s and done(out):
                return out, duplicates
    finally:
        await consumer.stop()
    raise AssertionError(
        f"outputs incomplete after {timeout_s} s: { {k: len(v) for k, v in out.items()} }"
    )


def canonical(rows: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in rows)


def held(account: dict[str, Any]) -> tuple[Any, ...]:
    """What an account's last evaluation shares with replay's evaluation at the final
    marks: balances, positions and health (not mark-dependent figures: an account
    whose thresholds no mark crossed is not re-evaluated; not ranks: lit later)."""
    positions = tuple(
        (p["symbol"], p["side"], p["margin_mode"], p["qty"], p["entry_price"], p["state"])
        for p in account["positions"]
    )
    return account["account"], account["wallet_balance"], account["state"], positions


def assert_same_as_replay(
    got: Outputs,
    expected: dict[str, list[dict[str, Any]]],
    restarted: bool = False,
    rank_share: float = 0.99,
) -> None:
    want = expected["adl_triggers"]
    assert_stages_follow(want, got["adl_triggers"], SUMMARY_INTERVAL_MS, restarted)
    assert got["insurance_projection"], "the desk projects the fund"
    assert canonical(got["liquidations"]) == canonical(expected["liquidations"])
    assert canonical(got["bankruptcies"]) == canonical(expected["bankruptcies"])
    last = {row["account"]: row for row in got["account_risk"]}  # one partition per account
    assert sorted(map(held, last.values())) == sorted(map(held, expected["accounts"]))
    want_alerts, got_alerts = expected["rank_alerts"], got["rank_alerts"]
    print(f"rank alerts: replay {len(want_alerts)}, agents {len(got_alerts)}, identical "
          f"{rank_alerts_matched(want_alerts, got_alerts)}")  # fmt: skip
    # after a restart too: the rankings waiting for the desk's lights come back with
    # their partition (``agents.ranking_rows``; before 2026-12-05 they died with the
    # process and only the last 100 alerts were held to replay's)
    assert_rank_alerts_follow(want_alerts, got_alerts, rank_share)
    # the light of a position's last lit ranking when its account was last evaluated:
    # none if that came before the desk's boundaries (the desk lags a backlog)
    quantiles = [p["quantile"] for row in last.values() for p in row["positions"]]
    assert all(q is None or q in range(1, 6) for q in quantiles)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:  # not serving yet
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def complete(expected: dict[str, list[dict[str, Any]]], port: int) -> Any:
    """The worker says it applied every input, and the outputs are all there."""
    want = len(expected["liquidations"]), len(expected["bankruptcies"])

    def done(out: Outputs) -> bool:
        if (len(out["liquidations"]), len(out["bankruptcies"])) != want:
            return False
        return scrape(port).get(("adl_agent_caught_up", ())) == 1.0

    return done


def forge_a_lost_mark(settings: Settings, port: int) -> dict[str, float]:
    """Write to account partition 0 a mark whose forwarded predecessor (by its headers)
    is far past anything the fan-out forwarded, as if the marks between were lost on the
    way; the partitions' gap counters once the agents counted it."""
    topics = Topics(settings.topic_prefix)
    mark = b'{"type":"mark","ts":1760130900000,"symbol":"BTCUSDT","mark_price":"100000"}'
    headers = [(SOURCE_HEADER, b"mark_prices:0:1000001"), (PREV_HEADER, b"1000000")]

    async def send() -> None:
        producer = AIOKafkaProducer(**settings.client_options())
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.name(CLOCK_TOPIC), mark, partition=0, headers=headers
            )
        finally:
            await producer.stop()

    def gaps() -> dict[str, float]:
        return {
            dict(labels)["partition"]: v
            for (name, labels), v in scrape(port).items()
            if name == "adl_agent_mark_gaps_total"
        }

    asyncio.run(send())
    deadline = time.monotonic() + 60
    while gaps().get("0", 0.0) == 0.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return gaps()


def test_account_agents_give_replays_account_outputs(kafka: Broker, expected, tmp_path) -> None:
    settings = prepared(kafka)
    port = free_port()
    worker = agents_process(settings, tmp_path / "worker.log", port)
    try:
        got, _ = asyncio.run(read_until(settings, complete(expected, port)))
        scraped = scrape(port)
        gaps_after_forgery = forge_a_lost_mark(settings, port)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert_same_as_replay(got, expected)
    # every mark forwarded reached every partition: no break in the chain of marks
    assert [v for (name, _), v in scraped.items() if name == "adl_agent_mark_gaps_total"] == [
        0.0
    ] * settings.partitions
    assert gaps_after_forgery == {"0": 1.0, "1": 0.0, "2": 0.0}
    assert "partition 0: marks lost: mark_prices offsets" in (tmp_path / "worker.log").read_text()
    letters = got["dead_letters"]
    assert sorted(d["field"] for d in letters) == ["mark_price", "qty", "symbol"]
    assert all(d["offset"] >= 0 and d["topic"] in ("fills", "mark_prices") for d in letters)
    # the counter went up with each: a negative qty and a NaN mark, an unknown symbol
    dead = {
        labels[0][1]: v for (name, labels), v in scraped.items() if name == "adl_dead_letters_total"
    }
    assert dead == {"invalid_field": 2, "unknown_symbol": 1, "invalid_json": 0, "too_large": 0,
                    "internal_error": 0, "implausible": 0}  # fmt: skip
    applied = sum(v for (name, _), v in scraped.items() if name == "adl_agent_events_applied_total")
    assert applied > 0
    # the desk's figures, under the single-process worker's names
    triggered = sum(
        v
        for (name, labels), v in scraped.items()
        if name == "adl_triggers_total" and ("stage", "triggered") in labels
    )
    assert triggered == sum(t["stage"] == "triggered" for t in got["adl_triggers"])
    balance = got["insurance_projection"][-1]["fund_balance"]
    assert scraped[("adl_fund_balance_usd", (("fund", "USDT-M"),))] == float(balance)


def test_sigkill_and_restart_from_the_changelog(kafka: Broker, expected, tmp_path) -> None:
    """The second life restores from changelogs the broker has compacted (segments of a
    second, ``ADL_CHANGELOG_SEGMENT_MS``): the rows it reads are each key's last, not
    every row written (restores from compacted changelogs were reported to hang:
    faust-streaming #176)."""
    settings = prepared(kafka, changelog_segment_ms=1_000)
    log = tmp_path / "worker.log"
    first = agents_process(settings, log)

    def started(out: Outputs) -> bool:  # well into the cascade
        return len(out["liquidations"]) >= len(expected["liquidations"]) // 3

    try:
        asyncio.run(read_until(settings, started, settle_s=0))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    compacted = asyncio.run(compacted_rows(settings))
    assert compacted > 0, "the broker compacted none of the changelog rows: nothing tested"
    port = free_port()
    second = agents_process(settings, log, port)
    try:
        got, duplicates = asyncio.run(read_until(settings, complete(expected, port)))
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    assert_same_as_replay(got, expected, restarted=True)
    restored = [int(n) for n in re.findall(r"restored (\d+) accounts", log.read_text())]
    assert max(restored) > 0, "the second life started from the changelog, not from nothing"
    print(f"duplicates dropped by the consumer: {duplicates}")
