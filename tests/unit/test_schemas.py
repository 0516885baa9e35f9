"""The input JSON Schemas and the decoder accept the same events: the schema files are
what ``tools/render_schemas.py`` renders from the decoder's tables (one source), and,
checked both ways on generated inputs, an event passes the schema exactly when the
decoder takes it (numbers as decimal strings, ids, unknown fields)."""

from __future__ import annotations

import json
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streams.engine.decode import FIELDS, NUMBER_FIELDS, decode_event, number_pattern
from streams.engine.errors import AdlMonitorError
from tools.render_schemas import SCHEMAS, input_schema_files, render

VALID: dict[str, dict[str, Any]] = {
    "fill": {"type": "fill", "fill_id": "f1", "ts": 1, "account": "a", "symbol": "BTCUSDT",
             "side": "buy", "qty": "1", "price": "1", "fee": "0", "liquidity": "taker",
             "kind": "trade"},
    "mark": {"type": "mark", "ts": 1, "symbol": "BTCUSDT", "mark_price": "1",
             "index_price": "1"},
    "balance": {"type": "balance", "event_id": "e", "ts": 1, "account": "a", "amount": "1",
                "reason": "deposit"},
    "position_config": {"type": "position_config", "ts": 1, "account": "a",
                        "symbol": "BTCUSDT", "margin_mode": "isolated", "leverage": "5"},
    "isolated_margin": {"type": "isolated_margin", "event_id": "e", "ts": 1, "account": "a",
                        "symbol": "BTCUSDT", "amount": "1"},
    "insurance_fund": {"type": "insurance_fund", "ts": 1, "fund": "USDT-M", "balance": "1",
                       "symbol": "BTCUSDT", "symbol_pnl": "-1"},
    "depth": {"type": "depth", "ts": 1, "symbol": "BTCUSDT", "bids": [["1", "1"]],
              "asks": [["2", "1"]]},
}  # fmt: skip
VALIDATORS = {
    kind: Draft202012Validator(json.loads((SCHEMAS / f"input.{kind}.schema.json").read_text()))
    for kind in VALID
}


def decoder_takes(event: dict[str, Any]) -> bool:
    try:
        decode_event(event)
    except AdlMonitorError:
        return False
    return True


def schema_takes(event: dict[str, Any]) -> bool:
    return VALIDATORS[event["type"]].is_valid(event)


def test_a_fund_event_states_a_symbols_pnl_whole_or_not_at_all() -> None:
    """``symbol`` and ``symbol_pnl`` of an insurance_fund event: both or neither."""
    whole = VALID["insurance_fund"]
    bare = {k: v for k, v in whole.items() if k not in ("symbol", "symbol_pnl")}
    assert decoder_takes(bare)
    assert schema_takes(bare)
    for half in ("symbol", "symbol_pnl"):
        event = {k: v for k, v in whole.items() if k != half}
        assert not decoder_takes(event), half
        assert not schema_takes(event), half


def with_number(kind: str, field: str, value: Any) -> dict[str, Any]:
    event = dict(VALID[kind])
    if kind == "depth":
        event[field] = [[value, value]]
    else:
        event[field] = value
    return event


NUMBER_SLOTS = [(kind, field) for kind, fields in NUMBER_FIELDS.items() for field in fields]


@pytest.mark.parametrize("path", input_schema_files(), ids=lambda p: p.name)
def test_every_input_schema_is_rendered_from_the_decoder(path) -> None:
    schema = json.loads(path.read_text())
    assert render(schema) == schema, f"run python tools/render_schemas.py ({path.name})"
    events = schema.get("oneOf", [schema])
    for event in events:
        kind = event["properties"]["type"]["const"]
        assert set(event["properties"]) == FIELDS[kind]
        assert event["additionalProperties"] is False


def test_the_valid_examples_pass_both() -> None:
    for event in VALID.values():
        assert schema_takes(event), event["type"]
        assert decoder_takes(event), event["type"]


