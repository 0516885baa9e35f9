"""Metric cardinality does not grow with the number of accounts (DESIGN.md section 5)."""

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams import wire
from streams.pipeline.metrics import Metrics
from streams.pipeline.settings import Settings
from streams.pipeline.topics import OUTPUT_FOR_FILE
from streams.pipeline.worker import Output, Worker
from tests.helpers import SECOND_OPINION, bundled_instruments, deposit, fill, fund, mark

INSTRUMENTS = bundled_instruments()


def series_after(accounts: int) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    metrics = Metrics(INSTRUMENTS, CollectorRegistry())
    worker = Worker(Settings(), INSTRUMENTS)
    events = [fund("100000")]
    for i in range(accounts):
        events.append(deposit(f"d{i}", f"a{i}", "1000"))
        side = "buy" if i % 2 else "sell"
        events.append(fill(f"f{i}", f"a{i}", side, "0.1", "60000", ts=1))
    for ts, price in enumerate(("60000", "57000", "52000", "50000"), start=2):
        events.append(mark("BTCUSDT", price, ts=ts * 1000))
    for event in events:
        for signal in worker.engine.apply(event):
            stream, payload = wire.render(signal)
            metrics.observe(Output(OUTPUT_FOR_FILE[stream], None, orjson.dumps(payload), 0))
    worker.latencies_s.extend([0.01, 0.2])
    metrics.tick(worker, every_s=0)
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in metrics.registry.collect()
        for sample in family.samples
    }


def test_series_do_not_grow_with_accounts():
    few, many = series_after(10), series_after(400)
    assert few == many
    assert len(many) < 400  # and no series per account
    names = {name for name, _ in many}
    assert "adl_positions" in names
    assert "adl_top_candidate_score" in names
    assert not any("account" in dict(labels) for _, labels in many)


def test_every_dead_letter_reason_is_exported_from_the_start() -> None:
    # a reason's counter exists at 0 before its first dead letter (rate() and alerts need it)
    from streams.pipeline.metrics import DEAD_LETTER_REASONS, dead_letter_reason

    examples = [(None, ""), ("$", ""), ("qty", "qty: bad"), ("symbol", "unknown symbol"),
                ("$size", ""), ("$apply", ""), ("ts", "ts: implausible: ahead")]  # fmt: skip
    reasons = {dead_letter_reason(field, error) for field, error in examples}
    assert reasons == set(DEAD_LETTER_REASONS)


def test_a_triggered_plans_second_opinion_is_exported_by_symbol() -> None:
    metrics = Metrics(INSTRUMENTS, CollectorRegistry())
    trigger = {"symbol": "ETHUSDT", "stage": "triggered", "second_opinion": SECOND_OPINION}
    metrics.observe(Output("adl_triggers", None, orjson.dumps(trigger), 0))
    # an imminent stage has no opinion: the last plan's numbers stay
    later = {"symbol": "ETHUSDT", "stage": "imminent", "second_opinion": None}
    metrics.observe(Output("adl_triggers", None, orjson.dumps(later), 0))

    def value(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"symbol": "ETHUSDT"})

    assert value("adl_queue_utilisation_ratio") == 50 / 26
    assert value("adl_queue_overshoot_usd") == 24.0
    assert value("adl_pro_rata_haircut_ratio") == 0.26
    assert value("adl_queue_top_account_share") == 0.8
    assert value("adl_queue_utilisation_ratio") is not None
    assert (
        metrics.registry.get_sample_value("adl_queue_overshoot_usd", {"symbol": "BTCUSDT"}) is None
    )


