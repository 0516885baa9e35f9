"""A wide account re-evaluated in O(positions that moved) (``Engine._reevaluate_moved``)
against the full path (``evaluate`` + ``_reindex`` over every position, ``wide_moves``
off), event by event: the same signals, evaluations, fund reads and their versions,
symbols whose summaries went stale, and queues.

Market makers trade several symbols with takers while marks move and makers withdraw,
so that accounts cross their health boundaries (the fast path must step aside there),
flip positions, open and close symbols, and isolate some (never on the fast path)."""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.engine.config import EngineConfig
from streams.engine.engine import Engine
from streams.engine.profiles import PROFILES
from tests.helpers import bundled_instruments, deposit, ev, fill, fund, isolated, mark

INSTRUMENTS = bundled_instruments()
START = {"ADAUSDT": 0.5, "BTCUSDT": 60000, "ETHUSDT": 3000, "SOLUSDT": 150, "XRPUSDT": 0.6}
SYMBOLS = sorted(START)
GRID = [-0.5, -0.2, -0.1, -0.05, -0.01, 0.0, 0.01, 0.05, 0.1, 0.2, 0.5]  # mark moves read


def _price(value: float) -> str:
    return f"{value:.4f}"


@st.composite
def maker_flows(draw):
    takers = [f"t{i}" for i in range(draw(st.integers(2, 4)))]
    makers = ["mm0", *[f"mm{i}" for i in range(1, draw(st.integers(1, 3)))]]
    # mm0 so well funded that it never nears a boundary: its fills take the fast path
    events = [fund(str(draw(st.integers(0, 50_000))), ts=0), deposit("d-mm0", "mm0", "10000000")]
    events.extend(
        deposit(f"d-{name}", name, str(draw(st.integers(2_000, 60_000)))) for name in makers[1:]
    )
    for name in takers:
        events.append(deposit(f"d-{name}", name, str(draw(st.integers(5_000, 200_000)))))
        if draw(st.integers(0, 4)) == 0:
            events.append(isolated(name, draw(st.sampled_from(SYMBOLS)), "10"))
    if len(makers) > 1 and draw(st.integers(0, 3)) == 0:
        events.append(isolated(makers[-1], draw(st.sampled_from(SYMBOLS)), "5"))
    prices = dict(START)
    events.extend(mark(s, _price(p), ts=1) for s, p in prices.items())
    ts, n = 2, 0

    def trade(maker: str, symbol: str, notional: int) -> None:
        nonlocal n
        n += 1
        taker = draw(st.sampled_from(takers))
        qty = f"{notional / prices[symbol]:.4f}"
        buys = draw(st.booleans())
        price = _price(prices[symbol])
        events.append(fill(f"f{n}m", maker, "buy" if buys else "sell", qty, price, symbol, ts))
        events.append(fill(f"f{n}t", taker, "sell" if buys else "buy", qty, price, symbol, ts))

    for maker in makers:
        for symbol in draw(st.lists(st.sampled_from(SYMBOLS), min_size=2, unique=True)):
            trade(maker, symbol, draw(st.integers(1_000, 40_000)))
    for _ in range(draw(st.integers(10, 60))):
        ts += 50
        kind = draw(st.sampled_from(["fill", "fill", "fill", "mark", "mark", "withdrawal"]))
        if kind == "fill":
            trade(
                draw(st.sampled_from(makers)),
                draw(st.sampled_from(SYMBOLS)),
                draw(st.integers(200, 40_000)),
            )
        elif kind == "mark":
            symbol = draw(st.sampled_from(SYMBOLS))
            step = draw(st.floats(-0.08, 0.08))
            prices[symbol] = max(round(prices[symbol] * (1 + step), 4), 0.0001)
            events.append(mark(symbol, _price(prices[symbol]), ts=ts))
        else:
            n += 1
            who = draw(st.sampled_from(makers[1:] or makers))
            amount = draw(st.integers(1, 20_000))
            events.append(
                ev(
                    "balance",
                    event_id=f"w{n}",
                    ts=ts,
                    account=who,
                    amount=f"-{amount}",
                    reason="withdrawal",
                )
            )
    # at least one fill of a healthy wide account, last: 0.00017 is no sum of the 4-decimal
    # sizes above, so no position of mm0 closes, and the last one was open before it
    for k, symbol in enumerate((SYMBOLS[0], SYMBOLS[1], SYMBOLS[0])):
        events.append(fill(f"end{k}", "mm0", "buy", "0.00017", _price(prices[symbol]), symbol, ts))
    return events


