"""One face for both paths: two ``account-agents`` processes share the partitions of a
real Kafka; each answers the worker's read API (checked against schemas/openapi.yaml)
for every account, the fund and the queues, forwarding to the owner, with what
``replay`` finds at the end of the same input; their /metrics add up to replay's open
interest."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from streams.agents.web import partition_of
from streams.brokers import Broker, free_port
from streams.pipeline.producer import produce_file
from tests.integration.test_account_agents import (  # noqa: F401  (expected: a fixture)
    CASCADE,
    Outputs,
    agents_process,
    expected,
    prepared,
    read_until,
    scrape,
    stop_all,
)
from tests.integration.test_api import schema_for

ODD = "/accounts/nobody%2Fx%20y"  # an account name with a slash and a space
UNRANKED = ("rank_score", "quantile")  # replay ranks once more at its end; the agents later


async def get_all(port: int, paths: list[str]) -> dict[str, tuple[int, Any]]:
    out = {}
    async with aiohttp.ClientSession() as http:
        for path in paths:
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                out[path] = (response.status, await response.json())
    return out


def without_ranks(account: dict[str, Any]) -> dict[str, Any]:
    positions = [{k: v for k, v in p.items() if k not in UNRANKED} for p in account["positions"]]
    return {**account, "positions": positions}


def partitions_held(port: int) -> set[int]:
    return {
        int(dict(labels)["partition"])
        for (name, labels), _ in scrape(port).items()
        if name == "adl_agent_events_applied_total"
    }


def test_any_process_answers_for_any_account(
    kafka: Broker,
    expected: dict[str, list[dict[str, Any]]],  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    settings = prepared(kafka, produce=False)
    ports = [free_port(), free_port()]
    procs = [agents_process(settings, tmp_path / f"agents-{i}.log", ports[i]) for i in range(2)]
    final = {row["account"]: row for row in expected["accounts"]}
    account_paths = [f"/accounts/{name}" for name in sorted(final)]
    want = (
        len(expected["liquidations"]),
        len(expected["bankruptcies"]),
        sum(t["stage"] == "triggered" for t in expected["adl_triggers"]),
    )

    def done(out: Outputs) -> bool:  # the desk's triggers too: it trails the partitions
        triggered = sum(t["stage"] == "triggered" for t in out["adl_triggers"])
        return (len(out["liquidations"]), len(out["bankruptcies"]), triggered) == want

    try:
        time.sleep(8)  # both in the group: the partitions split between them
        asyncio.run(produce_file(settings, CASCADE))
        asyncio.run(read_until(settings, done, settle_s=3.0, timeout_s=420.0))
        # every account as replay's final state, from both processes (the last marks may
        # still be on their way when the outputs are complete), the desk done
        deadline = time.monotonic() + 300
        while True:
            answers = [asyncio.run(get_all(port, account_paths)) for port in ports]
            # each process caught up with its own share (it read 0 on both before: it
            # assumed one process held every partition)
            caught_up = [scrape(port).get(("adl_agent_caught_up", ())) for port in ports]
            settled = caught_up == [1.0, 1.0] and all(
                answers[i][path][0] == 200
                and without_ranks(answers[i][path][1]) == without_ranks(final[path[10:]])
                for i in range(2)
                for path in account_paths
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(2)
        held = [partitions_held(port) for port in ports]
        queue = "/adl/BTCUSDT/short/queue?limit=1000"
        others = [
            "/health", "/funds/USDT-M", "/funds/nope", "/accounts/nobody", ODD, queue,
            f"{queue}&scope=local", "/adl/ETHUSDT/long/queue?limit=5", "/adl/BTCUSDT/up/queue",
            "/adl/BTCUSDT/plan",
        ]  # fmt: skip
        reads = [asyncio.run(get_all(port, others)) for port in ports]
        metrics = [scrape(port) for port in ports]
    finally:
        stop_all(procs)

    assert caught_up == [1.0, 1.0]
    # the partitions split: each process owns some, so each forwarded the others' accounts
    assert held[0], held
    assert held[1], held
    assert not held[0] & held[1], held
    assert held[0] | held[1] == set(range(settings.partitions))
    owners = {partition_of(name, settings.partitions) for name in final}
    assert owners == set(range(settings.partitions))  # accounts in every partition
    for name in sorted(final):
        path = f"/accounts/{name}"
        bodies = [check(answers[i][path], "/accounts/{account}", 200) for i in range(2)]
        assert bodies[0] == bodies[1], name  # the owner's answer, whoever was asked
        assert without_ranks(bodies[0]) == without_ranks(final[name]), name
    for i in range(2):
        check(reads[i]["/health"], "/health", 200)
        check(reads[i]["/funds/nope"], "/funds/{fund}", 404)
        check(reads[i]["/accounts/nobody"], "/accounts/{account}", 404)
        # percent-encoded: forwarded as asked, answered by the owner (not a route miss)
        assert (
            "unknown account 'nobody/x y'"
            in check(reads[i][ODD], "/accounts/{account}", 404)["error"]
        )
        check(reads[i]["/adl/BTCUSDT/up/queue"], "/adl/{symbol}/{side}/queue", 400)
    # the fund: the desk's process answers for both
    funds = [check(reads[i]["/funds/USDT-M"], "/funds/{fund}", 200) for i in range(2)]
    assert funds[0] == funds[1]
    plans = [check(reads[i]["/adl/BTCUSDT/plan"], "/adl/{symbol}/plan", 200) for i in range(2)]
    assert plans[0] == plans[1]  # the desk's process answers for both
    assert (plans[0]["symbol"], plans[0]["fund"]) == ("BTCUSDT", "USDT-M")
    last = expected["fund_projection"][-1]
    assert (funds[0]["fund"], funds[0]["fund_balance"]) == ("USDT-M", last["fund_balance"])
    assert_queue_merged(
        [reads[i][queue] for i in range(2)],
        [reads[i][f"{queue}&scope=local"] for i in range(2)],
        held,
        final,
    )
    assert_metrics_add_up(metrics, final)


def check(answer: tuple[int, Any], template: str, status: int) -> Any:
    got_status, body = answer
    assert got_status == status, body
    Draft202012Validator(schema_for(template, str(status))).validate(body)
    return body


def assert_queue_merged(
    answers: list[tuple[int, Any]],
    local_answers: list[tuple[int, Any]],
    held: list[set[int]],
    final: dict[str, dict[str, Any]],
) -> None:
    """Every partition's BTC short queue, merged the same by both processes; each
    process's own part holds only accounts of its partitions."""
    queues = [check(answer, "/adl/{symbol}/{side}/queue", 200) for answer in answers]
    assert queues[0] == queues[1]
    entries = queues[0]["queue"]
    assert [e["rank"] for e in entries] == list(range(1, len(entries) + 1))
    order = [(-e["rank_score"], -Decimal(e["qty"]), e["account"]) for e in entries]
    assert order == sorted(order)
    local = [check(a, "/adl/{symbol}/{side}/queue", 200)["queue"] for a in local_answers]
    partitions = len(set().union(*held))
    for i in range(2):
        assert {partition_of(e["account"], partitions) for e in local[i]} <= held[i]
    assert sorted(e["account"] for e in local[0] + local[1]) == sorted(
        e["account"] for e in entries
    )
    # it lists the accounts short BTC in replay's final state
    shorts = {
        name
        for name, row in final.items()
        for p in row["positions"]
        if p["symbol"] == "BTCUSDT" and p["side"] == "short"
    }
    assert {e["account"] for e in entries} >= shorts


