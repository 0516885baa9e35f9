"""The frozen values whose ``__init__`` is written out (for speed: the generated one runs
as interpreted Python in the compiled engine) must take and set exactly their fields, in
their order, with their defaults, and stay frozen: what the generated one would do."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pytest

import streams.engine


def _written_out() -> dict[str, type]:
    """Every dataclass of ``streams.engine`` with an ``__init__`` of its own source (the
    generated one is compiled from a string: its code's file is ``<string>``)."""
    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(streams.engine.__path__, "streams.engine."):
        module = importlib.import_module(module_info.name)
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and dataclasses.is_dataclass(cls)):
                continue
            if cls.__module__ != module.__name__:
                continue  # imported from elsewhere: checked where it is defined
            init = cls.__dict__.get("__init__")
            if init is not None and init.__code__.co_filename != "<string>":
                found[f"{cls.__module__}.{name}"] = cls
    return found


WRITTEN_OUT = _written_out()


def test_the_hot_values_are_found() -> None:
    # the discovery itself: a rename of the marker or a broken walk would check nothing
    assert {
        "streams.engine.signals.LadderPoint",
        "streams.engine.signals.SymbolProjection",
        "streams.engine.events.Fill",
        "streams.engine.events.Mark",
        "streams.engine.account.Position",
        "streams.engine.account.AccountState",
        "streams.engine.watch._SymbolFacts",
        "streams.engine.engine._Layout",
    } <= WRITTEN_OUT.keys()


@pytest.mark.parametrize("name", sorted(WRITTEN_OUT))
def test_a_written_out_init_takes_the_fields_in_order_with_their_defaults(name: str) -> None:
    cls = WRITTEN_OUT[name]
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # no self
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for param, field in zip(params, fields, strict=True):
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        given = field.default
        expected = inspect.Parameter.empty if given is dataclasses.MISSING else given
        assert param.default == expected, field.name
        assert field.default_factory is dataclasses.MISSING  # a factory: not written out


@pytest.mark.parametrize("name", sorted(WRITTEN_OUT))
def test_a_written_out_init_sets_each_field_to_its_own_argument(name: str) -> None:
    cls = WRITTEN_OUT[name]
    names = [f.name for f in dataclasses.fields(cls)]
    values = [object() for _ in names]  # distinct: a swapped or missed field shows
    by_place = cls(*values)
    by_name = cls(**dict(zip(names, values, strict=True)))
    for field_name, value in zip(names, values, strict=True):
        assert getattr(by_place, field_name) is value, field_name
        assert getattr(by_name, field_name) is value, field_name
    assert by_place == by_name
    if cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(by_place, names[0], values[-1])


def test_an_account_risk_sets_each_field_to_its_own_argument() -> None:
    # not a dataclass (slots, lazy positions) but written out the same way
    from streams.engine.risk import AccountRisk

    params = list(inspect.signature(AccountRisk.__init__).parameters)[1:]
    values = {name: object() for name in params}
    risk = AccountRisk(**values)  # type: ignore[arg-type]
    stored = {"positions": "_positions", "warning_ratio": "_warning"}
    for name, value in values.items():
        assert getattr(risk, stored.get(name, name)) is value, name
    with pytest.raises(AttributeError, match="immutable"):
        risk.equity = 0


def test_the_evaluations_build_each_position_risk_with_every_field_in_its_place() -> None:
    # PositionRisk is made by tuple.__new__ (its generated __new__ is interpreted): a
    # field left out or out of place would still be a tuple. Two cross positions
    # evaluated, then BTC's mark moved (evaluate_moved: rows, positions made from them).
    from streams.engine.risk import PositionRisk, evaluate, evaluate_moved
    from tests.helpers import btc_long_eth_short, bundled_instruments, raw

    instruments = bundled_instruments()
    state, marks = btc_long_eth_short()
    ratio = 7 * 10**8 // 10
    risk = evaluate(state, marks, instruments, warning_ratio=ratio)
    moved_marks = {**marks, "BTCUSDT": raw("47000")}
    moved = evaluate_moved(state, moved_marks, risk, {"BTCUSDT"})
    assert moved is not None
    made = [(p, marks) for p in risk.positions] + [
        (p, moved_marks) for p in [*(moved.rows or {}).values(), *moved.positions]
    ]
    assert len(made) == 6
    for pos, at in made:
        assert type(pos) is PositionRisk
        assert len(pos) == len(PositionRisk._fields)
        given = state.position(pos.symbol)
        assert given is not None
        assert (pos.symbol, pos.qty, pos.entry_price) == (
            given.symbol,
            given.qty,
            given.entry_price,
        )
        assert pos.mark_price == at[pos.symbol]
        assert pos.instrument is instruments[pos.symbol]
        assert (pos.isolated, pos.warning_ratio) == (False, ratio)