def _fund_view(engine: Engine) -> tuple[object, ...]:
    symbols = sorted(engine.symbols)
    return (
        engine.loss_now("USDT-M"),
        [engine.symbols[s].fund_changes for s in symbols],
        [engine.liquidatable(s) for s in symbols],
        [engine.deficit_grid(s, GRID) for s in symbols if s in engine.marks],
    )


def _summary_stale(engine: Engine, before: dict[str, int]) -> set[str]:
    """The symbols whose summary version (``symbol_changes``) moved since ``before``
    (updated in place): a version is a token, it only has to move, never back."""
    moved = set()
    for s in sorted(engine.symbols):
        now = engine.symbol_changes(s)
        assert now >= before.get(s, 0), s
        if now != before.get(s, 0):
            moved.add(s)
        before[s] = now
    return moved


def _queues(engine: Engine, ts_ms: int) -> list[object]:
    """Every queue ranked now (each position's score reads its account's latest
    evaluation: a wide account's through its shared row value)."""
    return [
        (engine.rerank(s, ts_ms), engine.queue(s, "long"), engine.queue(s, "short"))
        for s in sorted(engine.marks)
    ]


@pytest.mark.parametrize(
    ("profile", "closing_fee_rate"), [(p, 0) for p in sorted(PROFILES)] + [("bybit", 75_000)]
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maker_flows())
def test_moved_positions_path_equals_the_full_path_event_by_event(
    profile, closing_fee_rate, events
):
    # every venue's ranking: some score a cross position by the account's equity, some
    # by the equity backing it (the shared row keeps both); Bybit's with its fee to close
    instruments = {
        s: dataclasses.replace(i, profile=profile, closing_fee_rate=closing_fee_rate)
        for s, i in INSTRUMENTS.items()
    }
    config = EngineConfig(wide_after=0)  # two positions make an account wide
    fast, full = Engine(instruments, config), Engine(instruments, config)
    full.wide_moves = False
    fast_versions: dict[str, int] = {}
    full_versions: dict[str, int] = {}
    for event in events:
        assert fast.apply(event) == full.apply(event), event
        assert fast.risks == full.risks, event
        assert _fund_view(fast) == _fund_view(full), event
        assert _summary_stale(fast, fast_versions) == _summary_stale(full, full_versions), event
        assert _queues(fast, event.ts_ms) == _queues(full, event.ts_ms), event
    assert fast.finish() == full.finish()
    # it did take the fast path (the last fill at least), and the full path never did
    assert fast.stats.moved_reevaluations > 0
    assert full.stats.moved_reevaluations == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maker_flows(), st.floats(0.2, 0.8))
def test_a_state_replaced_evaluates_as_a_restore_of_it(events, split):
    """A warm copy (``agents.warm``) is an engine that applied the first events, then is
    brought up to the end as a changelog says it: marks moved (``move_mark``), the
    accounts that changed replaced (``restore``). Each replaced account is evaluated as
    in an engine restored from the last states (the wide path must not take the
    replaced state for a move of its marks), and every account has the health it has in
    the engine that applied every event."""
    config = EngineConfig(wide_after=0)  # two positions make an account wide
    live, warm, cold = (
        Engine(INSTRUMENTS, config),
        Engine(INSTRUMENTS, config),
        Engine(INSTRUMENTS, config),
    )
    cut = int(len(events) * split)
    for event in events:
        live.apply(event)
    for event in events[:cut]:
        warm.apply(event)
    for sym, price in live.marks.items():
        if warm.marks.get(sym) != price:
            warm.move_mark(sym, live.symbols[sym].mark_ts_ms, price)
    changed = [s for a, s in live.accounts.items() if warm.accounts.get(a) != s]
    warm.restore(changed)
    for sym, price in live.marks.items():
        cold.marks[sym] = price
    cold.restore(live.accounts.values())
    assert changed
    for state in changed:
        assert warm.risks[state.account] == cold.risks[state.account], state.account
    assert warm.accounts == live.accounts
    for account, risk in live.risks.items():
        health = (risk.health, [p.health for p in risk.positions])
        assert (
            warm.risks[account].health,
            [p.health for p in warm.risks[account].positions],
        ) == health
