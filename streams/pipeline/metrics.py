"""Prometheus metrics fed by the worker's outputs (the engine never calls them).

Bounded cardinality: labels are fund, symbol, side, stage, topic and the dead-letter
reason (one of a fixed few); never an account. The full set for the risk desk comes
with the observability issue; these are what ``demo`` and the worker need now.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams.engine.fixed import to_float
from streams.engine.instruments import HOME_SETTLEMENT, Instrument
from streams.engine.signals import TOP_SCORES, SideSummary
from streams.pipeline.memory import FullCollections, process_collections
from streams.pipeline.worker import Output, Worker


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


DEAD_LETTER_REASONS = (
    "invalid_json",
    "invalid_field",
    "unknown_symbol",
    "too_large",
    "internal_error",
    "implausible",
)
STAGES = ("imminent", "triggered", "cleared")
COVERAGE_WINDOW_S = 15.0  # adl_fund_coverage_ratio_min_15s


def dead_letter_reason(field: str | None, error: str) -> str:
    """A small fixed set of reasons (the field itself is in the dead letter)."""
    if field in (None, "$"):
        return "invalid_json"
    if field == "$size":
        return "too_large"
    if field == "$apply":
        return "internal_error"
    if ": implausible: " in error:  # engine.sanity
        return "implausible"
    if "unknown symbol" in error:
        return "unknown_symbol"
    return "invalid_field"


def _or_nan(value: float | None) -> float:
    """A payload's null (undefined) as a gauge's NaN."""
    return float("nan") if value is None else value


class FullCollectionsCollector:
    """Python's full collections (``pipeline.memory``), read at each scrape: the
    collector's callback only counts (it may not take the client's locks)."""

    def __init__(self, collections: FullCollections) -> None:
        self.collections = collections

    def collect(self) -> Iterable[Metric]:
        c = self.collections
        yield CounterMetricFamily(
            "adl_gc_full_collections",
            "Python's full (generation 2) collections: the whole process waits for each",
            value=c.count,
        )
        yield CounterMetricFamily(
            "adl_gc_full_collection_seconds", "Wall time spent in them", value=c.total_s
        )
        yield GaugeMetricFamily(
            "adl_gc_full_collection_longest_seconds",
            "The longest since the process started",
            value=c.longest_ever_s,
        )


class Metrics:
    def __init__(
        self,
        instruments: Mapping[str, Instrument] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        instruments = instruments or {}
        symbols = sorted(instruments)
        # the ``_usd`` gauges are in USD: a coin-settled figure at its coin's USD price,
        # the latest mark of an inverse symbol settled in it (NaN till one is seen)
        self._settlement = {sym: inst.settlement for sym, inst in instruments.items()}
        self._inverse = {sym for sym, inst in instruments.items() if inst.inverse}
        self.usd_per: dict[str, float] = {HOME_SETTLEMENT: 1.0}
        self.outputs = Counter("adl_outputs_total", "Messages written, by topic", ["topic"],
                               registry=r)  # fmt: skip
        self.dead_letters = Counter(
            "adl_dead_letters_total", "Rejected input messages, by field", ["reason"], registry=r
        )
        self.liquidations = Counter(
            "adl_liquidations_total", "Positions that became liquidatable", ["symbol", "side"],
            registry=r,
        )  # fmt: skip
        self.bankruptcies = Counter(
            "adl_bankruptcies_total", "Positions that went past bankruptcy", ["symbol", "side"],
            registry=r,
        )  # fmt: skip
        self.rank_alerts = Counter(
            "adl_rank_alerts_total", "Rank light changes, by the new light", ["symbol", "light"],
            registry=r,
        )  # fmt: skip
        self.triggers = Counter(
            "adl_triggers_total", "ADL stage changes", ["symbol", "stage"], registry=r
        )
        self.fund_balance = Gauge(
            "adl_fund_balance_usd", "Insurance fund (a coin fund: at its coin's latest mark)",
            ["fund"], registry=r,
        )  # fmt: skip
        self.projected_loss = Gauge(
            "adl_fund_projected_loss_usd", "Projected loss now (a coin fund: at its coin's latest"
            " mark)", ["fund"], registry=r,
        )  # fmt: skip
        self.fund_settlement = Gauge(
            "adl_fund_settlement_info", "1 for the currency each fund pays in (USDT, or a coin"
            " for inverse symbols)", ["fund", "settlement"], registry=r,
        )  # fmt: skip
        for inst in instruments.values():
            self.fund_settlement.labels(inst.fund, inst.settlement).set(1)
        self.coverage = Gauge(
            "adl_fund_coverage_ratio", "Fund / projected loss (+Inf: no loss)", ["fund"],
            registry=r,
        )  # fmt: skip
        self.coverage_min = Gauge(
            "adl_fund_coverage_ratio_min_15s",
            "Lowest fund / projected loss of the last 15 s: a dip between scrapes stays seen",
            ["fund"], registry=r,
        )  # fmt: skip
        self._coverage_seen: dict[str, deque[tuple[float, float]]] = defaultdict(deque)
        self.distance = Gauge(
            "adl_distance_ratio", "Adverse move that starts ADL by the venue rule (NaN: none)",
            ["symbol", "side"], registry=r,
        )  # fmt: skip
        self.pool_pnl_ratio = Gauge(
            "adl_pool_pnl_ratio", "Bybit's pnlRatio where a pool-drawdown rule is in force:"
            " (symbol PnL - window max) / pool window max balance; when=after_loss: once the"
            " pool books the symbol's loss now (NaN: no rule in force)",
            ["fund", "symbol", "when"], registry=r,
        )  # fmt: skip
        self.pool_pnl_ratio_edge = Gauge(
            "adl_pool_pnl_ratio_edge", "The pool-drawdown rule's ratios: ADL below trigger,"
            " until back above stop (NaN: the symbol has no such rule)",
            ["fund", "symbol", "edge"], registry=r,
        )  # fmt: skip
        for inst in instruments.values():
            rule = inst.drawdown_rule
            edges = {"trigger": float("nan"), "stop": float("nan")}
            if rule is not None:
                edges = {"trigger": to_float(rule.trigger_ratio), "stop": to_float(rule.stop_ratio)}
            for edge, ratio in edges.items():
                self.pool_pnl_ratio_edge.labels(inst.fund, inst.symbol, edge).set(ratio)
        self.runway = Gauge(
            "adl_fund_runway_seconds", "Fund depletion at the recent drawdown rate (NaN: none)",
            ["fund"], registry=r,
        )  # fmt: skip
        self.ladder = Gauge(
            "adl_fund_ladder_loss_usd", "Projected loss if the symbol moved by shock_pct",
            ["fund", "symbol", "shock_pct"], registry=r,
        )  # fmt: skip
        by_side = ["symbol", "side"]
        self.open_interest = Gauge("adl_open_interest", "Open interest, base units", by_side,
                                   registry=r)  # fmt: skip
        self.positions = Gauge(
            "adl_positions", "Open positions by ADL rank light (0: not ranked yet)",
            [*by_side, "light"], registry=r,
        )  # fmt: skip
        self.liquidatable = Gauge("adl_liquidatable_positions", "Liquidatable, not bankrupt",
                                  by_side, registry=r)  # fmt: skip
        self.bankrupt = Gauge("adl_bankrupt_positions", "Past bankruptcy", by_side, registry=r)
        self.bankrupt_deficit = Gauge(
            "adl_bankrupt_deficit_usd", "Loss beyond bankruptcy at the mark", by_side, registry=r
        )
        self.top_score = Gauge(
            "adl_top_candidate_score", "ADL queue's first scores, by place (not by account)",
            [*by_side, "place"], registry=r,
        )  # fmt: skip
        # a triggered plan's second opinion (streams/engine/second_opinion.py), the last
        self.queue_utilisation = Gauge(
            "adl_queue_utilisation_ratio",
            "Last triggered plan: winners' profit it closes / min(deficit, winners' profit)"
            " (kappa; NaN: nothing to cover or no winners)", ["symbol"], registry=r,
        )  # fmt: skip
        self.queue_overshoot = Gauge(
            "adl_queue_overshoot_usd",
            "Last triggered plan: winners' profit it closes - min(deficit, winners' profit)",
            ["symbol"], registry=r,
        )  # fmt: skip
        self.pro_rata_ratio = Gauge(
            "adl_pro_rata_haircut_ratio",
            "Last triggered plan: the share of each winner's profit a pro-rata ADL would"
            " take (lambda; NaN: no winners)", ["symbol"], registry=r,
        )  # fmt: skip
        self.queue_top_share = Gauge(
            "adl_queue_top_account_share",
            "Last triggered plan: the share of its haircut borne by its top account (NaN: none)",
            ["symbol"], registry=r,
        )  # fmt: skip
        self.mark_age = Gauge(
            "adl_mark_price_age_seconds", "Since the symbol's last mark price arrived",
            ["symbol"], registry=r,
        )  # fmt: skip
        self.late = Counter(
            "adl_late_events_total",
            "Input events that came later than the allowed lateness: applied out of order",
            registry=r,
        )
        self._late_seen = 0
        self.snapshots = Counter(
            "adl_worker_snapshots_total",
            "Worker snapshots written, or failed (a forked child died or failed: not made)",
            ["result"], registry=r,
        )  # fmt: skip
        for result in ("written", "failed"):
            self.snapshots.labels(result)
        self._snapshots_seen = {"written": 0, "failed": 0}
        self.snapshot_held = Gauge(
            "adl_worker_snapshot_loop_held_seconds",
            "How long the worker's loop waited for its last snapshot written", registry=r,
        )  # fmt: skip
        self.lag = Gauge("adl_consumer_lag_messages", "Input not yet consumed", ["topic"],
                         registry=r)  # fmt: skip
        self.latency = Histogram(
            "adl_event_latency_seconds", "Input arrival to outputs committed",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )  # fmt: skip
        self.commit_latency = Histogram(
            "adl_commit_latency_seconds", "Writing one batch of outputs (a transaction)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )  # fmt: skip
        r.register(FullCollectionsCollector(process_collections()))
        self._summarised_at = 0.0
        self.view = DeskView()
        # every series exists from the start at 0, so increase() sees the first event
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for symbol in symbols:
            for stage in STAGES:
                self.triggers.labels(symbol, stage)
            for side in ("long", "short"):
                self.liquidations.labels(symbol, side)
                self.bankruptcies.labels(symbol, side)
            for light in range(1, 6):
                self.rank_alerts.labels(symbol, str(light))

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
            if payload.get("second_opinion") is not None:
                self._second_opinion(payload["symbol"], payload["second_opinion"])
        elif out.topic == "insurance_projection":
            self._projection(orjson.loads(out.value))
        elif out.topic in ("liquidations", "bankruptcies"):
            payload = orjson.loads(out.value)
            counter = self.liquidations if out.topic == "liquidations" else self.bankruptcies
            counter.labels(payload["symbol"], payload["side"]).inc()
        elif out.topic == "rank_alerts":
            payload = orjson.loads(out.value)
            self.rank_alerts.labels(payload["symbol"], str(payload["quantile"])).inc()

    def tick(self, worker: Worker, every_s: float = 1.0) -> None:
        """Pipeline numbers on every loop; engine summaries at most every ``every_s``."""
        self.pipeline(
            worker.latencies_s, worker.commit_s, worker.stats.late_events, worker.lag,
            worker.mark_arrived_at,
        )  # fmt: skip
        worker.latencies_s.clear()
        worker.commit_s.clear()
        stats = worker.stats
        for result, count in (("written", stats.snapshots), ("failed", stats.snapshot_failures)):
            self.snapshots.labels(result).inc(count - self._snapshots_seen[result])
            self._snapshots_seen[result] = count
        if stats.snapshots:
            self.snapshot_held.set(stats.last_snapshot_held_s)
        if self.due(every_s):
            engine = worker.engine
            self.sides(engine.instruments, engine.side_summary)

    def pipeline(
        self,
        latencies_s: Iterable[float],
        commit_s: Iterable[float],
        late_events: int,
        lag: Mapping[str, int],
        mark_arrived_at: Mapping[str, float],
    ) -> None:
        """Latencies and commit times since the last call, the late events' running
        count, the consumer lag by topic, the wall time each symbol's last mark came."""
        for seconds in latencies_s:
            self.latency.observe(seconds)
        for seconds in commit_s:
            self.commit_latency.observe(seconds)
        self.late.inc(late_events - self._late_seen)
        self._late_seen = late_events
        for topic, messages in lag.items():
            self.lag.labels(topic).set(messages)
        now = time.time()
        for symbol, at in mark_arrived_at.items():
            self.mark_age.labels(symbol).set(now - at)

    def due(self, every_s: float) -> bool:
        """At most every ``every_s``: the 15 s coverage minima moved on, and ``True``
        (time for the dashboards' engine summaries, ``sides``)."""
        now = time.time()
        if now - self._summarised_at < every_s:
            return False
        self._summarised_at = now
        for fund in self._coverage_seen:
            self._coverage_low(fund)
        return True

    def sides(self, symbols: Iterable[str], summary: Callable[[str, str], SideSummary]) -> None:
        """Each side's dashboard numbers (``summary(symbol, side)``)."""
        for symbol in sorted(symbols):
            for side in ("long", "short"):
                self._side(symbol, side, summary(symbol, side))

    def _coverage_low(self, fund: str) -> None:
        """The window's minimum; the newest value stays however old (it is current)."""
        seen = self._coverage_seen[fund]
        while len(seen) > 1 and time.monotonic() - seen[0][0] > COVERAGE_WINDOW_S:
            seen.popleft()
        self.coverage_min.labels(fund).set(min(value for _, value in seen))

    def _side(self, symbol: str, side: str, s: SideSummary) -> None:
        self.open_interest.labels(symbol, side).set(to_float(s.open_interest))
        for light, count in enumerate(s.positions_by_light):
            self.positions.labels(symbol, side, str(light)).set(count)
        self.liquidatable.labels(symbol, side).set(s.liquidatable)
        self.bankrupt.labels(symbol, side).set(s.bankrupt)
        deficit = to_float(s.bankrupt_deficit) * self._usd_per(self._settlement.get(symbol))
        self.bankrupt_deficit.labels(symbol, side).set(deficit)
        for place in range(1, TOP_SCORES + 1):
            score = s.top_scores[place - 1] if place <= len(s.top_scores) else float("nan")
            self.top_score.labels(symbol, side, str(place)).set(score)

    def _second_opinion(self, symbol: str, o: dict[str, Any]) -> None:
        self.queue_utilisation.labels(symbol).set(_or_nan(o["queue"]["utilisation"]))
        usd = self._usd_per(self._settlement.get(symbol))
        self.queue_overshoot.labels(symbol).set(float(o["queue"]["overshoot"]) * usd)
        self.pro_rata_ratio.labels(symbol).set(_or_nan(o["pro_rata"]["ratio"]))
        self.queue_top_share.labels(symbol).set(_or_nan(o["queue"]["top1_share"]))

    def _usd_per(self, currency: str | None) -> float:
        """USD per unit of ``currency`` (``None``: USDT), NaN while unknown."""
        return self.usd_per.get(currency or HOME_SETTLEMENT, float("nan"))

    def _projection(self, p: dict[str, Any]) -> None:
        fund = p["fund"]
        settlement = p.get("settlement", HOME_SETTLEMENT)
        for s in p["symbols"]:  # an inverse symbol's mark: USD per coin of its fund
            if s["symbol"] in self._inverse and s["mark_price"] is not None:
                self.usd_per[settlement] = float(s["mark_price"])
        usd = self._usd_per(settlement)
        balance, loss = float(p["fund_balance"]), float(p["projected_loss"])
        self.fund_balance.labels(fund).set(balance * usd)
        self.projected_loss.labels(fund).set(loss * usd)
        cover = p["coverage_ratio"]
        coverage = float("inf") if cover is None else cover
        self.coverage.labels(fund).set(coverage)
        self._coverage_seen[fund].append((time.monotonic(), coverage))
        self._coverage_low(fund)
        runway = p["runway_seconds"]
        self.runway.labels(fund).set(_or_nan(runway))
        self.view.fund_balance[fund], self.view.projected_loss[fund] = balance, loss
        self.view.coverage[fund] = cover
        for s in p["symbols"]:
            for point in s["ladder"]:
                shock = f"{point['shock_pct']:g}"
                loss_usd = float(point["projected_loss"]) * usd
                self.ladder.labels(fund, s["symbol"], shock).set(loss_usd)
            for when, key in (
                ("now", "pool_pnl_ratio"),
                ("after_loss", "pool_pnl_ratio_after_loss"),
            ):
                self.pool_pnl_ratio.labels(fund, s["symbol"], when).set(_or_nan(s.get(key)))
            for side in ("long", "short"):
                pct = s[f"adl_distance_{side}_pct"]
                self.distance.labels(s["symbol"], side).set(
                    float("nan") if pct is None else pct / 100
                )
                self.view.distance_pct[(s["symbol"], side)] = pct
