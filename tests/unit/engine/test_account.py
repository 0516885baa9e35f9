"""Position accounting, by hand: average entry, realized PnL, flips, fees, isolated margin."""

import dataclasses

import pytest

from streams.engine import account
from streams.engine.account import AccountState
from streams.engine.errors import InvalidEvent
from streams.engine.events import MarginMode
from tests.helpers import deposit, ev, fill, isolated, raw


def run(*events, state=None):
    state = state or AccountState("a")
    for event in events:
        state = account.apply(state, event)
    return state


def test_average_entry_realized_pnl_and_flip_through_zero():
    state = run(
        deposit("d", "a", "1000"),
        fill("1", "a", "buy", "1", "100", fee="0.1"),
        fill("2", "a", "buy", "1", "200", fee="0.1"),  # entry (100 + 200) / 2 = 150
        fill("3", "a", "sell", "0.5", "180", fee="0.1"),  # realized 0.5 * (180 - 150) = +15
        fill("4", "a", "sell", "2", "120", fee="0.1"),  # close 1.5: 1.5 * (120 - 150) = -45
    )  # ... and open 0.5 short at 120
    pos = state.position("BTCUSDT")
    assert pos is not None
    assert (pos.qty, pos.entry_price) == (raw("-0.5"), raw("120"))
    assert state.realized_pnl == raw("-30")
    assert state.fees_paid == raw("0.4")
    assert state.wallet_balance == raw("1000") - raw("0.4") + raw("15") - raw("45")


def test_average_entry_rounds_against_the_holder():
    long = run(fill("1", "a", "buy", "1", "100"), fill("2", "a", "buy", "2", "101"))
    short = run(fill("1", "a", "sell", "1", "100"), fill("2", "a", "sell", "2", "101"))
    # (100 + 2 * 101) / 3 = 100.666666666...: long rounds up, short down
    assert long.position("BTCUSDT").entry_price == raw("100.66666667")
    assert short.position("BTCUSDT").entry_price == raw("100.66666666")


def test_closing_flat_removes_the_position_and_a_rebate_adds():
    state = run(fill("1", "a", "buy", "2", "100"), fill("2", "a", "sell", "2", "90", fee="-0.5"))
    assert state.positions == ()
    assert state.wallet_balance == raw("-20") + raw("0.5")


def test_isolated_margin_moves_on_increase_and_is_released_pro_rata():
    state = run(
        deposit("d", "a", "100"),
        isolated("a", "BTCUSDT", "5"),
        fill("1", "a", "buy", "2", "100"),  # initial margin 200 / 5 = 40 out of the wallet
    )
    pos = state.position("BTCUSDT")
    assert pos.margin_mode is MarginMode.ISOLATED
    assert (pos.isolated_margin, state.wallet_balance) == (raw("40"), raw("60"))
    state = run(fill("2", "a", "sell", "1", "110"), state=state)
    # half closed: release 20 and realize 1 * (110 - 100) = 10 into the wallet
    assert state.position("BTCUSDT").isolated_margin == raw("20")
    assert state.wallet_balance == raw("90")
    state = run(
        ev("isolated_margin", event_id="m", ts=2, account="a", symbol="BTCUSDT", amount="15"),
        state=state,
    )
    assert state.position("BTCUSDT").isolated_margin == raw("35")
    assert state.wallet_balance == raw("75")


def test_margin_settings_refuse_impossible_changes():
    state = run(fill("1", "a", "buy", "1", "100"))  # cross by default
    with pytest.raises(InvalidEvent, match="flat"):
        run(isolated("a", "BTCUSDT", "5"), state=state)
    with pytest.raises(InvalidEvent, match="no isolated"):
        run(
            ev("isolated_margin", event_id="m", ts=2, account="a", symbol="BTCUSDT", amount="1"),
            state=state,
        )
    iso = run(isolated("a", "BTCUSDT", "5"), fill("1", "a", "buy", "1", "100"))
    with pytest.raises(InvalidEvent, match="removes"):
        run(
            ev("isolated_margin", event_id="m", ts=2, account="a", symbol="BTCUSDT", amount="-21"),
            state=iso,
        )


def test_reducer_is_pure():
    before = run(deposit("d", "a", "10"))
    copy = dataclasses.replace(before)
    after = account.apply(before, fill("1", "a", "buy", "1", "100"))
    assert before == copy  # the input state is unchanged, field by field
    assert before.positions == ()
    assert before.wallet_balance == raw("10")
    assert after.position("BTCUSDT").qty == raw("1")  # the change is in the new value only
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.wallet_balance = 0  # type: ignore[misc]  # states are frozen values


def test_positions_stay_sorted_by_symbol_through_opens_and_closes():
    # the reducer finds and replaces a position by bisection over the symbols: opening in
    # the middle, at both ends, closing one, and replacing one keep the order and the rest
    state = run(
        deposit("d", "a", "1000000"),
        fill("f1", "a", "buy", "1", "100", symbol="ETHUSDT"),
        fill("f2", "a", "buy", "1", "100", symbol="XRPUSDT"),
        fill("f3", "a", "buy", "1", "100", symbol="BTCUSDT"),
        fill("f4", "a", "sell", "1", "100", symbol="SOLUSDT"),
    )
    assert [p.symbol for p in state.positions] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    closed = run(fill("f5", "a", "sell", "1", "110", symbol="ETHUSDT"), state=state)
    assert [p.symbol for p in closed.positions] == ["BTCUSDT", "SOLUSDT", "XRPUSDT"]
    assert closed.position("ETHUSDT") is None
    added = run(fill("f6", "a", "sell", "2", "100", symbol="SOLUSDT"), state=closed)
    assert [(p.symbol, p.qty) for p in added.positions] == [
        ("BTCUSDT", raw("1")), ("SOLUSDT", raw("-3")), ("XRPUSDT", raw("1"))
    ]  # fmt: skip
    assert added.positions[0] is closed.positions[0]  # the untouched ones are kept as they are


def test_a_fill_and_a_balance_carry_every_other_field_over():
    """``apply_fill`` and ``apply_balance`` name every field of the new state (not
    ``dataclasses.replace``, for speed): a field added to ``AccountState`` and not
    named there would fall back to its default. Every field not listed as changed must
    come through as it was."""
    before = run(
        isolated("a", "ETHUSDT", "5", ts=1),  # a setting: ``settings`` not empty
        deposit("d", "a", "1000", ts=2),
        fill("1", "a", "buy", "1", "100", fee="0.1", ts=3),
        fill("2", "a", "sell", "0.5", "110", fee="0.1", ts=4),  # realized and fees not 0
    )
    changed_by = {
        "fill": {"wallet_balance", "positions", "realized_pnl", "fees_paid", "last_ts_ms"},
        "balance": {"wallet_balance", "last_ts_ms"},
    }
    after = {
        "fill": run(fill("3", "a", "buy", "1", "105", symbol="ETHUSDT", ts=5), state=before),
        "balance": run(deposit("e", "a", "1", ts=5), state=before),
    }
    for kind, state in after.items():
        for field in dataclasses.fields(AccountState):
            if field.name in changed_by[kind]:
                continue
            assert getattr(state, field.name) == getattr(before, field.name), (kind, field.name)
        assert state.last_ts_ms == 5  # and what it changes, it changed
    for field in dataclasses.fields(AccountState):  # none at its default: each one shows
        assert getattr(before, field.name) != field.default, field.name
