"""Decode and validate input events from JSON objects.

Numbers may be JSON numbers or decimal strings. A JSON float is converted through its
shortest round-trip ``repr`` (what the sender wrote), never multiplied by the scale.
Every failure raises ``InvalidEvent`` naming the field.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, TypeVar

import orjson

from streams.engine.errors import InvalidEvent, UnknownSymbol
from streams.engine.events import (
    Balance,
    BalanceReason,
    Depth,
    Event,
    Fill,
    FillKind,
    InsuranceFund,
    IsolatedMargin,
    MarginMode,
    Mark,
    PositionConfig,
    Side,
)
from streams.engine.fixed import FixedPointError, MoneyRaw, PriceRaw, QtyRaw, to_raw

E = TypeVar("E", bound=Enum)

# Every number is at most 10^10 units in magnitude (raw 10^18 < 2^63 ~ 9.2e18): prices
# and quantities are held in int64 columns (the ADL queue's sizes and marks:
# engine.queue), with room for a position built of several such fills; money (balances,
# fees, the fund, margins) stays in Python ints, bounded alike ($10 billion: above any
# venue's insurance fund) so that one absurd amount cannot carry the desk's figures.
# Larger is refused, not wrapped.
MAX_PRICE_OR_QTY_RAW = 10**18
# Refused before parsing: a message (line) longer than this, an id or name longer than
# MAX_ID_CHARS. A venue's event is a few hundred bytes; a book of 10,000 levels ~400 KB.
MAX_MESSAGE_BYTES = 1 << 20
MAX_ID_CHARS = 256
MAX_DEPTH_LEVELS = 10_000  # per side of one book_depth message


# What each input type may carry (``type`` included), and which of its fields are
# numbers of which kind. The JSON Schemas in ``schemas/`` say the same (a test holds
# them to these tables and to ``number_pattern``); anything else is refused, so that a
# misspelt optional field ("liquidty") cannot silently become its default.
NumberKind = Literal["positive", "signed", "at_least_one"]
NUMBER_FIELDS: dict[str, dict[str, NumberKind]] = {
    "fill": {"qty": "positive", "price": "positive", "fee": "signed"},
    "mark": {"mark_price": "positive", "index_price": "positive"},
    "balance": {"amount": "signed"},
    "position_config": {"leverage": "at_least_one"},
    "isolated_margin": {"amount": "signed"},
    "insurance_fund": {"balance": "signed", "symbol_pnl": "signed"},
    "depth": {"bids": "positive", "asks": "positive"},  # each level's price and qty
}
FIELDS: dict[str, frozenset[str]] = {
    kind: frozenset({"type", *numbers, *others})
    for kind, numbers, others in (
        ("fill", NUMBER_FIELDS["fill"],
         ("fill_id", "ts", "account", "symbol", "side", "liquidity", "kind")),
        ("mark", NUMBER_FIELDS["mark"], ("symbol", "ts")),
        ("balance", NUMBER_FIELDS["balance"],
         ("event_id", "ts", "account", "reason", "currency")),
        ("position_config", NUMBER_FIELDS["position_config"],
         ("ts", "account", "symbol", "margin_mode")),
        ("isolated_margin", NUMBER_FIELDS["isolated_margin"],
         ("event_id", "ts", "account", "symbol")),
        ("insurance_fund", NUMBER_FIELDS["insurance_fund"], ("ts", "fund", "symbol")),
        ("depth", NUMBER_FIELDS["depth"], ("ts", "symbol")),
    )
}  # fmt: skip


def number_pattern(kind: NumberKind) -> str:
    """The decimal-string grammar of ``fixed.to_raw`` with the decoder's bounds, as a
    JSON Schema (ECMA-262) pattern: ASCII digits, an optional '.' with digits after
    it, digits past the 8th decimal only zeros, at most 10^10 in magnitude; '-' only
    for ``signed``; ``positive`` needs a non-zero digit, ``at_least_one`` a value >= 1.
    (With ``maxLength`` ``MAX_DECIMAL_CHARS``.)"""
    fraction = r"\.[0-9]{1,8}0*"
    whole = r"0*[0-9]{1,10}(?:" + fraction + r")?|0*" + fraction  # below 10^10
    from_one = r"0*[1-9][0-9]{0,9}(?:" + fraction + r")?"  # 1 <= x < 10^10
    # below 1, above 0: a non-zero digit among the first 8 decimals, zeros after them
    tiny = "|".join(f"0{{{k}}}[1-9][0-9]{{0,{7 - k}}}" for k in range(8))
    ten_billion = r"0*10000000000(?:\.0+)?"
    body = {
        "signed": f"-?(?:{whole}|{ten_billion})",
        "positive": rf"{from_one}|0*\.(?:{tiny})0*|{ten_billion}",
        "at_least_one": f"{from_one}|{ten_billion}",
    }[kind]
    return f"^(?:{body})$"


def check_size(message: bytes | str, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
    """``InvalidEvent`` (field ``$size``) for a message too large to parse."""
    if len(message) > max_bytes:
        raise InvalidEvent("$size", f"{len(message)} bytes: at most {max_bytes}, not parsed")


def _present(obj: Mapping[str, Any], field: str) -> Any:
    if field not in obj or obj[field] is None:
        raise InvalidEvent(field, "missing")
    return obj[field]


def _number(obj: Mapping[str, Any], field: str, *, positive: bool = False) -> int:
    return _number_value(_present(obj, field), field, positive=positive)


def _number_value(value: Any, field: str, *, positive: bool = False) -> int:
    if isinstance(value, bool):
        raise InvalidEvent(field, f"expected a number, got {value!r}")
    number: str | int | Decimal
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent(field, f"not a finite number: {value!r}")
        number = Decimal(repr(value))  # the shortest decimal that reads back as the float
    elif isinstance(value, int | str):
        number = value  # a string: the strict grammar of fixed.DECIMAL_STRING
    else:
        raise InvalidEvent(field, f"expected a number or decimal string, got {value!r}")
    try:
        raw = to_raw(number)
    except FixedPointError as exc:
        raise InvalidEvent(field, str(exc)) from exc
    if positive and raw <= 0:
        raise InvalidEvent(field, f"must be > 0, got {value!r}")
    if abs(raw) > MAX_PRICE_OR_QTY_RAW:
        shown = value[:40] if isinstance(value, str) else value
        raise InvalidEvent(field, f"must be at most 10000000000 (1e10) in magnitude, got {shown!r}")
    return raw


# what an id may not hold: control characters (the engine keys a coin wallet with one,
# ``engine.inverse``); what a currency code may not: anything but ASCII letters and digits
ID_REFUSED = r"[\x00-\x1f\x7f]"
CURRENCY_REFUSED = r"[^A-Za-z0-9]"
MAX_CURRENCY_CHARS = 16
_ID_REFUSED = re.compile(ID_REFUSED)
_CURRENCY_REFUSED = re.compile(CURRENCY_REFUSED)


def _text(obj: Mapping[str, Any], field: str) -> str:
    value = _present(obj, field)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(field, f"expected a non-empty string, got {value!r}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidEvent(field, f"at most {MAX_ID_CHARS} characters, got {len(value)}")
    if _ID_REFUSED.search(value) is not None:
        raise InvalidEvent(field, f"no control characters, got {value[:40]!r}")
    return value


def _currency(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("currency")
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_CURRENCY_CHARS
        or _CURRENCY_REFUSED.search(value) is not None
    ):
        raise InvalidEvent(
            "currency", f"expected a currency code (ASCII letters, digits), got {value!r}"
        )
    return value


def _ts(obj: Mapping[str, Any]) -> int:
    value = _present(obj, "ts")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEvent("ts", f"expected milliseconds as a non-negative integer, got {value!r}")
    return value


def _choice(obj: Mapping[str, Any], field: str, enum: type[E], default: E | None = None) -> E:
    value = obj.get(field)
    if value is None:
        if default is None:
            raise InvalidEvent(field, "missing")
        return default
    member: E | None = _members(enum).get(value) if isinstance(value, str) else None
    if member is None:
        allowed = "|".join(str(m.value) for m in enum)
        raise InvalidEvent(field, f"expected one of {allowed}, got {value!r}")
    return member


@functools.cache
def _members(enum: type[E]) -> dict[str, E]:
    """The enum's members by value: a dict lookup, where ``enum(value)`` runs the enum
    machinery's Python (~0.5 us, twice a fill). Every enum decoded is a StrEnum."""
    return {str(m.value): m for m in enum}


