"""The worker's web server: Prometheus ``/metrics`` and a read API over the engine.

It runs on the worker's own event loop, so a request sees the engine between two events,
never in the middle of one. The API is described in ``schemas/openapi.yaml``.
One worker owns every partition today, so it answers for every account.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import wire
from streams.engine.fixed import to_str
from streams.pipeline.metrics import Metrics
from streams.pipeline.settings import whole_number
from streams.pipeline.worker import Worker

SIDES = ("long", "short")
MAX_LIMIT = 1000


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


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
                response = _error(401, "a bearer token is required (ADL_API_TOKEN)")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return await handler(request)

    return guard


def build_app(worker: Worker, metrics: Metrics, token: str | None = None) -> web.Application:
    """The read API; with ``token``, account, queue and fund reads need it."""
    engine = worker.engine

    async def get_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        return _json(
            {
                "status": "ok",
                "events_applied": worker.stats.applied,
                "dead_letters": worker.stats.dead_letters,
                "last_event_ts": engine.last_ts_ms,
                "consumer_lag": worker.lag,
            }
        )

    async def fund(request: web.Request) -> web.Response:
        name = request.match_info["fund"]
        if name not in engine.funds:
            return _error(404, f"unknown fund {name!r}")
        return _json(wire.fund_projection(engine.projection(name, engine.last_ts_ms)))

    async def queue(request: web.Request) -> web.Response:
        symbol, side = request.match_info["symbol"], request.match_info["side"]
        if side not in SIDES:
            return _error(400, f"side must be long or short, got {side!r}")
        if symbol not in engine.symbols:
            return _error(404, f"unknown symbol {symbol!r}")
        raw = request.query.get("limit", "20")
        limit = whole_number(raw, max_digits=6)
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"limit must be an integer in 1..{MAX_LIMIT}, got {raw[:40]!r}")
        entries = engine.queue(symbol, side, limit=limit)  # not the whole queue: O(limit)
        return _json(
            {
                "symbol": symbol,
                "side": side,
                "ranked_at": engine.symbols[symbol].ranked_at_ms,
                "queue": [
                    {
                        "rank": e.rank + 1,
                        "account": e.account,
                        "qty": to_str(e.qty),
                        "rank_score": e.score,
                        "quantile": e.light,
                    }
                    for e in entries
                ],
            }
        )

    async def account(request: web.Request) -> web.Response:
        name = request.match_info["account"]
        risk = engine.risk_now(name)  # at the latest marks, as replay's final accounts
        if risk is None:
            return _error(404, f"unknown account {name!r}")
        return _json(wire.account_risk(risk, engine))

    app = web.Application(middlewares=[bearer_guard(token)] if token else [])
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/funds/{fund}", fund)
    app.router.add_get("/adl/{symbol}/{side}/queue", queue)
    app.router.add_get("/accounts/{account}", account)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
