"""Topic names, keys and schemas: the Kafka contract.

Input topics carry the same JSON objects as a ``replay`` file (``"type"`` optional: the
topic implies it); output topics carry the same payloads as the ``replay`` output files.
Names take an optional prefix (``ADL_TOPIC_PREFIX``), e.g. ``risk.fills``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key_field: str | None  # payload field used as the message key
    schema: str  # file in schemas/
    event_types: tuple[str, ...] = ()  # inputs: what the topic may carry
    compacted: bool = False
    single_partition: bool = False  # a clock: its order across keys matters


INPUTS = (
    TopicSpec("fills", "account", "topic.fills", ("fill",)),
    TopicSpec("balances", "account", "topic.balances", ("balance", "isolated_margin")),
    TopicSpec("position_config", "account", "topic.position_config", ("position_config",)),
    TopicSpec("mark_prices", "symbol", "topic.mark_prices", ("mark",), single_partition=True),
    # the fund desk (stage B) reads these whole, in order: one partition each
    TopicSpec("book_depth", "symbol", "topic.book_depth", ("depth",), single_partition=True),
    TopicSpec(
        "insurance_fund", "fund", "topic.insurance_fund", ("insurance_fund",), single_partition=True
    ),
)
OUTPUTS = (
    TopicSpec("account_risk", "account", "topic.account_risk", compacted=True),
    TopicSpec("liquidations", "symbol", "topic.liquidations"),
    TopicSpec("bankruptcies", "symbol", "topic.bankruptcies"),
    TopicSpec("adl_triggers", "symbol", "topic.adl_triggers"),
    TopicSpec("rank_alerts", "account", "topic.rank_alerts"),
    TopicSpec("insurance_projection", "fund", "topic.insurance_projection"),
    TopicSpec("dead_letters", None, "topic.dead_letters"),
)
# the webhook dispatcher's: messages it gave up on (notify.webhooks)
WEBHOOK_DEAD_LETTERS = TopicSpec("webhook_dead_letters", "webhook_id", "topic.webhook_dead_letters")
# the worker's own bookkeeping: the last output sequence committed (compacted)
PROGRESS = TopicSpec("worker_progress", None, "", compacted=True)
# its state, now and then: a start reads the last one and the input after it (compacted;
# one partition: the chunks of a snapshot and the header after them in order)
SNAPSHOTS = TopicSpec("worker_snapshots", None, "", compacted=True, single_partition=True)

# replay file name -> output topic
OUTPUT_FOR_FILE = {
    "accounts": "account_risk",
    "liquidations": "liquidations",
    "bankruptcies": "bankruptcies",
    "adl_triggers": "adl_triggers",
    "rank_alerts": "rank_alerts",
    "fund_projection": "insurance_projection",
    "dead_letters": "dead_letters",
}
TYPE_TO_INPUT = {t: spec for spec in INPUTS for t in spec.event_types}


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = ""

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def base(self, name: str) -> str:
        return name[len(self.prefix) :] if name.startswith(self.prefix) else name

    @property
    def inputs(self) -> list[str]:
        return [self.name(s.name) for s in INPUTS]

    def all_specs(self) -> list[TopicSpec]:
        return [*INPUTS, *OUTPUTS, PROGRESS, SNAPSHOTS]

    def input_for(self, event: dict[str, Any]) -> tuple[str, bytes | None]:
        """(topic, key) where a producer sends an input event."""
        spec = TYPE_TO_INPUT.get(str(event.get("type")))
        if spec is None:
            raise ValueError(f"no input topic carries type {event.get('type')!r}")
        key = event.get(spec.key_field) if spec.key_field else None
        return self.name(spec.name), None if key is None else str(key).encode()