def _symbol(obj: Mapping[str, Any], symbols: Collection[str] | None) -> str:
    symbol = _text(obj, "symbol")
    if symbols is not None and symbol not in symbols:
        raise UnknownSymbol("symbol", f"unknown symbol {symbol!r}")
    return symbol


def _levels(obj: Mapping[str, Any], field: str) -> tuple[tuple[Any, Any], ...]:
    value = _present(obj, field)
    if not isinstance(value, list):
        raise InvalidEvent(field, "expected a list of [price, qty]")
    if len(value) > MAX_DEPTH_LEVELS:
        raise InvalidEvent(field, f"at most {MAX_DEPTH_LEVELS} levels, got {len(value)}")
    levels = []
    for i, level in enumerate(value):
        name = f"{field}[{i}]"
        if not isinstance(level, list | tuple) or len(level) != 2:
            raise InvalidEvent(name, f"expected [price, qty], got {level!r}")
        levels.append(
            (
                _number_value(level[0], name, positive=True),
                _number_value(level[1], name, positive=True),
            )
        )
    return tuple(levels)


def _fill(o: Mapping[str, Any], symbols: Collection[str] | None) -> Fill:
    liquidity = o.get("liquidity")
    if liquidity is not None and liquidity not in ("maker", "taker"):
        raise InvalidEvent("liquidity", f"expected maker|taker, got {liquidity!r}")
    return Fill(
        fill_id=_text(o, "fill_id"),
        ts_ms=_ts(o),
        account=_text(o, "account"),
        symbol=_symbol(o, symbols),
        side=_choice(o, "side", Side),
        qty=QtyRaw(_number(o, "qty", positive=True)),
        price=PriceRaw(_number(o, "price", positive=True)),
        fee=MoneyRaw(_number(o, "fee") if o.get("fee") is not None else 0),
        liquidity=liquidity,
        kind=_choice(o, "kind", FillKind, FillKind.TRADE),
    )


