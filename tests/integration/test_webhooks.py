"""Webhooks against a real local HTTP receiver that fails, times out and recovers;
signatures checked with the Standard Webhooks reference library; every selected event
accepted exactly once by its key, across a dispatcher restart."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from streams.brokers import Broker, free_port
from streams.cli import bundled
from streams.engine.instruments import load_instruments
from streams.notify.signing import new_secret
from streams.notify.webhooks import Dispatcher, WebhookConfig
from streams.pipeline.producer import produce_file
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import Output, Worker, ensure_topics


class Receiver:
    """Answers 500 to the first two posts, stalls past the client timeout on the third,
    then accepts; keeps what it accepted by webhook-id, after verifying the signature."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.posts = 0
        self.accepted: Counter[str] = Counter()
        self.bodies: dict[str, bytes] = {}
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        body = await request.read()
        if self.posts <= 2:
            return web.Response(status=500)
        if self.posts == 3:
            await asyncio.sleep(2.0)  # the dispatcher gives up after 0.5 s
            return web.Response(status=200)
        try:
            self.verifier.verify(body, dict(request.headers))
        except Exception:  # the reference library's own error types
            self.bad_signatures += 1
            return web.Response(status=401)
        msg_id = request.headers["webhook-id"]
        if msg_id not in self.accepted:  # idempotency: a repeat is acknowledged, not applied
            self.bodies[msg_id] = body
        self.accepted[msg_id] += 1
        return web.Response(status=204)


def test_webhooks_survive_failures_and_a_restart(kafka: Broker) -> None:
    settings = Settings(
        bootstrap=kafka.bootstrap, topic_prefix=f"w{uuid.uuid4().hex[:6]}.", partitions=3,
        idle_flush_ms=300,
    )  # fmt: skip
    secret = new_secret()
    receiver = Receiver(secret)
    port = free_port()
    config = WebhookConfig(
        url=f"http://127.0.0.1:{port}/hook", secret=secret, min_light=5, timeout_s=0.5,
        min_notional=Decimal("2000"),
        backoff_base_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip
    expected: Counter[str] = Counter()

    def record(out: Output) -> None:
        payload = orjson.loads(out.value)
        if out.topic == "adl_triggers" and payload["stage"] in config.stages:
            expected[orjson.dumps(payload).decode()] += 1
        big_enough = Decimal(payload.get("notional", "0")) >= Decimal("2000")
        if out.topic == "rank_alerts" and payload["quantile"] >= config.min_light and big_enough:
            expected[orjson.dumps(payload).decode()] += 1

    async def scenario() -> tuple[int, int]:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await ensure_topics(settings, Topics(settings.topic_prefix))
            await produce_file(settings, Path(bundled("cascade.jsonl")))
            instruments = load_instruments(bundled("instruments.toml"))
            await Worker(settings, instruments, on_output=record).run(stop_when_idle=True)
            first = Dispatcher(settings, config, seed=1)
            task = asyncio.create_task(first.run())
            assert sum(expected.values()) > 10
            while len(receiver.accepted) < sum(expected.values()) // 2:  # stop it part-way
                await asyncio.sleep(0.05)
            first.stop()
            await task
            second = Dispatcher(settings, config, seed=2)
            stats = await second.run(stop_when_idle=True)
            return first.stats.retries, stats.delivered
        finally:
            await runner.cleanup()

    retries, delivered_after_restart = asyncio.run(scenario())
    assert retries >= 3  # two 500s and one timeout were retried
    assert delivered_after_restart > 0
    assert receiver.bad_signatures == 0
    got = Counter(orjson.dumps(orjson.loads(b)).decode() for b in receiver.bodies.values())
    assert got == expected  # every selected event arrived once by key, and nothing else
    assert any('"stage":"triggered"' in e for e in expected)
