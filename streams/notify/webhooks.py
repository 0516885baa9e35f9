"""Deliver ADL triggers and rank alerts to a webhook, exactly once per key.

The outbox is the output topics themselves: they are durable, and a message's place in
them (topic, partition, offset) is its idempotency key, sent as ``webhook-id``. The
dispatcher reads them in a consumer group (read_committed), posts each selected message
signed per Standard Webhooks, retries timeouts, connection errors, 429 and 5xx with
exponential backoff and full jitter, and commits a partition's offset only after the
receiver accepted the message. A restart resumes from the last commit, so nothing is
lost; a message posted but not committed before a crash is posted again with the same
``webhook-id``, which the receiver uses to drop the repeat.

Nothing is dropped in silence: a final no (a 4xx other than 408/425/429, or any
redirect: not followed, the URL is wrong) and a message still failing ``max_age_s``
after its first attempt are written to ``webhook_dead_letters`` (status, the answer's
first 512 characters, attempts; schema ``topic.webhook_dead_letters``) before the offset
is committed, and counted (``adl_webhook_dead_letters_total{reason}``, alert
``AdlWebhookUndelivered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry, Counter

from streams.notify.signing import headers
from streams.pipeline.settings import Settings
from streams.pipeline.topics import WEBHOOK_DEAD_LETTERS, Topics
from streams.pipeline.worker import ensure_topics

log = logging.getLogger("adl_monitor.webhooks")
RETRY_STATUSES = {408, 425, 429}
EXCERPT_CHARS = 512  # of the receiver's answer, in a dead letter
KAFKA_WAIT_MAX_S = 30.0  # backoff cap while the broker is unreachable at start-up


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    secret: str  # whsec_...
    stages: frozenset[str] = frozenset({"imminent", "triggered"})
    min_light: int = 1  # rank alerts with a light below this are not sent
    min_notional: Decimal = Decimal(0)  # nor those of positions smaller than this (quote)
    rank_alerts: bool = True
    slack: bool = False  # Slack-compatible body: {"text": ...}
    timeout_s: float = 5.0
    backoff_base_s: float = 0.2
    backoff_max_s: float = 30.0
    # a message still failing this long after its first attempt is dead-lettered (the
    # partition behind it moves on): an ADL page 15 minutes late is another incident
    max_age_s: float = 900.0
    group_id: str = "adl-monitor-webhooks"


@dataclass(frozen=True, slots=True)
class Undelivered:
    """Why a message was given up: ``refused`` (a final answer) or ``expired``."""

    reason: str
    status: int  # the last answer's HTTP status; 0: no answer (timeout, connection)
    answer: str  # the last answer's body (or the error), at most EXCERPT_CHARS
    attempts: int
    first_attempt_ms: int
    last_attempt_ms: int


@dataclass(slots=True)
class DispatchStats:
    delivered: int = 0
    attempts: int = 0
    filtered: int = 0
    retries: int = 0
    dead_letters: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class DispatchMetrics:
    """The dispatcher's Prometheus counters (its own registry: one per dispatcher)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answers = Counter(
            "adl_webhook_answers", "Webhook posts by answer (HTTP status, or the error)",
            ["status"], registry=self.registry,
        )  # fmt: skip
        self.delivered = Counter(
            "adl_webhook_delivered", "Messages the receiver accepted", registry=self.registry
        )
        self.dead_letters = Counter(
            "adl_webhook_dead_letters",
            "Messages given up (refused: a final answer; expired: past max_age_s)",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        for reason in ("refused", "expired"):
            self.dead_letters.labels(reason)


def selected(config: WebhookConfig, topic: str, payload: dict[str, Any]) -> bool:
    if topic == "adl_triggers":
        return str(payload.get("stage")) in config.stages
    return (
        config.rank_alerts
        and int(payload.get("quantile", 0)) >= config.min_light
        and Decimal(str(payload.get("notional", "0"))) >= config.min_notional
    )


def money_text(value: str, settlement: str | None = None) -> str:
    """An output's money as a desk reads it: USDT to the cent; a coin (``settlement``)
    to the satoshi, named (0.02039474 BTC)."""
    if settlement is None:
        return f"{float(value):,.2f}"
    return f"{float(value):,.8f} {settlement}"


def opinion_sentence(o: dict[str, Any], settlement: str | None = None) -> str:
    """A triggered plan's second opinion in one sentence (docs/second-opinion.md)."""
    queue, pro_rata = o["queue"], o["pro_rata"]
    kappa = queue["utilisation"]
    times = "" if kappa is None else f" ({kappa:.1f}x)"
    text = (
        f"the queue closes {money_text(queue['haircut'], settlement)} of winners' profit where "
        f"{money_text(pro_rata['haircut'], settlement)} covers the deficit{times}"
    )
    if pro_rata["ratio"] is not None:
        text += f"; pro-rata takes {pro_rata['ratio']:.2%} of each winner's profit"
    if queue["top1_share"] is not None:
        text += f"; its top account bears {queue['top1_share']:.0%}"
    return text


# what a desk reads of ``adl_triggers``' ``rule`` where it is not the fund's exhaustion
RULE_WORDS = {
    "drawdown": "by the pool-drawdown rule",
    "negative_value": "by a value under water",
}


def rule_words(p: dict[str, Any]) -> str:
    """ " by the pool-drawdown rule" and the like; empty for the fund rule (or none)."""
    words = RULE_WORDS.get(p.get("rule") or "")
    return f" {words}" if words else ""


def slack_text(topic: str, p: dict[str, Any]) -> str:
    if topic == "adl_triggers":
        unit = f" {p['settlement']}" if p.get("settlement") else ""  # a coin fund's
        text = (
            f":rotating_light: ADL {p['stage']}{rule_words(p)} on {p['symbol']} ({p['fund']}): "
            f"projected loss {p['projected_loss']}{unit} vs fund {p['fund_balance']}{unit}, "
            f"shortfall {p['shortfall']}{unit}, {len(p['bankrupt'])} bankrupt, "
            f"{len(p['plan'])} positions in the plan"
        )
        if p.get("second_opinion"):
            opinion = opinion_sentence(p["second_opinion"], p.get("settlement"))
            text += f". Second opinion: {opinion}"
        return text
    text = (
        f"ADL rank light {p['previous_quantile']} -> {p['quantile']} for {p['account']} "
        f"{p['side']} {p['symbol']}"
    )
    shown = p.get("venue_indicator")
    if shown is not None and shown != p["quantile"]:  # e.g. Binance's adlQuantile 0-4
        text += f" (the venue shows {shown})"
    return text


def backoff_s(config: WebhookConfig, attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
    return rng.uniform(0, min(config.backoff_max_s, config.backoff_base_s * 2**attempt))


class Dispatcher:
    def __init__(self, settings: Settings, config: WebhookConfig, seed: int | None = None):
        self.settings = settings
        self.config = config
        self.topics = Topics(settings.topic_prefix)
        self.stats = DispatchStats()
        self.metrics = DispatchMetrics()
        self._producer: AIOKafkaProducer | None = None
        self._rng = random.Random(seed)  # noqa: S311  # retry jitter, not cryptography
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def deliver(
        self, session: aiohttp.ClientSession, msg_id: str, body: bytes
    ) -> Undelivered | None:
        """Post until the receiver accepts (2xx: ``None``), gives a final no (a redirect,
        a 4xx but 408/425/429) or ``max_age_s`` passes: then why, for the dead letter."""
        attempt = 0
        first_ms = int(time.time() * 1000)
        while not self._stop.is_set():
            self.stats.attempts += 1
            signed = headers(self.config.secret, msg_id, int(time.time()), body)
            try:
                async with session.post(
                    self.config.url, data=body, headers=signed, allow_redirects=False
                ) as resp:
                    status = resp.status
                    # at most 4 bytes a character: a huge answer is not read whole
                    head = await resp.content.read(4 * EXCERPT_CHARS)
                    answer = head.decode("utf-8", "replace")[:EXCERPT_CHARS]
            except (TimeoutError, aiohttp.ClientError) as exc:
                status, answer = 0, f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
            label = str(status) if status else answer.split(":", 1)[0]
            self.stats.by_status[label] = self.stats.by_status.get(label, 0) + 1
            self.metrics.answers.labels(label).inc()
            if 200 <= status < 300:
                return None
            now_ms = int(time.time() * 1000)
            final = 300 <= status < 500 and status not in RETRY_STATUSES
            if final or now_ms - first_ms >= self.config.max_age_s * 1000:
                reason = "refused" if final else "expired"
                return Undelivered(reason, status, answer, attempt + 1, first_ms, now_ms)
            self.stats.retries += 1
            await asyncio.sleep(backoff_s(self.config, attempt, self._rng))
            attempt += 1
        raise asyncio.CancelledError  # stopping: not delivered, so not committed

    async def _dead_letter(
        self, msg_id: str, topic: str, tp: TopicPartition, message: Any, why: Undelivered
    ) -> None:
        """Written (acks=all) before the source offset is committed; ``topic`` unprefixed."""
        letter = {
            "webhook_id": msg_id,
            "topic": topic,
            "partition": tp.partition,
            "offset": message.offset,
            "url": self.config.url,
            "reason": why.reason,
            "status": why.status,
            "answer": why.answer,
            "attempts": why.attempts,
            "first_attempt_ms": why.first_attempt_ms,
            "last_attempt_ms": why.last_attempt_ms,
        }
        assert self._producer is not None  # noqa: S101  # started in run()
        await self._producer.send_and_wait(
            self.topics.name(WEBHOOK_DEAD_LETTERS.name), orjson.dumps(letter), key=msg_id.encode()
        )
        self.stats.dead_letters += 1
        self.metrics.dead_letters.labels(why.reason).inc()
        log.error("webhook %s %s (status %d, %d attempts): dead-lettered",
                  msg_id, why.reason, why.status, why.attempts)  # fmt: skip

    async def _start(self, client: AIOKafkaConsumer | AIOKafkaProducer) -> bool:
        """Start a Kafka client, waiting for the broker with capped backoff (one line per
        try); ``False`` if stopped meanwhile. A broker that listens but refuses the client
        (credentials, certificates) raises: the caller exits with one line."""
        attempt = 0
        while not self._stop.is_set():
            try:
                await client.start()
                return True
            except KafkaConnectionError as exc:
                if self.settings.listening():
                    raise  # the broker is up and refused us: waiting will not help
                wait_s = min(KAFKA_WAIT_MAX_S, 0.5 * 2**attempt)
                log.warning("Kafka at %s not reachable (%s): retrying in %.1f s",
                            self.settings.bootstrap, exc, wait_s)  # fmt: skip
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=wait_s)
        return False

    async def run(self, stop_when_idle: bool = False) -> DispatchStats:
        names = [self.topics.name("adl_triggers")]
        if self.config.rank_alerts:
            names.append(self.topics.name("rank_alerts"))
        consumer = AIOKafkaConsumer(
            *names,
            **self.settings.client_options(),
            group_id=f"{self.settings.topic_prefix}{self.config.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        self._producer = producer = AIOKafkaProducer(
            **self.settings.client_options(), acks="all", enable_idempotence=True
        )
        started = False
        try:
            started = await self._start(producer) and await self._start(consumer)
        finally:
            if not started:  # stopped meanwhile, or refused: close both (each may be open)
                await producer.stop()
                await consumer.stop()
        if not started:
            return self.stats
        await ensure_topics(self.settings, self.topics, (WEBHOOK_DEAD_LETTERS,))
        log.info("webhooks: reading %s, posting to %s", ", ".join(names), self.config.url)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                while not self._stop.is_set():
                    batch = await consumer.getmany(timeout_ms=500, max_records=500)
                    if not batch and stop_when_idle:
                        return self.stats
                    for tp, messages in batch.items():
                        await self._partition(consumer, session, tp, messages)
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise
        finally:
            await consumer.stop()
            await producer.stop()
        return self.stats

    async def _partition(
        self,
        consumer: AIOKafkaConsumer,
        session: aiohttp.ClientSession,
        tp: TopicPartition,
        messages: list[Any],
    ) -> None:
        topic = self.topics.base(tp.topic)
        for message in messages:
            payload = orjson.loads(message.value)
            if selected(self.config, topic, payload):
                body = message.value
                if self.config.slack:
                    body = orjson.dumps({"text": slack_text(topic, payload)})
                msg_id = f"{topic}-{tp.partition}-{message.offset}"
                undelivered = await self.deliver(session, msg_id, body)
                if undelivered is None:
                    self.stats.delivered += 1
                    self.metrics.delivered.inc()
                else:
                    await self._dead_letter(msg_id, topic, tp, message, undelivered)
            else:
                self.stats.filtered += 1
            await consumer.commit({tp: message.offset + 1})