def _mark(o: Mapping[str, Any], symbols: Collection[str] | None) -> Mark:
    index = o.get("index_price")
    return Mark(
        symbol=_symbol(o, symbols),
        ts_ms=_ts(o),
        mark_price=PriceRaw(_number(o, "mark_price", positive=True)),
        index_price=None if index is None else PriceRaw(_number(o, "index_price", positive=True)),
    )


def _balance(o: Mapping[str, Any], symbols: Collection[str] | None) -> Balance:
    return Balance(
        event_id=_text(o, "event_id"),
        ts_ms=_ts(o),
        account=_text(o, "account"),
        amount=MoneyRaw(_number(o, "amount")),
        reason=_choice(o, "reason", BalanceReason),
        currency=_currency(o),
    )


def _position_config(o: Mapping[str, Any], symbols: Collection[str] | None) -> PositionConfig:
    leverage = _number(o, "leverage")
    if leverage < 10**8:
        raise InvalidEvent("leverage", f"must be >= 1, got {o['leverage']!r}")
    return PositionConfig(
        ts_ms=_ts(o),
        account=_text(o, "account"),
        symbol=_symbol(o, symbols),
        margin_mode=_choice(o, "margin_mode", MarginMode),
        leverage=leverage,
    )


def _isolated_margin(o: Mapping[str, Any], symbols: Collection[str] | None) -> IsolatedMargin:
    return IsolatedMargin(
        event_id=_text(o, "event_id"),
        ts_ms=_ts(o),
        account=_text(o, "account"),
        symbol=_symbol(o, symbols),
        amount=MoneyRaw(_number(o, "amount")),
    )


def _insurance_fund(o: Mapping[str, Any], symbols: Collection[str] | None) -> InsuranceFund:
    symbol = pnl = None
    if o.get("symbol") is not None or o.get("symbol_pnl") is not None:
        symbol = _symbol(o, symbols)  # "missing" when only the PnL is there, and vice versa
        pnl = MoneyRaw(_number(o, "symbol_pnl"))
    return InsuranceFund(
        ts_ms=_ts(o),
        fund=_text(o, "fund"),
        balance=MoneyRaw(_number(o, "balance")),
        symbol=symbol,
        symbol_pnl=pnl,
    )


def _depth(o: Mapping[str, Any], symbols: Collection[str] | None) -> Depth:
    bids = _levels(o, "bids")
    asks = _levels(o, "asks")
    return Depth(
        ts_ms=_ts(o),
        symbol=_symbol(o, symbols),
        bids=tuple(sorted(bids, key=lambda lv: -lv[0])),
        asks=tuple(sorted(asks, key=lambda lv: lv[0])),
    )


_DECODERS: dict[str, Callable[[Mapping[str, Any], Collection[str] | None], Event]] = {
    "fill": _fill,
    "mark": _mark,
    "balance": _balance,
    "position_config": _position_config,
    "isolated_margin": _isolated_margin,
    "insurance_fund": _insurance_fund,
    "depth": _depth,
}

EVENT_TYPES = tuple(_DECODERS)


def decode_event(
    obj: Any, symbols: Collection[str] | None = None, event_type: str | None = None
) -> Event:
    """Validate one JSON object; ``event_type`` overrides its ``"type"`` (Kafka topics)."""
    if not isinstance(obj, dict):
        raise InvalidEvent("$", f"expected a JSON object, got {type(obj).__name__}")
    kind = event_type if event_type is not None else obj.get("type")
    if not isinstance(kind, str) or kind not in _DECODERS:
        raise InvalidEvent("type", f"expected one of {'|'.join(EVENT_TYPES)}, got {kind!r}")
    decoder = _DECODERS[kind]
    unknown = obj.keys() - FIELDS[kind]
    if unknown:
        shown = ", ".join(repr(f[:40]) for f in sorted(unknown)[:5])
        raise InvalidEvent("$fields", f"unknown field(s) of {kind}: {shown}")
    return decoder(obj, symbols)


def decode_line(
    line: bytes | str, symbols: Collection[str] | None = None, max_bytes: int = MAX_MESSAGE_BYTES
) -> Event:
    """Parse one JSONL line and validate it (refused unparsed past ``max_bytes``)."""
    check_size(line, max_bytes)
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("$", f"not JSON: {exc}") from None
    return decode_event(obj, symbols)
