"""The agents' read API: the worker's routes and metrics (``pipeline.web``), answered by
whichever process is asked.

An account lives in one partition (Kafka's default partitioner over its name, as the
exchange's producers write it) and that partition in one process: the process asked
answers from its shard, or forwards the request to the owner, whose URL every member
learns from Faust's partition assignor (``canonical_url``, advertised at each
rebalance). The fund is the desk's (one process). An ADL queue spans every partition:
the process asked merges its own partitions' queues with every other owner's
(``scope=local`` asks a process for its own partitions only), in the engine's order
(score down, size down, account).

While a rebalance moves partitions, an account or a queue whose owner is not known yet
is answered 503 (retry), never from a stale copy. A forwarded request that reaches a
process that does not own the account either (the owners moved in between) is not
forwarded again.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiokafka.partitioner import DefaultPartitioner
from yarl import URL

from streams import wire
from streams.agents.metrics import AgentCollector
from streams.pipeline.web import (
    Answer,
    account_answer,
    not_found,
    plan_answer,
    queue_body,
    read_api,
    serve,
)

if TYPE_CHECKING:
    from streams.agents.app import AccountAgents
    from streams.agents.desk import FundDesk

FORWARDED = "X-Adl-Forwarded"  # set on a request one process sends another
FORWARD_TIMEOUT_S = 5.0
_partitioner = DefaultPartitioner()


def partition_of(account: str, partitions: int) -> int:
    """The partition the exchange's producers write the account's events to (Kafka's
    default partitioner: murmur2 of the key)."""
    every = list(range(partitions))
    return int(_partitioner(account.encode(), every, every))


def unavailable(message: str) -> Answer:
    return 503, {"error": message}


class AgentReads:
    """``pipeline.web.Reads`` over this process's partitions and its peers'."""

    def __init__(self, agents: AccountAgents) -> None:
        self.agents = agents
        self.symbols = agents.symbols
        self._http: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ where things are
    def owners(self, table: str) -> dict[int, URL]:
        """Partition of the table's changelog -> URL of the process that holds it."""
        out = {}
        for host, topics in self.agents.app.router.table_metadata(table).items():
            for partitions in topics.values():
                for p in partitions:
                    out[p] = URL(host)
        return out

    @property
    def me(self) -> URL:
        return URL(str(self.agents.app.conf.canonical_url))

    async def forward(self, to: URL, request: web.Request, **query: str) -> Answer:
        """The request as asked of ``to`` (its token with it), marked as forwarded."""
        if request.headers.get(FORWARDED):
            return unavailable("partition owners are moving (a rebalance): retry")
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
            self._http = aiohttp.ClientSession(timeout=timeout)
        headers = {FORWARDED: "1"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        # the path as asked (still percent-encoded: an account name may hold any character)
        url = to.with_path(request.rel_url.raw_path, encoded=True).with_query(
            {**request.query, **query}
        )
        try:
            async with self._http.get(url, headers=headers) as response:
                return response.status, await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return unavailable(f"the owner {to} did not answer: {type(exc).__name__}")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    # ------------------------------------------------------------------ reads
    def health(self) -> dict[str, Any]:
        agents = self.agents
        shards = list(agents.shards.values())
        return {
            "status": "ok",
            "events_applied": sum(shard.stats.applied for shard in shards),
            "dead_letters": agents.metrics.view.dead_letters,
            "last_event_ts": max((shard.engine.last_ts_ms for shard in shards), default=0),
            "consumer_lag": agents.lag(),
        }

    async def account(self, account: str, request: web.Request) -> Answer:
        agents = self.agents
        partition = partition_of(account, agents.settings.partitions)
        if partition in agents.shards:
            return await self._account_here(account, partition, request)
        owner = self.owners("accounts").get(partition)
        if owner is None:
            return unavailable(f"partition {partition} has no owner now (a rebalance): retry")
        if owner != self.me:
            return await self.forward(owner, request)
        if not agents.tables_ready:
            return unavailable(f"partition {partition} is being restored: retry")
        if partition in agents.kept:  # taken up once the committed offsets are read
            return unavailable(f"partition {partition} is being taken up again: retry")
        if agents.restoring.locked():  # a restore takes seconds: not held open meanwhile
            return unavailable(f"partition {partition} is being restored: retry")
        return await self._account_here(account, partition, request)  # none applied yet

    async def _account_here(self, account: str, partition: int, request: web.Request) -> Answer:
        shard = await self.agents.shard(partition)
        if shard is None:
            return unavailable(f"partition {partition} moved while restored: retry")
        return account_answer(shard.engine, account, request.query.get("currency"))

    async def fund(self, fund: str, request: web.Request) -> Answer:
        if fund not in self.agents.desk.watch.funds:
            return not_found(f"unknown fund {fund!r}")

        def projection(desk: FundDesk[Any]) -> Answer:
            key = desk.applied_key.get(fund)
            ts_ms = 0 if key is None else key[0]
            return 200, wire.fund_projection(desk.projection(fund, ts_ms))

        return await self._at_desk(request, projection)

    async def plan(self, symbol: str, request: web.Request) -> Answer:
        def plan(desk: FundDesk[Any]) -> Answer:
            fund = desk.watch.fund_of(symbol)
            key = None if fund is None else desk.applied_key.get(fund)
            if fund is None or key is None:
                return plan_answer(None, symbol)
            return plan_answer(desk.plan_now(fund, symbol, key[0]), symbol)

        return await self._at_desk(request, plan)

    async def _at_desk(
        self, request: web.Request, answer: Callable[[FundDesk[Any]], Answer]
    ) -> Answer:
        """``answer`` from the fund desk, here or at the process that holds it."""
        if self.agents.holds_desk():
            if not self.agents.restore_desk():
                return unavailable("the fund desk is being restored: retry")
            return answer(self.agents.desk)  # a restore makes a new one: read it now
        owner = self.owners("desk").get(0)
        if owner is None or owner == self.me:
            return unavailable("the fund desk has no owner now (a rebalance): retry")
        return await self.forward(owner, request)

    async def queue(self, symbol: str, side: str, limit: int, request: web.Request) -> Answer:
        mine = self.local_queue(symbol, side, limit)
        if request.query.get("scope") == "local":
            return 200, mine
        parts = [mine]
        owners = self.owners("accounts")
        missing = sorted(set(range(self.agents.settings.partitions)) - set(owners))
        if missing:
            return unavailable(f"partitions {missing} have no owner now (a rebalance): retry")
        peers = sorted(set(owners.values()) - {self.me}, key=str)
        answers = await asyncio.gather(*(self.forward(p, request, scope="local") for p in peers))
        for status, body in answers:
            if status != 200:
                return status, body
            parts.append(body)
        return 200, merge_queues(parts, limit, symbol, side)

    def local_queue(self, symbol: str, side: str, limit: int) -> dict[str, Any]:
        """This process's partitions' queue (each partition's first ``limit``, merged)."""
        parts = [
            queue_body(symbol, side, shard.engine.symbols[symbol].ranked_at_ms,
                       shard.engine.venue_queue(symbol, side, limit=limit),
                       shard.engine.profiles[symbol])
            for _, shard in sorted(self.agents.shards.items())
        ]  # fmt: skip
        return merge_queues(parts, limit, symbol, side)


def merge_queues(parts: list[dict[str, Any]], limit: int, symbol: str, side: str) -> dict[str, Any]:
    """Partitions' queues (API bodies) as one, in the engine's order (``adl.rank_queue``:
    score down, size down, account), ranked again from 1. ``ranked_at``: the oldest of
    the parts' rankings (each partition ranks at its own marks)."""

    def order(entry: dict[str, Any]) -> tuple[float, Decimal, str]:
        return -entry["rank_score"], -Decimal(entry["qty"]), entry["account"]

    merged = list(heapq.merge(*(part["queue"] for part in parts), key=order))[:limit]
    times = [part["ranked_at"] for part in parts if part["ranked_at"] is not None]
    return {
        "symbol": symbol,
        "side": side,
        "ranked_at": min(times, default=None),
        "queue": [{**entry, "rank": rank} for rank, entry in enumerate(merged, start=1)],
    }


def serve_api(agents: AccountAgents, addr: str, port: int, token: str | None = None) -> None:
    """``/metrics`` (the outputs' metrics, the agents' own, the per-side numbers of this
    process's partitions) and the read API on ``addr:port``, started with the Faust app
    on its event loop (a request sees the state between two events)."""
    agents.metrics.registry.register(AgentCollector(agents))
    reads = AgentReads(agents)
    app = read_api(reads, agents.metrics.registry, token)
    runner: list[web.AppRunner] = []

    async def start() -> None:
        runner.append(await serve(app, addr, port))

    async def stop(*_: Any, **__: Any) -> None:  # a Faust signal: sender, signal=
        await reads.close()
        for r in runner:
            await r.cleanup()

    agents.app.task(start)
    agents.app.on_before_shutdown.connect(stop)