def assert_metrics_add_up(
    metrics: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]],
    final: dict[str, dict[str, Any]],
) -> None:
    """Open interest by side, summed over the processes (the dashboards' ``sum by``):
    replay's final positions'; the other families the dashboards read are there."""
    open_interest: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in final.values():
        for p in row["positions"]:
            open_interest[(p["symbol"], p["side"])] += Decimal(p["qty"])
    got: dict[tuple[str, str], float] = defaultdict(float)
    for samples in metrics:
        for (name, labels), value in samples.items():
            if name == "adl_open_interest":
                got[(dict(labels)["symbol"], dict(labels)["side"])] += value
    for key, qty in open_interest.items():
        assert got[key] == pytest.approx(float(qty), rel=1e-9), key
    names = {name for samples in metrics for name, _ in samples}
    for family in ("adl_positions", "adl_liquidatable_positions", "adl_bankrupt_positions",
                   "adl_bankrupt_deficit_usd", "adl_top_candidate_score",
                   "adl_mark_price_age_seconds", "adl_consumer_lag_messages",
                   "adl_event_latency_seconds_count"):  # fmt: skip
        assert family in names, family
    latencies = sum(
        v for s in metrics for (n, _), v in s.items() if n == "adl_event_latency_seconds_count"
    )
    assert latencies > 0
