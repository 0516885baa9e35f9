"""Coin-settled symbols outside the engine: the partitioned path refuses them (not built
there yet); the worker's read API answers each wallet of an account."""

from __future__ import annotations

import pytest

from streams.agents.app import check_settlements
from streams.engine.errors import ConfigError
from tests.helpers import bundled_instruments
from tests.unit.engine.test_inverse import inverse_book


def test_the_agents_take_usdt_symbols_and_refuse_a_coin_settled_one() -> None:
    check_settlements(bundled_instruments())  # nothing raised: every bundled one is USDT
    with pytest.raises(ConfigError, match="BTCUSD settle outside USDT"):
        check_settlements(inverse_book())


def test_the_read_api_answers_each_wallet_of_an_account() -> None:
    from streams.engine.engine import Engine
    from streams.pipeline.web import account_answer
    from tests.helpers import deposit, schema_validator
    from tests.unit.engine.test_inverse import coin

    engine = Engine(inverse_book())
    engine.apply(coin("d1", "alice", "1.5"))
    engine.apply(deposit("d2", "alice", "100"))
    status, usdt = account_answer(engine, "alice")
    assert (status, usdt["wallet_balance"], "settlement" in usdt) == (200, "100", False)
    status, btc = account_answer(engine, "alice", "BTC")
    assert (status, btc["wallet_balance"], btc["settlement"]) == (200, "1.5", "BTC")
    schema_validator("topic.account_risk").validate(btc)
    status, _ = account_answer(engine, "alice", "ETH")
    assert status == 404


def test_the_worker_keys_a_coin_wallets_lines_apart_from_the_usdt_wallets() -> None:
    # account_risk is a compacted topic: one key per wallet, or the USDT row would be
    # replaced by the BTC one (and the other way round)
    import orjson

    from streams.pipeline.settings import Settings
    from streams.pipeline.worker import Worker
    from tests.helpers import deposit, fill, mark
    from tests.unit.engine.test_inverse import coin

    worker = Worker(Settings(), inverse_book())
    outputs = []
    for event in (
        coin("d1", "alice", "1"),
        deposit("d2", "alice", "100"),
        fill("f1", "alice", "buy", "5000", "8000", symbol="BTCUSD"),
        fill("f2", "alice", "buy", "0.001", "8000", symbol="BTCUSDT"),
        mark("BTCUSD", "7000", ts=2),
    ):
        outputs += worker._apply(event, None)
    rows = {(o.key, orjson.loads(o.value).get("settlement")) for o in outputs
            if o.topic == "account_risk"}  # fmt: skip
    assert rows == {(b"alice", None), (b"alice\x1fBTC", "BTC")}
