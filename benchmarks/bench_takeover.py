"""How long the desk goes unserved when an ``account-agents`` process dies: two processes
on a real broker, the exchange writing fills (and a mark every 100 ms of event time),
then one process SIGKILLed. Measured from the kill, on the ``account_risk`` output (one
message per account an input touched, with the input's ``adl-source``), by the time
each message was written (the writer's clock; all processes run here):

- the dead process's partitions: until the first output from each, now written by the
  survivor (the session timeout, the rebalance, the restore from the changelog);
- the survivor's own partitions: when each is back (its first output after the
  survivor is ready again after the rebalance, from its log), and the longest
  silence between two of their outputs (they stop for the rebalance; before issue
  15's take-up they were also rebuilt; until 2026-12-05 they were read again from
  their committed offsets behind the moved partitions' backlog);
- the survivor's CPU, every thread's, as a share of one core over the ``AFTER_KILL_S``
  after the kill (from /proc: Linux): near 100%, it cannot keep up with the input and
  any backlog grows (at 200,000 accounts it did until the summaries' costs were cut,
  2026-12-06).

The baseline is in the same run: the session timeout itself, which nothing can beat
(a process is taken for dead after it). ``--victim fan-out`` kills the process that
forwards the marks (every partition waits for the fan-out's own takeover), ``other``
the one that does not.

``--accounts N`` gives the partitions real state first: N accounts, each with a
deposit and an open position (``opening``; the preset's opening holds 437,723 accounts), applied
before the exchange starts. ``--warm on,off`` runs each case with the survivor's warm
copies (``agents/warm.py``, ``ADL_WARM_COPIES``) and without them (the dead process's
partitions restored from their rows), in the same run: the ratio is what the copies
save. The kill waits until the survivor's standby of each partition it is about to take
has read its account changelog to within ``LAG_AT_KILL_ROWS`` of its end
(``adl_agent_standby_lag_rows{table="accounts"}``; every table's lag at the kill is
printed) and, with copies on, made a copy of it: before that
gauge, the kill came once the copies' account counts stopped growing, and at 200,000
accounts they were ~95% stale (a later row of an account changes no count). Usage:

    python benchmarks/bench_takeover.py [--partitions 4] [--rate 200] [--accounts 64]
        [--session-timeouts 10000,6000] [--heartbeats 3333,1000] [--victim other,fan-out]
        [--warm on]
    python benchmarks/bench_takeover.py --accounts 200000 --events-out take.jsonl [--fills 16000]
        (the same input as a file, no broker: ``bench_shards.py --events take.jsonl``)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import re
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench_agents import agents_process, metrics, on_a_broker
from bench_pipeline import produce

from streams.agents.app import INTERNAL
from streams.agents.fanout import SOURCE_HEADER
from streams.brokers.base import free_port
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import ensure_topics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SETTLE_S = 12.0  # both processes in the group, their first rebalances over
AFTER_KILL_S = 120.0
# the accounts' opening events applied (and copied) by then: per account a deposit and
# a fill, ~2,000 events/s per process, every process starting at once (rebalances)
LOADED_S_BASE, LOADED_S_PER_ACCOUNT = 120.0, 0.002
# the standby of each partition to move has read its changelog to within this many rows
# (rows come at the exchange's pace; Faust applies a standby's in batches of 100)
LAG_AT_KILL_ROWS = 500


def per_partition(samples: Samples, name: str) -> dict[int, float]:
    """One gauge or counter of a process's scrape, partition -> value."""
    return {
        int(dict(labels)["partition"]): value
        for (metric, labels), value in samples.items()
        if metric == name
    }


def standby_lags(samples: Samples) -> dict[str, dict[int, float]]:
    """``adl_agent_standby_lag_rows`` of a scrape: table -> partition -> rows."""
    lags: dict[str, dict[int, float]] = {}
    for (metric, labels), rows in samples.items():
        if metric == "adl_agent_standby_lag_rows":
            label = dict(labels)
            lags.setdefault(label["table"], {})[int(label["partition"])] = rows
    return lags


# the survivor's recovery after the rebalance is over: its streams resume (an output
# stamped after the consumer left its generation may still be one applied before)
READY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*Worker ready")


