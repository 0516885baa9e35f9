"""Webhooks against a real local HTTP receiver that fails, times out and recovers;
signatures checked with the Standard Webhooks reference library; every selected event
accepted exactly once by its key, across a dispatcher restart."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from standardwebhooks.webhooks import Webhook

from streams.brokers import Broker, free_port
from streams.cli import bundled
from streams.engine.instruments import load_instruments
from streams.notify.signing import new_secret
from streams.notify.webhooks import Dispatcher, DispatchStats, WebhookConfig
from streams.pipeline.producer import produce_file
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics
from streams.pipeline.worker import Output, Worker, ensure_topics
from tests.helpers import schema_validator


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


def fresh_settings(kafka: Broker) -> Settings:
    """Topics of their own (a prefix per test)."""
    return Settings(
        bootstrap=kafka.bootstrap, topic_prefix=f"w{uuid.uuid4().hex[:6]}.", partitions=3,
        idle_flush_ms=300,
    )  # fmt: skip


async def serving(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def cascade_outputs(settings: Settings, on_output: Any = None) -> None:
    """The bundled cascade through the worker: ADL triggers and rank alerts to post."""
    await ensure_topics(settings, Topics(settings.topic_prefix))
    await produce_file(settings, Path(bundled("cascade.jsonl")))
    instruments = load_instruments(bundled("instruments.toml"))
    await Worker(settings, instruments, on_output=on_output).run(stop_when_idle=True)


def test_webhooks_survive_a_receiver_down_failures_and_a_restart(kafka: Broker) -> None:
    settings = fresh_settings(kafka)
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
        await cascade_outputs(settings, record)
        first = Dispatcher(settings, config, seed=1)
        task = asyncio.create_task(first.run())
        await asyncio.sleep(3.0)  # the receiver is down: connections refused meanwhile
        runner = await serving(app, port)
        try:
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
    assert retries >= 10  # refused while down (0.05 s doubling to 0.2 s), two 500s, a timeout
    assert delivered_after_restart > 0
    assert receiver.bad_signatures == 0
    got = Counter(orjson.dumps(orjson.loads(b)).decode() for b in receiver.bodies.values())
    assert got == expected  # every selected event arrived once by key, and nothing else
    assert any('"stage":"triggered"' in e for e in expected)


FINAL = (400, 401, 403, 404, 410, 413, 422, 301, 302, 303, 307, 308)
RETRIED = (408, 429, 500, 503)


class Classes:
    """A receiver per answer class, by path: ``/final/<code>`` always answers the code
    (a redirect points at ``/accept``), ``/flaky/<code>`` answers the code to a message's
    first post and 204 after, ``/down`` always 503."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()  # path
        self.seen: set[tuple[str, str]] = set()  # (path, webhook-id)
        self.delivered: Counter[tuple[str, str]] = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/final/{code}", self.final)
        app.router.add_post("/flaky/{code}", self.flaky)
        app.router.add_post("/down", self.down)
        app.router.add_route("*", "/accept", self.accept)
        return app

    async def final(self, request: web.Request) -> web.Response:
        self.posts[request.path] += 1
        code = int(request.match_info["code"])
        if 300 <= code < 400:
            return web.Response(status=code, headers={"Location": "/accept"})
        return web.Response(status=code, text=f"no ({code}) " + "x" * 2000)

    async def flaky(self, request: web.Request) -> web.Response:
        self.posts[request.path] += 1
        key = (request.path, request.headers["webhook-id"])
        if key not in self.seen:
            self.seen.add(key)
            return web.Response(status=int(request.match_info["code"]))
        self.delivered[key] += 1
        return web.Response(status=204)

    async def down(self, request: web.Request) -> web.Response:
        self.posts[request.path] += 1
        return web.Response(status=503)

    async def accept(self, request: web.Request) -> web.Response:
        self.posts[request.path] += 1
        return web.Response(status=204)


