"""An input message to an event, or to a dead letter: shared by every consumer."""

from __future__ import annotations

from typing import Any

import orjson

from streams.engine.decode import MAX_MESSAGE_BYTES, check_size, decode_event
from streams.engine.errors import AdlMonitorError, InvalidEvent
from streams.engine.events import Event
from streams.pipeline.topics import INPUTS

INPUT_TYPES = {spec.name: spec.event_types for spec in INPUTS}


def decode_message(
    base_topic: str,
    value: bytes | None,
    symbols: frozenset[str],
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> tuple[Event, dict[str, Any]]:
    """(event, raw object) of a message on input topic ``base_topic`` (unprefixed);
    ``InvalidEvent`` names the field when it does not decode."""
    check_size(value or b"", max_bytes)
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("$", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("$", f"expected a JSON object, got {type(obj).__name__}")
    allowed = INPUT_TYPES[base_topic]
    kind = obj.get("type", allowed[0] if len(allowed) == 1 else None)
    if kind not in allowed:
        raise InvalidEvent("type", f"topic {base_topic} carries {'|'.join(allowed)}, got {kind!r}")
    obj = {**obj, "type": kind}
    return decode_event(obj, symbols, kind), obj


def dead_letter(
    base_topic: str, partition: int, offset: int, value: bytes | None, error: AdlMonitorError
) -> dict[str, Any]:
    """The rejected message with the reason and where it was (topic, partition, offset)."""
    return {
        "error": str(error),
        "field": getattr(error, "field", None),
        "topic": base_topic,
        "partition": partition,
        "offset": offset,
        "input": (value or b"").decode("utf-8", "replace")[:1000],
    }


def dead_letter_payload(base_topic: str, message: Any, error: AdlMonitorError) -> bytes:
    """``dead_letter`` of a consumed message, serialised."""
    return orjson.dumps(
        dead_letter(base_topic, message.partition, message.offset, message.value, error)
    )