def first_output(after: list[tuple[float, int]], p: int, since_s: float = 0.0) -> float | None:
    """Partition ``p``'s first output in ``after`` (seconds after the kill, partition)
    at or after ``since_s``."""
    return min((t for t, q in after if q == p and t >= since_s), default=None)


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, every thread's, user and system (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ready_again(log: Path, after: float) -> float | None:
    """When the survivor was ready again after ``after`` (epoch seconds), from its log
    (Faust's local-time stamps, this machine's clock)."""
    for line in log.read_text(errors="replace").splitlines():
        match = READY.match(line)
        if match is None:
            continue
        at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at > after:
            return at
    return None


def held_partitions(port: int, samples: Samples | None = None) -> set[int]:
    """The account partitions a process applies events for now (its shards), from its
    ``samples`` if already scraped."""
    samples = metrics(port) if samples is None else samples
    return set(per_partition(samples, "adl_agent_events_applied_total"))


def holds(port: int, role: str) -> bool:
    """The process runs ``role`` now (``mark_fan_out``, ``fund_desk``): the gauge, not
    the fan-out's counter (the process that forwarded the opening's mark may have handed
    the fan-out on since: a run killed the fan-out's owner as ``other``, 2026-12-05)."""
    return metrics(port).get(("adl_agent_holds", (("role", role),))) == 1.0


def caught_up(ports: list[int], partitions: int) -> bool:
    """Every partition held by one of the processes, each of them caught up (every
    input of what it holds delivered and applied)."""
    samples = [metrics(port) for port in ports]  # one scrape each
    if not all(s.get(("adl_agent_caught_up", ())) == 1.0 for s in samples):
        return False
    held = [held_partitions(port, s) for port, s in zip(ports, samples, strict=True)]
    return set().union(*held) == set(range(partitions))


async def until(done: Callable[[], bool], deadline: float, what: str) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not by the deadline (stalled?)")
        await asyncio.sleep(1.0)


async def standbys_read(
    port: int, partitions: set[int], warm: bool, deadline: float
) -> tuple[dict[str, dict[int, float]], dict[int, float]]:
    """Once the process's standbys of ``partitions`` are within ``LAG_AT_KILL_ROWS`` of
    their account changelogs' ends (and, ``warm``, a copy of each made): (every table's
    lags, copies' accounts)."""
    while True:
        samples = metrics(port)  # one scrape
        lags = standby_lags(samples)
        copies = per_partition(samples, "adl_agent_warm_copy_accounts") if warm else {}
        accounts = lags.get("accounts", {})
        if all(accounts.get(p, math.inf) <= LAG_AT_KILL_ROWS for p in partitions) and all(
            copies.get(p, 0) > 0 for p in (partitions if warm else ())
        ):
            return lags, copies
        if time.monotonic() > deadline:
            raise SystemExit(f"standbys of {sorted(partitions)} behind: {lags}, copies {copies}")
        await asyncio.sleep(1.0)


def opening(accounts: int) -> list[dict[str, object]]:
    """Each account's deposit (300-3,000 USDT, spread over the accounts), then positions of
    1 ETH at 3,000 opened in pairs (one buys what the other sells), then a mark after
    them (the clock that releases them). The deposits spread the bankruptcy prices (long
    0-2,700, short 3,300-6,000) as a book's are: with one deposit for every account all
    of a side's positions went bankrupt at one price, one bucket of the deficit index
    whose prefix sums every fill made a summary rebuild (25,000 entries: the loop spent
    ~45% of its time there and the standbys fell behind)."""
    events: list[dict[str, object]] = [
        {"type": "balance", "event_id": f"d{i}", "ts": 0, "account": f"t{i}",
         "amount": str(300 + i * 7919 % 2701), "reason": "deposit"}
        for i in range(accounts)
    ]  # fmt: skip
    events += [
        {"type": "fill", "fill_id": f"o{i}", "ts": 1, "account": f"t{i}", "symbol": "ETHUSDT",
         "side": "buy" if i % 2 else "sell", "qty": "1", "price": "3000"}
        for i in range(accounts - accounts % 2)
    ]  # fmt: skip
    events.append({"type": "mark", "ts": 2, "symbol": "ETHUSDT", "mark_price": "3000"})
    return events


