"""Coin-settled and inverse symbols on the partitioned path (stage A's shards, stage B's
desk) and the read APIs: the desk follows replay on a scenario with an inverse book."""

from __future__ import annotations

import tomllib
from pathlib import Path

import orjson
import pytest

from streams.engine.engine import Engine
from streams.engine.events import Mark
from streams.engine.fixed import to_raw
from streams.engine.instruments import parse_instruments
from streams.pipeline.web import account_answer
from streams.replay.runner import replay
from streams.scenario.inverse_book import FUND, SYMBOL, instruments_toml
from streams.scenario.inverse_book import simulate_with_inverse_book as with_book
from tests.helpers import BUNDLED as BUNDLED_TOML
from tests.helpers import (
    assert_stages_follow,
    bundled_instruments,
    deposit,
    fill,
    mark,
    rank_alerts_matched,
    schema_validator,
)
from tests.unit.agents.test_desk import INTERVAL_MS, run_stage_b, triggers_of
from tests.unit.agents.test_shard import bundled_events
from tests.unit.engine.test_inverse import coin, inverse_book
from tests.unit.scenario.test_inverse_book import BOOK_ACCOUNTS, SMALL


def test_the_desk_follows_replay_on_a_market_with_an_inverse_book(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Three shards and the desk over the small scenario with its BTCUSD inverse book:
    the desk's stages (BTCUSD's among them, in BTC) and the shards' rank alerts lit by
    the desk's boundaries follow replay's (the helpers say what may differ, and why)."""
    tmp = tmp_path_factory.mktemp("inverse-desk")
    path = tmp / "events.jsonl"
    with_book(SMALL, bundled_instruments(), path, BOOK_ACCOUNTS, progress=False)
    toml = Path(BUNDLED_TOML).read_text() + instruments_toml()
    instruments = parse_instruments(tomllib.loads(toml))
    out = tmp / "replay"
    replay(path, instruments, out, progress=False)

    def lines(name: str) -> list[dict]:
        return [orjson.loads(x) for x in (out / f"{name}.jsonl").read_bytes().splitlines()]

    events = bundled_events(path, frozenset(instruments))
    desk, applied, _, alerts, _ = run_stage_b(instruments, events)
    got = triggers_of(applied)
    book = [t for t in got if t["symbol"] == SYMBOL]
    assert any(t["stage"] == "triggered" for t in book)
    assert all(t["settlement"] == "BTC" and t["fund"] == FUND for t in book)
    for t in book:
        schema_validator("topic.adl_triggers").validate(t)
    marks = sorted({e.ts_ms for e, _, _ in events if isinstance(e, Mark)})
    want = [t for t in lines("adl_triggers") if t["ts"] >= marks[1]]
    assert_stages_follow(want, [t for t in got if t["ts"] >= marks[1]], INTERVAL_MS, marks=marks)
    # rank alerts: replay's but for scores within the sketch's accuracy of a boundary
    # (``assert_rank_alerts_follow``, whose 1,000-alert floor this small file is under)
    want_alerts = lines("rank_alerts")
    matched = rank_alerts_matched(want_alerts, alerts)
    assert matched >= 0.97 * len(want_alerts), (matched, len(want_alerts), len(alerts))
    assert abs(len(alerts) - len(want_alerts)) <= 0.03 * len(want_alerts)
    # the book alone (91 alerts when written: 88 identical; the other 3 the same account
    # and lights a refresh earlier or later, one position flickering at a boundary)
    book_alerts = [a for a in want_alerts if a["symbol"] == SYMBOL]
    assert rank_alerts_matched(book_alerts, alerts) >= 0.95 * len(book_alerts) > 0
    assert any(a["symbol"] == SYMBOL and a.get("settlement") == "BTC" for a in alerts)
    # the desk's reads in the venue's terms too
    projection = desk.projection(FUND, marks[-1])
    assert projection.settlement == "BTC"
    (sym,) = projection.symbols
    assert sym.mark_price is not None
    assert 40_000 * 10**8 < sym.mark_price < 70_000 * 10**8
    # its ladder at replay's shocks of the USD price (the grid holds the moves of x they
    # are: exact there), each partition rounding each side up
    last = [p for p in lines("fund_projection") if p["fund"] == FUND][-1]
    want_ladder = {pt["shock_pct"]: to_raw(pt["projected_loss"])
                   for pt in last["symbols"][0]["ladder"]}  # fmt: skip
    got_ladder = {pt.shock_pct: pt.projected_loss for pt in sym.ladder}
    assert list(got_ladder) == list(want_ladder)
    assert all(w <= got_ladder[s] <= w + 3 * 2 * 8 for s, w in want_ladder.items())


def test_the_read_api_answers_each_wallet_of_an_account() -> None:
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
    from streams.pipeline.settings import Settings
    from streams.pipeline.worker import Worker

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
