"""The one exception root of the project and its bad-input subclasses.

Domain outcomes (a bankruptcy, an ADL trigger) are signals, never exceptions.
Exceptions are for bugs and bad input, and their messages show the offending values.
"""

from __future__ import annotations


class AdlMonitorError(Exception):
    """Root of every error this project raises on purpose."""


MAX_REASON_CHARS = 512  # a reason quotes the offending value: bounded, so is a dead letter


class InvalidEvent(AdlMonitorError):
    """An input event is malformed; ``field`` names what is wrong (``$``: the message
    as a whole, ``$size``: too large to parse, ``$apply``: see ``EventFailed``)."""

    def __init__(self, field: str, reason: str) -> None:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class EventFailed(InvalidEvent):
    """Applying a valid event raised an unexpected exception: a bug, contained. The
    event is dead-lettered with the exception so the consumer goes on (a crash would
    repeat at every restart: the event is still in the input history). Its effect on
    the state may be partial; the dead-letter alert pages."""

    def __init__(self, error: Exception) -> None:
        super().__init__("$apply", f"internal error: {type(error).__name__}: {error}")


class UnknownSymbol(InvalidEvent):
    """An event names a symbol that the instruments file does not define."""


class ConfigError(AdlMonitorError):
    """The instruments file or a setting is invalid."""
