"""Write the decoder's rules into the input JSON Schemas (``schemas/input.*`` and the input
topics' ``schemas/topic.*``): each number field's decimal-string pattern and bounds, each
id's length limits, a book's level limit. The decoder (``streams.engine.decode``) is the
one source; ``tests/unit/test_schemas.py`` fails when a schema file differs from what
this renders, and checks both ways that schema and decoder accept the same inputs.

    python tools/render_schemas.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.engine.decode import (
    CURRENCY_REFUSED,
    ID_REFUSED,
    MAX_CURRENCY_CHARS,
    MAX_DEPTH_LEVELS,
    MAX_ID_CHARS,
    NUMBER_FIELDS,
    NumberKind,
    number_pattern,
)
from streams.engine.fixed import MAX_DECIMAL_CHARS
from streams.pipeline.topics import INPUTS

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
TEXT_FIELDS = ("fill_id", "event_id", "account", "symbol", "fund")
BOUND = 10_000_000_000  # the decoder's magnitude bound, 10^10
_NUMBER = {
    "positive": ({"exclusiveMinimum": 0, "maximum": BOUND}, "a positive"),
    "signed": ({"minimum": -BOUND, "maximum": BOUND}, "a"),
    "at_least_one": ({"minimum": 1, "maximum": BOUND}, "a (>= 1)"),
}


def number_schema(kind: NumberKind) -> dict[str, Any]:
    bounds, article = _NUMBER[kind]
    return {
        "oneOf": [
            {"type": "number", **bounds},
            {"type": "string", "pattern": number_pattern(kind), "maxLength": MAX_DECIMAL_CHARS},
        ],
        "description": f"{article} decimal string (or JSON number), at most 10^10 in "
        "magnitude and 8 decimal places (a JSON number's decimals are checked by the "
        "decoder: a schema cannot say it of a binary float)",
    }


def render_event(event: dict[str, Any]) -> dict[str, Any]:
    """One input event's schema with the decoder's number, text and level rules."""
    kind = event["properties"]["type"]["const"]
    out = json.loads(json.dumps(event))
    props = out["properties"]
    for field, number_kind in NUMBER_FIELDS[kind].items():
        if kind == "depth":
            level = number_schema(number_kind)
            props[field] = {
                "type": "array",
                "maxItems": MAX_DEPTH_LEVELS,
                "items": {"type": "array", "prefixItems": [level, level], "minItems": 2,
                          "maxItems": 2},
            }  # fmt: skip
        else:
            props[field] = number_schema(number_kind)
    for field in TEXT_FIELDS:
        if field in props:
            props[field] = {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_ID_CHARS,
                "not": {"pattern": ID_REFUSED},
                "description": "no control characters",
            }
    if "currency" in props:
        props["currency"] = {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CURRENCY_CHARS,
            "not": {"pattern": CURRENCY_REFUSED},
            "description": "the wallet's currency (absent: USDT): a coin wallet margins the "
            "symbols settled in it (inverse contracts), apart from the USDT wallet",
        }
    out["additionalProperties"] = False
    return out


def render(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema file: one event, or a topic's ``oneOf`` of events."""
    if "oneOf" in schema and "properties" not in schema:
        return {**schema, "oneOf": [render_event(e) for e in schema["oneOf"]]}
    return render_event(schema)


def input_schema_files() -> list[Path]:
    files = sorted(SCHEMAS.glob("input.*.schema.json"))
    return files + [SCHEMAS / f"{spec.schema}.schema.json" for spec in INPUTS]


def main() -> None:
    for path in input_schema_files():
        rendered = json.dumps(render(json.loads(path.read_text())), indent=2) + "\n"
        if rendered != path.read_text():
            path.write_text(rendered)
            print(f"rewrote {path.name}")


if __name__ == "__main__":
    main()
