"""The web server: Prometheus ``/metrics`` and a read API, the same for both streaming
paths (``schemas/openapi.yaml``). What each path knows comes through ``Reads``: the
single-process worker answers from its engine (``WorkerReads``); the Faust agents from
their partitions, forwarding to the process that owns an account (``agents.web``).

It runs on the process's own event loop, so a request sees the state between two
events, never in the middle of one.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams import wire
from streams.engine.adl import RankedEntry
from streams.engine.engine import Engine
from streams.engine.fixed import to_str
from streams.engine.instruments import HOME_SETTLEMENT
from streams.engine.inverse import wallet_key
from streams.engine.profiles import VenueProfile
from streams.engine.signals import AdlStage, AdlTriggered
from streams.pipeline.metrics import Metrics
from streams.pipeline.settings import whole_number
from streams.pipeline.worker import Worker

SIDES = ("long", "short")
MAX_LIMIT = 1000
Answer = tuple[int, Any]  # (HTTP status, JSON body)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _answer(answer: Answer) -> web.Response:
    status, body = answer
    return _json(body, status)


def not_found(message: str) -> Answer:
    return 404, {"error": message}


OPEN_PATHS = ("/metrics", "/health")  # no account in them: scraped without the token


def bearer_guard(token: str) -> Middleware:
    """Middleware: every path but ``OPEN_PATHS`` wants ``Authorization: Bearer <token>``
    (compared in constant time); else 401."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                response = _json({"error": "a bearer token is required (ADL_API_TOKEN)"}, 401)
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return await handler(request)

    return guard


class Reads(Protocol):
    """What a streaming path answers. Symbol, side and limit are checked before a call;
    ``request`` is there for a path that forwards it to another process."""

    symbols: frozenset[str]

    def health(self) -> dict[str, Any]: ...

    async def fund(self, fund: str, request: web.Request) -> Answer: ...

    async def queue(self, symbol: str, side: str, limit: int, request: web.Request) -> Answer: ...

    async def account(self, account: str, request: web.Request) -> Answer: ...

    async def plan(self, symbol: str, request: web.Request) -> Answer: ...


def queue_body(
    symbol: str,
    side: str,
    ranked_at: int | None,
    entries: Iterable[RankedEntry],
    profile: VenueProfile,
) -> dict[str, Any]:
    """An ADL queue as the API gives it (ranks from 1; each light also on the venue's
    own scale)."""
    return {
        "symbol": symbol,
        "side": side,
        "ranked_at": ranked_at,
        "queue": [
            {
                "rank": e.rank + 1,
                "account": e.account,
                "qty": to_str(e.qty),
                "rank_score": e.score,
                "quantile": e.light or None,  # 0: not lit yet (the agents' desk lights)
                "venue_indicator": profile.venue_indicator(e.light) if e.light else None,
            }
            for e in entries
        ],
    }


def account_answer(engine: Engine, account: str, currency: str | None = None) -> Answer:
    """The account's wallet in ``currency`` (``None``: USDT) at the latest marks
    (``risk_now``, as replay's final accounts)."""
    risk = engine.risk_now(wallet_key(account, currency or HOME_SETTLEMENT))
    if risk is None:
        held = f" in {currency}" if currency else ""
        return not_found(f"unknown account {account!r}{held}")
    return 200, wire.account_risk(risk, engine)


def plan_answer(planned: tuple[AdlTriggered, AdlStage | None] | None, symbol: str) -> Answer:
    if planned is None:
        return not_found(f"{symbol}: no mark or no fund balance yet")
    return 200, wire.plan_now(*planned)


class WorkerReads:
    """The single-process worker: one engine holds every account."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.symbols = frozenset(worker.engine.symbols)

    @property
    def engine(self) -> Engine:
        """The worker's engine now (a start from a snapshot replaces it)."""
        return self.worker.engine

    def health(self) -> dict[str, Any]:
        worker = self.worker
        return {
            "status": "ok",
            "events_applied": worker.stats.applied,
            "dead_letters": worker.stats.dead_letters,
            "last_event_ts": self.engine.last_ts_ms,
            "consumer_lag": worker.lag,
        }

    async def fund(self, fund: str, request: web.Request) -> Answer:
        engine = self.engine
        if fund not in engine.funds:
            return not_found(f"unknown fund {fund!r}")
        return 200, wire.fund_projection(engine.projection(fund, engine.last_ts_ms))

    async def queue(self, symbol: str, side: str, limit: int, request: web.Request) -> Answer:
        engine = self.engine
        entries = engine.venue_queue(symbol, side, limit=limit)  # not the whole queue: O(limit)
        ranked_at = engine.symbols[symbol].ranked_at_ms
        return 200, queue_body(symbol, side, ranked_at, entries, engine.profiles[symbol])

    async def account(self, account: str, request: web.Request) -> Answer:
        return account_answer(self.engine, account, request.query.get("currency"))

    async def plan(self, symbol: str, request: web.Request) -> Answer:
        return plan_answer(self.engine.plan_now(symbol), symbol)


def read_api(
    reads: Reads, registry: CollectorRegistry, token: str | None = None
) -> web.Application:
    """``/metrics``, ``/health`` and the reads; with ``token``, account, queue and fund
    reads need it."""

    async def get_metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        return _json(reads.health())

    async def fund(request: web.Request) -> web.Response:
        return _answer(await reads.fund(request.match_info["fund"], request))

    async def queue(request: web.Request) -> web.Response:
        symbol, side = request.match_info["symbol"], request.match_info["side"]
        if side not in SIDES:
            return _json({"error": f"side must be long or short, got {side!r}"}, 400)
        if symbol not in reads.symbols:
            return _json({"error": f"unknown symbol {symbol!r}"}, 404)
        raw = request.query.get("limit", "20")
        limit = whole_number(raw, max_digits=6)
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            message = f"limit must be an integer in 1..{MAX_LIMIT}, got {raw[:40]!r}"
            return _json({"error": message}, 400)
        return _answer(await reads.queue(symbol, side, limit, request))

    async def account(request: web.Request) -> web.Response:
        return _answer(await reads.account(request.match_info["account"], request))

    async def plan(request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if symbol not in reads.symbols:
            return _json({"error": f"unknown symbol {symbol!r}"}, 404)
        return _answer(await reads.plan(symbol, request))

    app = web.Application(middlewares=[bearer_guard(token)] if token else [])
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/funds/{fund}", fund)
    app.router.add_get("/adl/{symbol}/{side}/queue", queue)
    app.router.add_get("/accounts/{account}", account)
    app.router.add_get("/adl/{symbol}/plan", plan)
    return app


def build_app(worker: Worker, metrics: Metrics, token: str | None = None) -> web.Application:
    """The worker's server."""
    return read_api(WorkerReads(worker), metrics.registry, token)


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
