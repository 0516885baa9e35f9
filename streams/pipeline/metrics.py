"""Prometheus metrics fed by the worker's outputs (the engine never calls them).

Bounded cardinality: labels are fund, symbol, side, stage, topic and the dead-letter
reason (one of a fixed few); never an account. The full set for the risk desk comes
with the observability issue; these are what ``demo`` and the worker need now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.pipeline.worker import Output


@dataclass(slots=True)
class DeskView:
    """The latest numbers a person watches in the demo summary."""

    fund_balance: dict[str, float] = field(default_factory=dict)
    projected_loss: dict[str, float] = field(default_factory=dict)
    coverage: dict[str, float | None] = field(default_factory=dict)
    distance_pct: dict[tuple[str, str], float | None] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)  # symbol -> last stage
    triggers: int = 0
    dead_letters: int = 0


DEAD_LETTER_REASONS = ("invalid_json", "invalid_field", "unknown_symbol")
STAGES = ("imminent", "triggered", "cleared")


def dead_letter_reason(field: str | None, error: str) -> str:
    """A small fixed set of reasons (the field itself is in the dead letter)."""
    if field in (None, "$"):
        return "invalid_json"
    if "unknown symbol" in error:
        return "unknown_symbol"
    return "invalid_field"


class Metrics:
    def __init__(
        self, symbols: Iterable[str] = (), registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.outputs = Counter("adl_outputs_total", "Messages written, by topic", ["topic"],
                               registry=r)  # fmt: skip
        self.dead_letters = Counter(
            "adl_dead_letters_total", "Rejected input messages, by field", ["reason"], registry=r
        )
        self.triggers = Counter(
            "adl_triggers_total", "ADL stage changes", ["symbol", "stage"], registry=r
        )
        self.fund_balance = Gauge("adl_fund_balance_usd", "Insurance fund", ["fund"], registry=r)
        self.projected_loss = Gauge(
            "adl_fund_projected_loss_usd", "Projected loss now", ["fund"], registry=r
        )
        self.coverage = Gauge(
            "adl_fund_coverage_ratio", "Fund / projected loss (+Inf: no loss)", ["fund"],
            registry=r,
        )  # fmt: skip
        self.distance = Gauge(
            "adl_distance_ratio", "Adverse move that exhausts the fund (NaN: none)",
            ["symbol", "side"], registry=r,
        )  # fmt: skip
        self.view = DeskView()
        # every series exists from the start at 0, so increase() sees the first event
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for symbol in symbols:
            for stage in STAGES:
                self.triggers.labels(symbol, stage)

    def observe(self, out: Output) -> None:
        self.outputs.labels(out.topic).inc()
        if out.topic == "dead_letters":
            payload = orjson.loads(out.value)
            reason = dead_letter_reason(payload.get("field"), payload.get("error", ""))
            self.dead_letters.labels(reason).inc()
            self.view.dead_letters += 1
        elif out.topic == "adl_triggers":
            payload = orjson.loads(out.value)
            self.triggers.labels(payload["symbol"], payload["stage"]).inc()
            self.view.stages[payload["symbol"]] = payload["stage"]
            self.view.triggers += payload["stage"] == "triggered"
        elif out.topic == "insurance_projection":
            self._projection(orjson.loads(out.value))

    def _projection(self, p: dict[str, Any]) -> None:
        fund = p["fund"]
        balance, loss = float(p["fund_balance"]), float(p["projected_loss"])
        self.fund_balance.labels(fund).set(balance)
        self.projected_loss.labels(fund).set(loss)
        cover = p["coverage_ratio"]
        self.coverage.labels(fund).set(float("inf") if cover is None else cover)
        self.view.fund_balance[fund], self.view.projected_loss[fund] = balance, loss
        self.view.coverage[fund] = cover
        for s in p["symbols"]:
            for side in ("long", "short"):
                pct = s[f"adl_distance_{side}_pct"]
                self.distance.labels(s["symbol"], side).set(
                    float("nan") if pct is None else pct / 100
                )
                self.view.distance_pct[(s["symbol"], side)] = pct
