"""The engine end to end: a hand-computed cascade, and the indexed tick against a naive
re-evaluation of every account on every event."""

import dataclasses
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.engine.config import EngineConfig
from streams.engine.engine import Engine
from streams.engine.risk import Health, evaluate
from streams.engine.signals import AdlStage, AdlTriggered, BankruptcyDetected, LiquidationDetected
from tests.helpers import bundled_instruments, deposit, fill, fund, isolated, mark, raw

INSTRUMENTS = bundled_instruments()
# the same symbols with maintenance on the entry value (Bybit's and BitMEX's convention):
# the threshold index, the move budgets and the kept evaluations must stay exact with it
ON_ENTRY = {s: replace(i, maintenance_base="entry") for s, i in INSTRUMENTS.items()}
# Bybit's fee to close (0.075%) counted against the margin: every threshold's slope moves
WITH_FEE = {s: replace(i, closing_fee_rate=75_000) for s, i in INSTRUMENTS.items()}
BOOKS = pytest.mark.parametrize(
    "instruments", [INSTRUMENTS, ON_ENTRY, WITH_FEE], ids=["on-mark", "on-entry", "fee-to-close"]
)


def cascade_events():
    return [
        fund("1000", ts=1000),
        deposit("b1", "A", "1000", ts=1000),
        deposit("b2", "B", "100000", ts=1000),
        fill("f1", "A", "buy", "0.5", "20000", ts=1001),
        fill("f2", "B", "sell", "0.5", "20000", ts=1001),
        mark("BTCUSDT", "20000", ts=1002),
        mark("BTCUSDT", "18100", ts=3000),
        mark("BTCUSDT", "17500", ts=5000),
        mark("BTCUSDT", "15000", ts=7000),
    ]


def run(events, engine=None):
    engine = engine or Engine(INSTRUMENTS)
    out = []
    for event in events:
        out.extend(engine.apply(event))
    return engine, out


def test_hand_computed_cascade():
    # A: wallet 1,000, long 0.5 BTC @ 20,000 cross.
    #   bankruptcy B = E - W/q = 20000 - 2000 = 18,000
    #   liquidation: 1000 + 0.5 (P - 20000) = 0.5 P * 0.004  ->  P = 9000 / 0.498
    # at 17,500: equity = 1000 - 1250 = -250 -> liquidatable and bankrupt, deficit 250;
    #   the fund (1,000) covers it: coverage 4.
    # at 15,000: deficit 0.5 * (18000 - 15000) = 1,500 > fund 1,000: ADL triggered,
    #   shortfall 500; B (the only short) is deleveraged 0.5 at A's bankruptcy price.
    engine, signals = run(cascade_events())
    liqs = [s for s in signals if isinstance(s, LiquidationDetected)]
    bankrupts = [s for s in signals if isinstance(s, BankruptcyDetected)]
    triggers = [s for s in signals if isinstance(s, AdlTriggered)]
    assert [(s.account, s.ts_ms) for s in liqs] == [("A", 5000)]
    assert liqs[0].liquidation_price == -((-9000 * 10**8 * 10**8) // (498 * 10**5))
    assert [(s.account, s.ts_ms, s.deficit) for s in bankrupts] == [("A", 5000, raw("250"))]
    assert bankrupts[0].bankruptcy_price == raw("18000")
    stages = [(t.ts_ms, t.stage) for t in triggers]
    assert (7000, AdlStage.TRIGGERED) in stages
    trigger = next(t for t in triggers if t.stage is AdlStage.TRIGGERED)
    assert (trigger.projected_loss, trigger.shortfall) == (raw("1500"), raw("500"))
    assert [(b.account, b.qty, b.deficit) for b in trigger.bankrupt] == [
        ("A", raw("0.5"), raw("1500"))
    ]
    assert [(p.account, p.side, p.qty, p.price) for p in trigger.plan] == [
        ("B", "short", raw("0.5"), raw("18000"))
    ]
    assert engine.projection("USDT-M", 7000).coverage_ratio == 1000 / 1500


def test_imminent_before_triggered():
    # at 18,100 nothing is lost, but a 5% fall (17,195) costs 0.5 * 805 = 402.5 < 1000;
    # a fall to 17,000 (6.1%) would exhaust the fund -> not imminent at 5%.
    # at 17,500 the loss is 250, coverage 4 -> not imminent by coverage (1.5); a 5% fall
    # (16,625) costs 687.5 < 1000 -> still not imminent. A smaller fund makes it imminent.
    events = cascade_events()
    events[0] = fund("700", ts=1000)
    _, signals = run(events)
    stages = [(s.ts_ms, s.stage) for s in signals if isinstance(s, AdlTriggered)]
    # fund 700 at 17,500: 5% fall costs 687.5 + ... = 0.5*(18000-16625) = 687.5 < 700;
    # coverage 700/250 = 2.8. At 18,100: 0.5*(18000-17195) = 402.5 < 700. Never imminent
    # before the trigger at 15,000 (loss 1,500 > 700).
    assert stages[0] == (7000, AdlStage.TRIGGERED)
    events[0] = fund("600", ts=1000)
    _, signals = run(events)
    stages = [(s.ts_ms, s.stage) for s in signals if isinstance(s, AdlTriggered)]
    assert stages[:2] == [(5000, AdlStage.IMMINENT), (7000, AdlStage.TRIGGERED)]


def test_duplicate_fill_changes_nothing():
    events = cascade_events()
    engine_once, signals_once = run(events)
    engine_twice, signals_twice = run([*events[:4], events[3], *events[4:]])
    assert engine_twice.stats.duplicates == 1
    assert engine_once.accounts == engine_twice.accounts
    assert signals_once == signals_twice


symbols = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
START = {"BTCUSDT": 60000, "ETHUSDT": 3000, "SOLUSDT": 150}


@st.composite
def markets(draw):
    n_accounts = draw(st.integers(2, 8))
    names = [f"a{i}" for i in range(n_accounts)]
    events = []
    for i, name in enumerate(names):
        events.append(deposit(f"d{i}", name, str(draw(st.integers(50, 20000))), ts=0))
        if draw(st.booleans()):
            events.append(isolated(name, draw(symbols), str(draw(st.integers(2, 50))), ts=0))
    prices = dict(START)
    for sym, p in prices.items():
        events.append(mark(sym, str(p), ts=1))
    ts = 2
    for j in range(draw(st.integers(1, 12))):
        buyer, seller = draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True))
        sym = draw(symbols)
        qty = draw(st.integers(1, 400)) / 100 * (60000 / START[sym]) / 10
        price = prices[sym]
        events.append(fill(f"f{j}b", buyer, "buy", f"{qty:.4f}", str(price), symbol=sym, ts=ts))
        events.append(fill(f"f{j}s", seller, "sell", f"{qty:.4f}", str(price), symbol=sym, ts=ts))
    for _ in range(draw(st.integers(5, 40))):
        ts += 100
        sym = draw(symbols)
        step = draw(st.floats(-0.12, 0.12))
        prices[sym] = max(round(prices[sym] * (1 + step), 2), 0.01)
        events.append(mark(sym, f"{prices[sym]:.2f}", ts=ts))
    return events