def exchange_events(rate: float, accounts: int) -> Iterator[tuple[str, bytes, dict[str, object]]]:
    """(input, key, event), endless: fills between the accounts, a mark after every
    ``rate / 10`` of them, event time moving 100 ms per mark (10 marks per second of
    market at ``rate`` fills per second)."""
    ts = 1_000
    for n in itertools.count(1):
        account = f"t{n % accounts}"
        yield "fills", account.encode(), {
            "type": "fill", "fill_id": f"f{n}", "ts": ts, "account": account,
            "symbol": "ETHUSDT", "side": "buy" if n % 2 else "sell", "qty": "0.1",
            "price": "3000",
        }  # fmt: skip
        if n % max(1, int(rate / 10)) == 0:
            ts += 100
            yield "mark_prices", b"ETH", {
                "type": "mark", "ts": ts, "symbol": "ETHUSDT", "mark_price": "3000",
            }  # fmt: skip


async def exchange(settings: Settings, stop: asyncio.Event, rate: float, accounts: int) -> None:
    """``exchange_events`` written at ``rate`` fills per second of wall time."""
    topics = Topics(settings.topic_prefix)
    producer = AIOKafkaProducer(**settings.client_options(), linger_ms=5)
    await producer.start()
    try:
        for topic, key, event in exchange_events(rate, accounts):
            if stop.is_set():
                break
            await producer.send(topics.name(topic), orjson.dumps(event), key=key)
            if topic == "fills":
                await asyncio.sleep(1 / rate)
    finally:
        await producer.stop()


def write_events(path: Path, rate: float, accounts: int, fills: int) -> None:
    """The opening and the first ``fills`` fills (with their marks) as an events file:
    what the processes apply, for ``bench_shards.py`` (stage A without Kafka)."""
    with path.open("wb") as out:
        for event in opening(accounts):
            out.write(orjson.dumps(event) + b"\n")
        written = 0  # fills
        for topic, _, event in exchange_events(rate, accounts):
            if topic == "fills":
                if written == fills:
                    break
                written += 1
            out.write(orjson.dumps(event) + b"\n")


