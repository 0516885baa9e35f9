import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.decode import decode_event, decode_line
from streams.engine.errors import InvalidEvent, UnknownSymbol
from streams.engine.events import Depth, Fill, FillKind, Mark, Side
from tests.helpers import raw

SYMBOLS = {"BTCUSDT"}
FILL = {
    "type": "fill",
    "fill_id": "f1",
    "ts": 1,
    "account": "a",
    "symbol": "BTCUSDT",
    "side": "buy",
    "qty": "0.5",
    "price": 60000.5,
}


def test_fill_accepts_numbers_and_decimal_strings():
    event = decode_event(FILL, SYMBOLS)
    assert isinstance(event, Fill)
    assert event.qty == raw("0.5")
    assert event.price == raw("60000.5")
    assert event.fee == 0
    assert event.side is Side.BUY
    assert event.kind is FillKind.TRADE


def test_json_float_keeps_the_written_digits():
    event = decode_line(b'{"type":"mark","symbol":"BTCUSDT","ts":5,"mark_price":0.1}', SYMBOLS)
    assert isinstance(event, Mark)
    assert event.mark_price == 10_000_000  # not 0.1000000000000000055...


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"qty": None}, "qty"),
        ({"qty": "0"}, "qty"),
        ({"qty": "-1"}, "qty"),
        ({"price": "NaN"}, "price"),
        ({"price": float("inf")}, "price"),
        ({"price": True}, "price"),
        ({"side": "long"}, "side"),
        ({"side": "BUY"}, "side"),  # values are case-sensitive
        ({"side": ["buy"]}, "side"),  # not a string (unhashable): still this field's error
        ({"side": 1}, "side"),
        ({"ts": "yesterday"}, "ts"),
        ({"account": 7}, "account"),
        ({"kind": "gift"}, "kind"),
        ({"liquidity": "both"}, "liquidity"),
        ({"qty": "0.000000001"}, "qty"),
    ],
)
def test_bad_fields_are_named(change, field):
    bad = {**FILL, **change}
    with pytest.raises(InvalidEvent) as info:
        decode_event(bad, SYMBOLS)
    assert info.value.field == field


def test_unknown_symbol_is_its_own_error():
    with pytest.raises(UnknownSymbol):
        decode_event({**FILL, "symbol": "DOGEUSDT"}, SYMBOLS)


def test_not_json_and_unknown_type():
    with pytest.raises(InvalidEvent, match="not JSON"):
        decode_line(b"{oops", SYMBOLS)
    with pytest.raises(InvalidEvent) as info:
        decode_event({"type": "trade"}, SYMBOLS)
    assert info.value.field == "type"
    with pytest.raises(InvalidEvent):
        decode_line(b"[1, 2]", SYMBOLS)


def test_depth_levels_are_sorted_best_first_and_validated():
    event = decode_event(
        {
            "type": "depth",
            "ts": 1,
            "symbol": "BTCUSDT",
            "bids": [["99", "1"], ["100", "2"]],
            "asks": [["102", "1"], ["101", "3"]],
        },
        SYMBOLS,
    )
    assert isinstance(event, Depth)
    assert [p for p, _ in event.bids] == [raw("100"), raw("99")]
    assert [p for p, _ in event.asks] == [raw("101"), raw("102")]
    with pytest.raises(InvalidEvent) as info:
        decode_event({"type": "depth", "ts": 1, "symbol": "BTCUSDT", "bids": [["1"]], "asks": []})
    assert info.value.field == "bids[0]"


def test_leverage_below_one_is_refused():
    with pytest.raises(InvalidEvent) as info:
        decode_event(
            {
                "type": "position_config",
                "ts": 1,
                "account": "a",
                "symbol": "BTCUSDT",
                "margin_mode": "isolated",
                "leverage": "0.5",
            },
            SYMBOLS,
        )
    assert info.value.field == "leverage"