async def read_all(settings: Settings, base: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        Topics(settings.topic_prefix).name(base), **settings.client_options(),
        group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=3000, max_records=100_000)
        return [orjson.loads(m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()


def dead_lettered(dispatcher: Dispatcher, reason: str) -> float | None:
    registry = dispatcher.metrics.registry
    return registry.get_sample_value("adl_webhook_dead_letters_total", {"reason": reason})


def test_every_answer_class_is_delivered_or_dead_lettered(kafka: Broker) -> None:
    settings = fresh_settings(kafka)
    secret = new_secret()
    port = free_port()
    receiver = Classes()
    base = f"http://127.0.0.1:{port}"

    def config(path: str, **more: Any) -> WebhookConfig:
        return WebhookConfig(
            url=base + path, secret=secret, rank_alerts=False, timeout_s=2.0,
            backoff_base_s=0.02, backoff_max_s=0.05, group_id=f"hooks{path.replace('/', '-')}",
            **more,
        )  # fmt: skip

    async def scenario() -> tuple[int, dict[str, Dispatcher], list[dict[str, Any]]]:
        runner = await serving(receiver.app(), port)
        try:
            await cascade_outputs(settings)
            triggers = await read_all(settings, "adl_triggers")
            selected = sum(t["stage"] in ("imminent", "triggered") for t in triggers)
            paths = [f"/final/{c}" for c in FINAL] + [f"/flaky/{c}" for c in RETRIED]
            runs = {p: Dispatcher(settings, config(p), seed=3) for p in paths}
            runs["/down"] = Dispatcher(settings, config("/down", max_age_s=0.3), seed=4)
            await asyncio.gather(*(d.run(stop_when_idle=True) for d in runs.values()))
            return selected, runs, await read_all(settings, "webhook_dead_letters")
        finally:
            await runner.cleanup()

    selected, runs, letters = asyncio.run(scenario())
    assert selected > 10
    schema = schema_validator("topic.webhook_dead_letters")
    for letter in letters:
        schema.validate(letter)
    by_path: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_path.setdefault(letter["url"].removeprefix(base), []).append(letter)
    for code in FINAL:  # one attempt each, then the dead letter; a redirect never followed
        path = f"/final/{code}"
        got = by_path[path]
        assert len(got) == selected, path
        assert {(d["reason"], d["status"], d["attempts"]) for d in got} == {("refused", code, 1)}
        assert receiver.posts[path] == selected
        assert dead_lettered(runs[path], "refused") == selected
        if code < 400:
            assert all(d["answer"] == "" for d in got)
        else:
            assert all(d["answer"] == (f"no ({code}) " + "x" * 2000)[:512] for d in got)
    assert receiver.posts["/accept"] == 0
    for code in RETRIED:  # retried, then delivered exactly once by key; no dead letter
        path = f"/flaky/{code}"
        assert path not in by_path
        assert receiver.posts[path] == 2 * selected
        assert (
            sorted(receiver.delivered[(p, i)] for p, i in receiver.delivered if p == path)
            == [1] * selected
        )
    down = by_path["/down"]  # retried until max_age_s, then expired
    assert len(down) == selected
    assert all(d["reason"] == "expired" and d["status"] == 503 for d in down)
    assert all(d["attempts"] >= 2 for d in down)
    assert all(d["last_attempt_ms"] - d["first_attempt_ms"] >= 300 for d in down)
    assert dead_lettered(runs["/down"], "expired") == selected


def test_the_dispatcher_waits_for_kafka(caplog: Any) -> None:
    # nothing listens on the port: the dispatcher says so, retries, and stops when told
    settings = Settings(bootstrap=f"127.0.0.1:{free_port()}")
    dispatcher = Dispatcher(settings, WebhookConfig(url="http://127.0.0.1:9/", secret=new_secret()))

    async def scenario() -> DispatchStats:
        task = asyncio.create_task(dispatcher.run())
        await asyncio.sleep(2.5)
        dispatcher.stop()
        return await asyncio.wait_for(task, timeout=10)

    with caplog.at_level("WARNING", logger="adl_monitor.webhooks"):
        stats = asyncio.run(scenario())
    waits = [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(waits) >= 2  # 0.5 s, 1 s, ...: retried with backoff
    assert waits[0].startswith(f"Kafka at {settings.bootstrap} not reachable")
    assert stats.attempts == 0