def naive_transitions(events, instruments=INSTRUMENTS):
    """Evaluate every account after every event and diff health: O(n) per event."""
    engine = Engine(instruments)
    before: dict[tuple[str, str], Health] = {}
    out = set()
    for event in events:
        engine.apply(event)
        for acct, state in engine.accounts.items():
            risk = evaluate(state, engine.marks, instruments)
            for pos in risk.positions:
                old = before.get((acct, pos.symbol), Health.HEALTHY)
                if pos.health >= Health.LIQUIDATABLE > old:
                    out.add(("liq", acct, pos.symbol, event.ts_ms))
                if pos.health is Health.BANKRUPT and old is not Health.BANKRUPT:
                    out.add(("bankrupt", acct, pos.symbol, event.ts_ms))
            before = {k: v for k, v in before.items() if k[0] != acct}
            before.update({(acct, p.symbol): p.health for p in risk.positions})
    return out


# 0: every account with two positions or more is "wide" (one move budget, shared queue
# rows), so both ways of following a multi-symbol account are held to the naive recompute
WIDTHS = [EngineConfig().wide_after, 0]


@BOOKS
@pytest.mark.parametrize("wide_after", WIDTHS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=markets())
def test_indexed_ticks_detect_exactly_what_a_naive_recompute_detects(
    instruments, wide_after, events
):
    _, signals = run(events, Engine(instruments, EngineConfig(wide_after=wide_after)))
    indexed = {
        ("liq" if isinstance(s, LiquidationDetected) else "bankrupt", s.account, s.symbol, s.ts_ms)
        for s in signals
        if isinstance(s, LiquidationDetected | BankruptcyDetected)
    }
    assert indexed == naive_transitions(events, instruments)


