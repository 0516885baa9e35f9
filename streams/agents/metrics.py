"""Prometheus metrics of the agents: their own counters, read at scrape time, beside the
single-process worker's output metrics (``pipeline.metrics.Metrics``, fed with every
message the agents write: dead letters, triggers, the fund's projection), so the
dashboards and alert rules apply to both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from streams.agents.app import AccountAgents


class AgentCollector(Collector):
    def __init__(self, agents: AccountAgents) -> None:
        self.agents = agents

    def collect(self) -> Iterator[Metric]:
        stats = self.agents.stats
        per_partition = {
            "applied": ("adl_agent_events_applied", "Input events applied to the state"),
            "redelivered": ("adl_agent_events_redelivered", "Events seen again and skipped"),
            "late": ("adl_agent_events_late", "Events applied after later ones (out of order)"),
        }
        shards = sorted(self.agents.shards.items())
        for field, (name, doc) in per_partition.items():
            family = CounterMetricFamily(name, doc, labels=["partition"])
            for p, shard in shards:
                family.add_metric([str(p)], getattr(shard.stats, field))
            yield family
        buffered = GaugeMetricFamily(
            "adl_agent_buffered_events",
            "Events waiting for the clock (marks) or a slower input",
            labels=["partition"],
        )
        for p, shard in shards:
            buffered.add_metric([str(p)], len(shard.sequencer))
        yield buffered
        warm = GaugeMetricFamily(
            "adl_agent_warm_copy_accounts",
            "Accounts in the warm copy this process keeps of a partition another owns (read "
            "as a standby): the partition is taken over from it if its owner dies",
            labels=["partition"],
        )
        for p, copy in sorted(dict(self.agents.warm.copies).items()):  # a copy: atomic
            warm.add_metric([str(p)], len(copy.accounts))
        yield warm
        lag = GaugeMetricFamily(
            "adl_agent_standby_lag_rows",
            "Rows of a table's changelog partition its standby here has not applied yet: "
            "a takeover reads them before its first output (Faust applies a standby's rows "
            "in batches of 100: at idle up to 99 wait; it read ~3,000 account rows/s in a "
            "recovery; a rankings row holds up to 5,000 positions; NaN: the changelog's "
            "end not known yet)",
            labels=["table", "partition"],
        )
        for (table, p), rows in sorted(self.agents.standby_lag_rows().items()):
            lag.add_metric([table, str(p)], rows)
        yield lag
        yield GaugeMetricFamily(
            "adl_agent_caught_up",
            "1 when every input of the partitions (and the desk) this process holds is "
            "delivered and applied",
            value=1.0 if self.agents.caught_up() else 0.0,
        )
        fan_out = self.agents.fan_out
        roles = GaugeMetricFamily(
            "adl_agent_holds",
            "1 while this process holds the role: the mark fan-out (mark_prices assigned "
            "here) or the fund desk (its inputs assigned here); which process to look at",
            labels=["role"],
        )
        roles.add_metric(["mark_fan_out"], 1.0 if fan_out.assignment() else 0.0)
        roles.add_metric(["fund_desk"], 1.0 if self.agents.holds_desk() else 0.0)
        yield roles
        yield CounterMetricFamily(
            "adl_agent_marks_fanned_out", "Marks copied to every account partition",
            value=fan_out.marks_fanned_out,
        )  # fmt: skip
        yield CounterMetricFamily(
            "adl_agent_fanout_commits_refused",
            "Fan-out batches whose commit a rebalance refused (re-read: copies, no loss)",
            value=fan_out.commits_refused,
        )
        yield CounterMetricFamily(
            "adl_agent_fanout_restarts",
            "Mark fan-out runs ended by an error and started again (see the log)",
            value=fan_out.restarts,
        )
        yield CounterMetricFamily(
            "adl_agent_skipped_acks_refused",
            "Acknowledgements Faust made for events its streams skipped at a rebalance, "
            "refused (the events are delivered again, not committed unhandled)",
            value=self.agents.acks.refused,
        )
        reseeks = CounterMetricFamily(
            "adl_agent_reseeks",
            "Input partitions sought back to their next offset due: a later offset was "
            "delivered (ahead), or the Kafka client read on past offsets never delivered "
            "(passed: Faust dropped them at a resume)",
            labels=["why"],
        )
        reseeks.add_metric(["ahead"], self.agents.in_order.seeks)
        reseeks.add_metric(["passed"], stats.passed_sought)
        yield reseeks
        resumed = CounterMetricFamily(
            "adl_agent_partitions_resumed",
            "Account partitions this process started work on: restored from the changelog "
            "(first start, or moved here), taken over from a warm copy (a standby's partition "
            "moved here) or taken up again after a rebalance gave them back",
            labels=["how"],
        )
        resumed.add_metric(["restored"], stats.restored)
        resumed.add_metric(["taken_up"], stats.taken_up)
        resumed.add_metric(["warm"], stats.warmed)
        yield resumed
        gaps = CounterMetricFamily(
            "adl_agent_mark_gaps",
            "Marks received by an account partition whose forwarded predecessor never arrived",
            labels=["partition"],
        )
        for p in range(self.agents.settings.partitions):
            gaps.add_metric([str(p)], stats.mark_gaps.get(p, 0))
        yield gaps