# Hand-picked spellings on either side of each rule (the grammar of fixed.to_raw with
# the decoder's bounds: 10^10, 8 decimals, 64 characters); (text, positive?, signed?)
SPELLINGS = [
    ("1", True, True), ("0.5", True, True), (".5", True, True), ("0001.50", True, True),
    ("0.00000001", True, True), ("0.000000010000", True, True), ("0", False, True),
    ("-0", False, True), ("-.5", False, True), ("-1", False, True),
    ("0.000000001", False, False), ("1.123456789", False, False), ("10000000000", True, True),
    ("10000000000.00", True, True), ("10000000000.00000001", False, False),
    ("10000000001", False, False), ("-10000000000", False, True), ("5.", False, False),
    (".", False, False), ("-", False, False), ("", False, False), ("+1", False, False),
    ("1e3", False, False), ("1_000", False, False), (" 1", False, False), ("١", False, False),
    ("0x10", False, False), ("NaN", False, False), ("Infinity", False, False),
    ("0" * 63 + "1", True, True), ("0" * 64 + "1", False, False),
]  # fmt: skip


@pytest.mark.parametrize(("text", "positive", "signed"), SPELLINGS)
def test_hand_picked_spellings_agree(text: str, positive: bool, signed: bool) -> None:
    for kind, field in NUMBER_SLOTS:
        event = with_number(kind, field, text)
        want = signed if NUMBER_FIELDS[kind][field] == "signed" else positive
        if NUMBER_FIELDS[kind][field] == "at_least_one":
            want = positive and Decimal(text) >= 1
        assert decoder_takes(event) is want, (kind, field, text)
        assert schema_takes(event) is want, (kind, field, text)


NUMBERISH = st.text(alphabet="0123456789.-+e_ ", max_size=20)
DECIMALS = st.decimals(
    min_value=Decimal("-2e10"), max_value=Decimal("2e10"), places=10, allow_nan=False
).map(lambda d: format(d, "f"))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NUMBER_SLOTS), st.one_of(NUMBERISH, DECIMALS))
def test_any_number_text_passes_both_or_neither(slot: tuple[str, str], text: str) -> None:
    event = with_number(*slot, text)
    assert decoder_takes(event) is schema_takes(event), (slot, text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_what_a_pattern_generates_the_decoder_takes(data: st.DataObject) -> None:
    kind, field = data.draw(st.sampled_from(NUMBER_SLOTS))
    text = data.draw(st.from_regex(number_pattern(NUMBER_FIELDS[kind][field]), fullmatch=True))
    event = with_number(kind, field, text)
    assert decoder_takes(event) is (len(text) <= 64), (kind, field, text)
    assert schema_takes(event) is (len(text) <= 64)


@settings(max_examples=200)
@given(st.sampled_from(sorted(VALID)), st.text(string.printable, min_size=1, max_size=12))
def test_an_unknown_field_fails_both(kind: str, name: str) -> None:
    event = {**VALID[kind], name: "1"}
    known = name in FIELDS[kind]
    # the kind's own schema: ``name`` may be "type" itself (found by a CI run)
    assert decoder_takes(event) is VALIDATORS[kind].is_valid(event)
    if not known:
        assert not decoder_takes(event)


@pytest.mark.parametrize("field", ["fill_id", "account", "symbol"])
def test_id_lengths_agree(field: str) -> None:
    for length, ok in ((256, True), (257, False)):
        event = {**VALID["fill"], field: "x" * length}
        # a 256-character symbol is well-formed; only the instruments refuse it
        assert schema_takes(event) is ok
        assert decoder_takes(event) is ok


def test_json_numbers_agree_on_bounds() -> None:
    for value, ok in ((1, True), (10**10, True), (10**10 + 1, False), (0.5, True),
                      (-1, False), (1e11, False)):  # fmt: skip
        event = with_number("fill", "qty", value)
        assert decoder_takes(event) is ok, value
        assert schema_takes(event) is ok, value
    # what a schema cannot say of a binary float: its decimals (the decoder refuses)
    event = with_number("fill", "qty", 0.123456789)
    assert schema_takes(event)
    assert not decoder_takes(event)