@pytest.mark.parametrize("wide_after", WIDTHS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets())
def test_engine_is_deterministic_and_final_state_matches_naive(wide_after, events):
    config = EngineConfig(wide_after=wide_after)
    engine_a, signals_a = run(events, Engine(INSTRUMENTS, config))
    engine_b, signals_b = run(events, Engine(INSTRUMENTS, config))
    assert signals_a == signals_b
    for acct, state in engine_a.accounts.items():
        fresh = evaluate(state, engine_a.marks, INSTRUMENTS)
        assert fresh.health == evaluate(engine_b.accounts[acct], engine_b.marks, INSTRUMENTS).health
    # with no book, the fund's loss now is the sum of account deficits, rounded up: each
    # position's bankruptcy price is rounded towards warning by under one raw price unit,
    # which adds under |q| raw money units (+1 for the ceiling) per position. Checked
    # after every event: accounts with several cross positions are not re-evaluated on
    # every tick, yet their deficits must stay exact.
    engine = Engine(INSTRUMENTS, config)
    for event in events:
        engine.apply(event)
        states = engine.accounts.values()
        total_deficit = sum(evaluate(s, engine.marks, INSTRUMENTS).deficit for s in states)
        rounding = sum(abs(p.qty) // 10**8 + 2 for s in states for p in s.positions)
        loss, _ = engine.loss_now("USDT-M")
        assert total_deficit <= loss <= total_deficit + rounding, event


def test_config_is_immutable():
    engine = Engine(INSTRUMENTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        engine.config.rank_refresh_ms = 1  # type: ignore[misc]  # the point of the test
    assert engine.config.rank_refresh_ms == 1_000


@BOOKS
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=markets())
def test_an_evaluation_from_the_previous_one_equals_a_fresh_one(instruments, events):
    # ``evaluate(previous=)`` takes over the PnL, notional and maintenance of positions
    # whose size, entry and mark did not move: after every event, for every account, the
    # engine's kept evaluation (made from the previous one) is what a fresh one gives
    engine = Engine(instruments, EngineConfig(wide_after=0))
    for event in events:
        engine.apply(event)
        for acct, state in engine.accounts.items():
            kept = engine.risks[acct]
            fresh = evaluate(state, engine.marks, instruments)
            assert evaluate(state, engine.marks, instruments, previous=kept) == fresh
            previous_marks = {p.symbol: p.mark_price for p in kept.positions}
            if all(engine.marks.get(s, m) == m for s, m in previous_marks.items()):
                assert kept == fresh  # no mark moved since: the kept one is current


@pytest.mark.parametrize(
    "instruments", [INSTRUMENTS, ON_ENTRY, WITH_FEE], ids=["on-mark", "on-entry", "fee-to-close"]
)
@pytest.mark.parametrize("wide_after", WIDTHS)
def test_a_ranking_does_not_depend_on_when_its_accounts_were_evaluated(instruments, wide_after):
    # an engine that followed the marks (most accounts not re-evaluated since their fills:
    # their equity carried to the marks by the ranking) ranks as one whose accounts were
    # all evaluated at the final marks (a partition restored from its changelog does
    # that). With a fee to close, a position's equity moves by q (1 -/+ r), not q. The
    # bundled instruments are Binance's, whose score reads the account's maintenance: at
    # the current marks on the mark's notional, from the evaluation on the entry value.
    config = EngineConfig(wide_after=wide_after)
    live = Engine(instruments, config)
    opening = [mark(s, p, ts=0) for s, p in (("BTCUSDT", "60000"), ("ETHUSDT", "3000"))]
    opening.append(mark("SOLUSDT", "150", ts=0))
    events = [*opening]
    for k, acct in enumerate(("a", "b", "c", "d")):
        events.append(deposit(f"d{k}", acct, "50000", ts=1))
    events += [
        fill("f1", "a", "buy", "1", "60000", ts=2),
        fill("f2", "a", "sell", "10", "3000", ts=2, symbol="ETHUSDT"),
        fill("f3", "a", "buy", "100", "150", ts=2, symbol="SOLUSDT"),
        fill("f4", "b", "sell", "1", "60000", ts=2),
        fill("f5", "b", "buy", "5", "3000", ts=2, symbol="ETHUSDT"),
        fill("f6", "c", "buy", "0.5", "60000", ts=2),
        fill("f7", "c", "sell", "200", "150", ts=2, symbol="SOLUSDT"),
        fill("f8", "d", "sell", "0.5", "60000", ts=2),
        fill("f9", "d", "buy", "5", "3000", ts=2, symbol="ETHUSDT"),
        fill("f10", "d", "buy", "100", "150", ts=2, symbol="SOLUSDT"),
    ]
    final = [mark("BTCUSDT", "57000", ts=5), mark("ETHUSDT", "3150", ts=5),
             mark("SOLUSDT", "141", ts=5)]  # fmt: skip
    for event in [*events, mark("BTCUSDT", "58500", ts=3), mark("ETHUSDT", "3080", ts=4), *final]:
        live.apply(event)
    restored = Engine(instruments, config)
    for event in [*opening, *final]:
        restored.apply(event)
    restored.restore(live.accounts.values())
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        live.rerank(sym, 6)
        restored.rerank(sym, 6)
        for side in ("long", "short"):
            a, b = live.ranking(sym, side), restored.ranking(sym, side)
            assert a is not None
            assert b is not None
            assert list(a.accounts) == list(b.accounts)
            assert a.scores.tolist() == pytest.approx(b.scores.tolist(), rel=1e-12)