def test_a_coin_funds_money_is_exported_in_usd_at_its_coins_mark() -> None:
    # the inverse book of tests/unit/engine/test_inverse.py: alice 5,000 BTCUSD long at
    # 8,000, 50x isolated (margin 0.0125 BTC), bob short; fund 0.005 BTC. At 7,600:
    # alice's deficit 5,000 (1/7,600 - 1/8,000) - 0.0125 = 0.02039473... BTC, i.e.
    # 155.0000 USD at 7,600; the fund 0.005 BTC = 38 USD.
    from tests.helpers import ev, isolated
    from tests.unit.engine.test_inverse import coin, inverse_book

    instruments = inverse_book(linear=False)
    metrics = Metrics(instruments, CollectorRegistry())
    worker = Worker(Settings(), instruments)
    events = [
        coin("d-a", "alice", "1"),
        coin("d-b", "bob", "1"),
        isolated("alice", "BTCUSD", "50"),
        fill("f1", "alice", "buy", "5000", "8000", symbol="BTCUSD"),
        fill("f2", "bob", "sell", "5000", "8000", symbol="BTCUSD"),
        ev("insurance_fund", ts=1, fund="BTC-inverse", balance="0.005"),
        mark("BTCUSD", "8000", ts=2),
        mark("BTCUSD", "7600", ts=2000),
    ]
    for event in events:
        for signal in worker.engine.apply(event):
            stream, payload = wire.render(signal)
            metrics.observe(Output(OUTPUT_FOR_FILE[stream], None, orjson.dumps(payload), 0))
    metrics.tick(worker, every_s=0)
    value = metrics.registry.get_sample_value
    assert value("adl_fund_settlement_info", {"fund": "BTC-inverse", "settlement": "BTC"}) == 1
    assert value("adl_fund_balance_usd", {"fund": "BTC-inverse"}) == pytest.approx(38.0)
    deficit = value("adl_bankrupt_deficit_usd", {"symbol": "BTCUSD", "side": "long"})
    assert deficit == pytest.approx(155.0, abs=0.001)
    assert value("adl_open_interest", {"symbol": "BTCUSD", "side": "long"}) == 5000


def test_a_pools_pnl_ratio_and_its_rules_edges_are_exported() -> None:
    # the drawdown book of tests/unit/engine/test_drawdown.py: pool 40, XUSDT's PnL in it
    # 10 then 4 (X = -6, M = 40): pnlRatio -0.15, and -0.375 once L's deficit of 9 at 89
    # is booked; Bybit's edges -0.3 (trigger) and -0.25 (stop)
    from tests.helpers import one_bankruptcy_book

    engine = one_bankruptcy_book("40", fund_table={"drawdown_min_balance": "1"})
    metrics = Metrics(engine.instruments, CollectorRegistry())
    engine.apply(fund("40", 0, "F", symbol="XUSDT", symbol_pnl="10"))
    engine.apply(fund("40", 1_000, "F", symbol="XUSDT", symbol_pnl="4"))
    engine.apply(mark("XUSDT", "89", 4_000))
    stream, payload = wire.render(engine.projection("F", 4_000))
    metrics.observe(Output(OUTPUT_FOR_FILE[stream], None, orjson.dumps(payload), 0))

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"fund": "F", "symbol": "XUSDT", **labels})

    assert value("adl_pool_pnl_ratio", when="now") == pytest.approx(-0.15)
    assert value("adl_pool_pnl_ratio", when="after_loss") == pytest.approx(-0.375)
    assert value("adl_pool_pnl_ratio_edge", edge="trigger") == -0.3
    assert value("adl_pool_pnl_ratio_edge", edge="stop") == -0.25


def test_pythons_full_collections_are_exported() -> None:
    """Each full collection stops the process (seconds at the preset's scale): the desk
    sees how many, how long in all and the longest (``pipeline.memory``)."""
    import gc

    metrics = Metrics(INSTRUMENTS, CollectorRegistry())
    value = metrics.registry.get_sample_value
    before = value("adl_gc_full_collections_total")
    spent = value("adl_gc_full_collection_seconds_total")
    assert before is not None
    assert spent is not None
    gc.collect()
    assert value("adl_gc_full_collections_total") == before + 1
    assert value("adl_gc_full_collection_seconds_total") > spent
    assert value("adl_gc_full_collection_longest_seconds") > 0
    gc.collect(0)  # the youngest generation only: not counted
    assert value("adl_gc_full_collections_total") == before + 1