@pytest.mark.parametrize(
    ("field", "value"),
    [("qty", "10000000000.00000001"), ("price", "1e11"), ("qty", 10**40), ("price", "92233720369")],
)
def test_prices_and_quantities_beyond_1e10_units_are_refused(field, value):
    # the engine's columns hold raw units (1e-8) in int64: 1e10 units = 1e18 raw is the
    # documented bound (2^63 ~ 9.2e18); 92,233,720,369 units is just past what int64 holds
    fields = {"fill_id": "f", "ts": 1, "account": "a", "symbol": "BTCUSDT", "side": "buy",
              "qty": "1", "price": "100", field: value}  # fmt: skip
    with pytest.raises(InvalidEvent, match=field):
        decode_event({"type": "fill", **fields})
    fields[field] = "10000000000"  # exactly the bound: accepted
    assert decode_event({"type": "fill", **fields}) is not None


# The hostile numbers of issue 12, each with what a strict decoder must answer: a value
# written exactly, or a dead letter naming the field (never another exception).
HOSTILE_MARKS = [
    ("1e5000", None),  # exponent notation: not a plain decimal
    ("1e999999", None),  # was decimal.Overflow, a crash at every restart
    ("9" * 5_000_000, None),  # a 5-million-digit price: refused before it is parsed
    ("0.010000000000000000000000000001", None),  # was rounded to 0.01 in silence
    ("٠.٠١", None),  # Arabic-Indic digits (Python's int() and Decimal() read them)
    ("0.0_1", None),  # digit grouping (the same)
    (" 100", None),  # padding
    ("+100", None),
    ("100.", None),
    ("0.0100000000000", 1_000_000),  # zeros past the 8th decimal change nothing: exact
    (".5", 50_000_000),  # as the JSON Schemas' pattern allows
    (1e-05, 1_000),  # a JSON float: its shortest decimal (repr "1e-05") is 0.00001
    (1e-09, None),  # ... and 0.000000001 has 9 decimals
]


@pytest.mark.parametrize(("value", "raw"), HOSTILE_MARKS, ids=lambda v: repr(v)[:20])
def test_hostile_numbers_are_exact_or_dead_letters(value, raw):
    mark = {"type": "mark", "symbol": "BTCUSDT", "ts": 5, "mark_price": value}
    if raw is None:
        with pytest.raises(InvalidEvent, match="mark_price"):
            decode_event(mark)
    else:
        event = decode_event(mark)
        assert isinstance(event, Mark)
        assert event.mark_price == raw


@pytest.mark.parametrize("amount", ["-1" + "0" * 40, "10000000000.00000001", -(10**11)])
def test_money_is_bounded_like_prices(amount):
    # a balance of -10^40 would otherwise bankrupt its account past any fund (issue 12)
    balance = {"type": "balance", "event_id": "e", "ts": 1, "account": "a", "amount": amount,
               "reason": "deposit"}  # fmt: skip
    with pytest.raises(InvalidEvent, match="amount"):
        decode_event(balance)


HOSTILE_TEXTS = ["BTCUSDT", "1e999999", "9" * 100, "NaN", "-0", "٠", "0.0_1", "", "buy",
                 "deposit", "cross", "isolated", "1", "0.5"]  # fmt: skip
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = ["ts", "fill_id", "event_id", "account", "symbol", "side", "qty", "price",
           "fee", "kind", "mark_price", "index_price", "amount", "reason", "fund", "balance",
           "bids", "asks", "leverage", "margin_mode", "liquidity", "margin"]  # fmt: skip
_TYPES = ["fill", "mark", "balance", "position_config", "isolated_margin", "insurance_fund",
          "depth", "other"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.fixed_dictionaries(
            {"type": st.sampled_from(_TYPES)},
            optional={f: _JSON_VALUES | st.sampled_from(HOSTILE_TEXTS) for f in _FIELDS},
        ).map(lambda o: json.dumps(o).encode()),
    )
)
def test_any_input_decodes_or_is_a_dead_letter(line: bytes) -> None:
    # the worker and replay dead-letter InvalidEvent; anything else would stop them
    with contextlib.suppress(InvalidEvent):
        decode_line(line, SYMBOLS)