async def takeover(bootstrap: str, partitions: int, rate: float, timeout_ms: int,
                   heartbeat_ms: int, victim: str, accounts: int, warm: bool) -> None:  # fmt: skip
    settings = Settings(bootstrap=bootstrap, topic_prefix=f"k{uuid.uuid4().hex[:5]}.",
                        partitions=partitions, session_timeout_ms=timeout_ms,
                        heartbeat_interval_ms=heartbeat_ms, warm_copies=warm)  # fmt: skip
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics, INTERNAL)
    events = opening(accounts)
    await produce(settings, events)
    ports = [free_port(), free_port()]
    logs = Path(tempfile.mkdtemp(prefix="adl-takeover-"))
    procs = [
        agents_process(settings, port, log=logs / f"agents-{i}.log") for i, port in enumerate(ports)
    ]
    began = time.monotonic()
    deadline = began + LOADED_S_BASE + LOADED_S_PER_ACCOUNT * accounts
    await until(lambda: caught_up(ports, partitions), deadline, "the opening applied")
    loaded_s = time.monotonic() - began
    consumer = AIOKafkaConsumer(topics.name("account_risk"), **settings.client_options(),
                                group_id=None, auto_offset_reset="latest")  # fmt: skip
    await consumer.start()
    stop = asyncio.Event()
    writing = asyncio.create_task(exchange(settings, stop, rate, accounts))
    seen: list[tuple[float, int]] = []  # (wall time written, source partition)

    async def read() -> None:
        while True:
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                for m in messages:  # the writer's clock: the same machine's
                    source = dict(m.headers or ()).get(SOURCE_HEADER, b"")
                    if source.startswith(b"fills:"):
                        seen.append((m.timestamp / 1000, int(source.split(b":")[1])))

    reading = asyncio.create_task(read())
    try:
        await asyncio.sleep(SETTLE_S)
        held = [held_partitions(port) for port in ports]
        owner = next((i for i, port in enumerate(ports) if holds(port, "mark_fan_out")), None)
        desk = next((i for i, port in enumerate(ports) if holds(port, "fund_desk")), None)
        if owner is None or not all(held):
            raise SystemExit(f"not settled after {SETTLE_S} s: partitions {held}")
        dead = owner if victim == "fan-out" else 1 - owner
        moved, kept = held[dead], held[1 - dead]
        lags, copied = await standbys_read(ports[1 - dead], moved, warm, deadline)
        if not holds(ports[owner], "mark_fan_out"):
            raise SystemExit("the mark fan-out moved while the standbys were read")
        killed_at = time.time()
        cpu_at_kill = cpu_seconds(procs[1 - dead].pid)
        procs[dead].send_signal(signal.SIGKILL)
        procs[dead].wait()
        await asyncio.sleep(AFTER_KILL_S)
        # the survivor's share of a core while it holds every partition (1.0: busy)
        busy = (cpu_seconds(procs[1 - dead].pid) - cpu_at_kill) / (time.time() - killed_at)
    finally:
        stop.set()
        await writing
        reading.cancel()
        await consumer.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    after = [(at - killed_at, p) for at, p in seen if at > killed_at]
    first = {p: first_output(after, p) for p in moved}
    times = sorted([0.0, AFTER_KILL_S] + [t for t, p in after if p in kept])
    silence = max(b - a for a, b in itertools.pairwise(times))
    # each own partition's first output once the survivor is ready again
    ready_at = ready_again(logs / f"agents-{1 - dead}.log", killed_at)
    rebalance_s = None if ready_at is None else ready_at - killed_at
    back = {p: first_output(after, p, rebalance_s or 0.0) for p in kept}
    limit = timeout_ms / 1000

    def beyond(t: float | None) -> str:
        return (
            f"none in {AFTER_KILL_S:.0f} s"
            if t is None
            else f"{t:.1f} s ({t - limit:+.1f} s beyond it)"
        )

    # the desk's table has one partition: its 0 is not account partition 0
    lag_at_kill: dict[str, object] = {
        table: {p: f"{lag.get(p, math.nan):.0f}" for p in sorted(moved)}
        for table, lag in sorted(lags.items())
        if table != "desk"
    }
    if "desk" in lags:
        lag_at_kill["desk"] = f"{lags['desk'].get(0, math.nan):.0f}"
    print(f"session timeout {limit:.0f} s, heartbeat {heartbeat_ms / 1000:.1f} s, "
          f"{victim} killed (the desk {'with it' if desk == dead else 'on the survivor'}), "
          f"{rate:.0f} fills/s, {accounts:,} accounts (opening applied "
          f"in {loaded_s:.0f} s), warm copies {'on' if warm else 'off'} "
          f"{ {p: int(copied.get(p, 0)) for p in sorted(moved)} if warm else ''}, standby "
          f"lag at the kill {lag_at_kill} rows, "
          f"{partitions} partitions | first output of each moved partition "
          f"{ {p: beyond(first[p]) for p in sorted(moved)} } | survivor's own {sorted(kept)}: "
          f"ready again {beyond(rebalance_s)}, back at "
          f"{ {p: beyond(back[p]) for p in sorted(kept)} }, "
          f"longest silence {beyond(silence)}, CPU {busy:.0%} of a core in the "
          f"{AFTER_KILL_S:.0f} s after the kill | logs {logs}", flush=True)  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200.0, help="fills per second")
    parser.add_argument("--session-timeouts", default="10000,6000", help="ms, comma list")
    parser.add_argument(
        "--heartbeats", default="1000", help="ms, comma list (each at most a third of each timeout)"
    )
    parser.add_argument("--victim", default="other,fan-out", help="other, fan-out or both")
    parser.add_argument("--bootstrap", help="a running broker (default: start one)")
    parser.add_argument("--accounts", type=int, default=64, help="accounts with a position")
    parser.add_argument("--warm", default="on", help="on, off or both (warm copies)")
    parser.add_argument("--events-out", type=Path, help="write the input to this file, exit")
    parser.add_argument("--fills", type=int, default=16_000, help="with --events-out")
    args = parser.parse_args()
    if args.events_out:
        write_events(args.events_out, args.rate, args.accounts, args.fills)
        return

    async def run(bootstrap: str) -> None:
        for timeout_ms in (int(v) for v in args.session_timeouts.split(",")):
            for heartbeat_ms in (int(v) for v in args.heartbeats.split(",")):
                for victim in args.victim.split(","):
                    for warm in args.warm.split(","):
                        await takeover(bootstrap, args.partitions, args.rate, timeout_ms,
                                       heartbeat_ms, victim, args.accounts,
                                       warm == "on")  # fmt: skip

    await on_a_broker(run, args.bootstrap)


if __name__ == "__main__":
    asyncio.run(main())
