"""Three ``account-agents`` processes on a real Kafka while the exchange is still writing;
each role SIGKILLed twice, in a seeded random order at seeded random moments: the process
forwarding the marks (the fan-out), the one running the fund desk, and one holding only
account partitions. Each is started again a few seconds later and rejoins the group.

After dedupe by ``adl-source``/``adl-index`` the outputs must be replay's (every
liquidation and bankruptcy, the stage announcements within the documented window, every
account's final state) and every valid mark must have reached every account partition.
The one-kill tests (``test_agents_failover.py``) kill one role once; the ten-kill soak
(``test_agents_kills.py``) one process, alone in its group.

A long fault run (six kills, three processes on two cores): not in ``make test``'s
budget: ``pytest -m soak tests/integration/test_agents_roles.py`` (~4.5 min). It failed
in about half its runs until a partition never committed was delivered from offset 0
(``agents.acks``, hole 6): outputs short of fills a shard had buffered at a rebalance.
Since, 10 of 10 passed (seeds 15-18; docs/reliability.md)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from streams.brokers import Broker
from streams.brokers.base import free_port
from streams.pipeline.producer import produce_file
from tests.integration.test_account_agents import (
    CASCADE,
    Outputs,
    agents_process,
    assert_same_as_replay,
    expected,  # noqa: F401  (the fixture: replay's outputs)
    prepared,
    scrape,
    stop_all,
)
from tests.integration.test_agents_failover import (
    HOLDS,
    alarm_counts,
    assert_every_mark_forwarded,
    read_outcome,
)

PROCESSES = 3
ROLES = ("mark_fan_out", "fund_desk", "account partitions only")
KILLS_PER_ROLE = 2
RATE_PER_S = 60  # the cascade's ~14,700 events take ~4 minutes: every kill lands mid-stream
# seconds between a process's restart and the next kill: a group that hardly settles
# (each kill and each rejoin is a rebalance; a dead process's partitions move after the
# 10 s session timeout)
KILL_GAP_S = (4.0, 12.0)
# the kills' order and moments; another seed for another run: ADL_SOAK_SEED=N
SEED = int(os.environ.get("ADL_SOAK_SEED", "15"))


def holders(ports: list[int]) -> dict[str, list[int]]:
    """Which processes hold each role now, by their metrics (a process not serving them
    yet holds none)."""
    held: dict[str, list[int]] = {role: [] for role in ROLES}
    for i, port in enumerate(ports):
        metrics = scrape(port)
        if not metrics:
            continue
        roles = [r for r in ROLES[:2] if metrics.get((HOLDS, (("role", r),))) == 1.0]
        for role in roles or [ROLES[2]]:
            held[role].append(i)
    return held


def holder_of(role: str, ports: list[int], rng: random.Random, timeout_s: float = 90.0) -> int:
    """A process holding ``role`` once the fan-out and the desk each run in exactly one
    process (not mid-rebalance); among several holding account partitions only, any."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = holders(ports)
        if held[role] and all(len(held[r]) == 1 for r in ROLES[:2]):
            return rng.choice(held[role])
        time.sleep(0.5)
    raise AssertionError(f"no holder of {role} after {timeout_s} s: {holders(ports)}")


@pytest.mark.soak
def test_every_role_killed_twice_with_rejoins(
    kafka: Broker,
    expected: dict[str, list[dict[str, Any]]],  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    settings = prepared(kafka, produce=False)
    ports = [free_port() for _ in range(PROCESSES)]
    procs = [
        agents_process(settings, tmp_path / f"agents-{i}.log", ports[i]) for i in range(PROCESSES)
    ]
    time.sleep(10)  # every process in the group before the exchange starts writing
    producer = threading.Thread(
        target=lambda: asyncio.run(produce_file(settings, CASCADE, rate_per_s=RATE_PER_S))
    )
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    order = [role for role in ROLES for _ in range(KILLS_PER_ROLE)]
    rng.shuffle(order)
    want = alarm_counts(expected)

    def done(out: Outputs) -> bool:
        if alarm_counts(out) != want:
            return False
        return all(scrape(p).get(("adl_agent_caught_up", ())) == 1.0 for p in ports)

    kills = []
    began = time.monotonic()
    producer.start()
    try:
        for life, role in enumerate(order):
            time.sleep(rng.uniform(*KILL_GAP_S))
            victim = holder_of(role, ports, rng)
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            kills.append((round(time.monotonic() - began, 1), role, victim))
            assert producer.is_alive(), f"the exchange stopped writing before kill {kills}"
            time.sleep(rng.uniform(0.5, 4.0))
            again = tmp_path / f"agents-{victim}-life-{life + 1}.log"
            procs[victim] = agents_process(settings, again, ports[victim])
        print(f"killed (seconds into the run, role, process): {kills}")
        producer.join()
        got, duplicates, marks, clock = read_outcome(settings, done, tmp_path, timeout_s=600.0)
    finally:
        stop_all(procs)
    print(f"duplicates dropped after dedupe: {duplicates}")
    assert sorted(role for _, role, _ in kills) == sorted(order)
    assert_every_mark_forwarded(got, marks, clock)
    # rank alerts: 8,540 of replay's 8,552 identical in two runs of 2026-12-05 (seeds 15
    # and 16, as without a kill), 8,423 (98.5%) in a third (seed 15, other victims; not
    # explained: no ranking went unlit); before the rankings were kept, 35-45%
    assert_same_as_replay(got, expected, restarted=True, rank_share=0.98)
