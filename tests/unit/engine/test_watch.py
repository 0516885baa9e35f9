"""The fund check reads only the symbols that moved: it must decide exactly as a check
that reads every symbol of the fund (the reference: a view that says nothing about what
moved, as the merged view of the partitioned path does)."""

from __future__ import annotations

import random

from streams.engine.engine import Engine, _IndexView
from streams.engine.events import Event
from streams.engine.instruments import Instrument
from streams.engine.instruments import parse_instruments as parse
from streams.engine.signals import AdlStage, AdlTriggered, Signal
from tests.helpers import deposit, ev, fill, fund, mark

SYMBOLS = [f"S{k}USDT" for k in range(8)]


class _EverySymbol(_IndexView):
    """The engine's view, but reporting no moved symbols: every check reads all."""

    def changed(self, fund: str) -> None:  # type: ignore[override]  # None: not known
        return None


def instruments() -> dict[str, Instrument]:
    tier = {"max_notional": "1000000000", "mmr": "0.01", "maintenance_amount": "0",
            "max_leverage": 100}  # fmt: skip
    return parse({"symbols": {s: {"fund": "F", "profile": "bybit", "tiers": [tier]}
                              for s in SYMBOLS}})  # fmt: skip


def cascade(seed: int) -> list[Event]:
    """Leveraged accounts on 1-3 of 8 symbols of one small fund; the marks wander, then
    some symbols crash 25% and come back, books come and go: stages are set,
    re-announced and cleared."""
    rng = random.Random(seed)
    prices = dict.fromkeys(SYMBOLS, 100.0)
    events: list[Event] = [fund("40", name="F")]
    events += [mark(s, "100", 0) for s in SYMBOLS]
    n = 0
    for a in range(60):
        events.append(deposit(f"d{a}", f"a{a}", str(rng.choice((20, 50, 400))), ts=1))
        for sym in rng.sample(SYMBOLS, rng.randint(1, 3)):
            n += 1
            side = rng.choice(("buy", "sell"))
            events.append(fill(f"f{n}", f"a{a}", side, str(rng.randint(1, 8)), "100", sym, ts=2))
    crashing = set(rng.sample(SYMBOLS, 3))
    for step in range(600):
        ts = 1_000 + step * 100
        sym = rng.choice(SYMBOLS)
        drift = -0.004 if sym in crashing and 100 <= step < 300 else 0.0
        drift = 0.004 if sym in crashing and 300 <= step < 500 else drift
        prices[sym] *= 1 + drift + rng.uniform(-0.004, 0.004)
        events.append(mark(sym, f"{prices[sym]:.4f}", ts))
        if step % 7 == 0:
            n += 1
            who, other = rng.sample(range(60), 2)
            events.append(fill(f"f{n}", f"a{who}", "buy", "1", f"{prices[sym]:.4f}", sym, ts=ts))
            events.append(fill(f"f{n}", f"a{other}", "sell", "1", f"{prices[sym]:.4f}", sym, ts=ts))
        if step % 50 == 0:
            events.append(fund(rng.choice(("40", "5", "400")), ts=ts, name="F"))
        if step % 20 == 0:  # a thin book: liquidatable positions cost the fund too
            book = rng.choice(SYMBOLS)
            p = prices[book]
            events.append(ev("depth", ts=ts, symbol=book, bids=[[f"{p * 0.97:.4f}", "4"]],
                             asks=[[f"{p * 1.03:.4f}", "4"]]))  # fmt: skip
    return events


def signals_of(engine: Engine, events: list[Event]) -> list[Signal]:
    out: list[Signal] = []
    for event in events:
        out += engine.apply(event)
    return out + engine.finish()


def test_the_fund_check_of_moved_symbols_decides_as_the_check_of_all() -> None:
    for seed in range(3):
        events = cascade(seed)
        incremental = Engine(instruments())
        reference = Engine(instruments())
        reference.view = _EverySymbol(reference)
        got, want = signals_of(incremental, events), signals_of(reference, events)
        stages = [s.stage for s in want if isinstance(s, AdlTriggered)]
        # the run must exercise what it checks: every stage, more than once
        assert {AdlStage.TRIGGERED, AdlStage.IMMINENT, AdlStage.CLEARED} <= set(stages), seed
        assert got == want, seed
        assert incremental.loss_now("F") == reference.loss_now("F")
