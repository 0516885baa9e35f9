"""Deliver ADL triggers and rank alerts to a webhook, exactly once per key.

The outbox is the output topics themselves: they are durable, and a message's place in
them (topic, partition, offset) is its idempotency key, sent as ``webhook-id``. The
dispatcher reads them in a consumer group (read_committed), posts each selected message
signed per Standard Webhooks, retries timeouts, connection errors, 429 and 5xx with
exponential backoff and full jitter, and commits a partition's offset only after the
receiver accepted the message. A restart resumes from the last commit, so nothing is
lost; a message posted but not committed before a crash is posted again with the same
``webhook-id``, which the receiver uses to drop the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.notify.signing import headers
from streams.pipeline.settings import Settings
from streams.pipeline.topics import Topics

log = logging.getLogger("adl_monitor.webhooks")
RETRY_STATUSES = {408, 425, 429}


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
    group_id: str = "adl-monitor-webhooks"


@dataclass(slots=True)
class DispatchStats:
    delivered: int = 0
    attempts: int = 0
    filtered: int = 0
    retries: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def selected(config: WebhookConfig, topic: str, payload: dict[str, Any]) -> bool:
    if topic == "adl_triggers":
        return str(payload.get("stage")) in config.stages
    return (
        config.rank_alerts
        and int(payload.get("quantile", 0)) >= config.min_light
        and Decimal(str(payload.get("notional", "0"))) >= config.min_notional
    )


def slack_text(topic: str, p: dict[str, Any]) -> str:
    if topic == "adl_triggers":
        return (
            f":rotating_light: ADL {p['stage']} on {p['symbol']} ({p['fund']}): projected loss "
            f"{p['projected_loss']} vs fund {p['fund_balance']}, shortfall {p['shortfall']}, "
            f"{len(p['bankrupt'])} bankrupt, {len(p['plan'])} positions in the plan"
        )
    return (
        f"ADL rank light {p['previous_quantile']} -> {p['quantile']} for {p['account']} "
        f"{p['side']} {p['symbol']}"
    )


def backoff_s(config: WebhookConfig, attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
    return rng.uniform(0, min(config.backoff_max_s, config.backoff_base_s * 2**attempt))


class Dispatcher:
    def __init__(self, settings: Settings, config: WebhookConfig, seed: int | None = None):
        self.settings = settings
        self.config = config
        self.topics = Topics(settings.topic_prefix)
        self.stats = DispatchStats()
        self._rng = random.Random(seed)  # noqa: S311  # retry jitter, not cryptography
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def deliver(self, session: aiohttp.ClientSession, msg_id: str, body: bytes) -> None:
        """Post until the receiver accepts (2xx) or gives a final no (other 4xx)."""
        attempt = 0
        while not self._stop.is_set():
            self.stats.attempts += 1
            signed = headers(self.config.secret, msg_id, int(time.time()), body)
            try:
                async with session.post(self.config.url, data=body, headers=signed) as resp:
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                status, reason = 0, type(exc).__name__
            else:
                reason = str(status)
            self.stats.by_status[reason] = self.stats.by_status.get(reason, 0) + 1
            if 200 <= status < 300:
                return
            if 400 <= status < 500 and status not in RETRY_STATUSES:
                log.error("webhook %s refused with %d: dropped", msg_id, status)
                return
            self.stats.retries += 1
            await asyncio.sleep(backoff_s(self.config, attempt, self._rng))
            attempt += 1
        raise asyncio.CancelledError  # stopping: not delivered, so not committed

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
        await consumer.start()
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
                await self.deliver(session, msg_id, body)
                self.stats.delivered += 1
            else:
                self.stats.filtered += 1
            await consumer.commit({tp: message.offset + 1})
