"""The one exception root of the project and its bad-input subclasses.

Domain outcomes (a bankruptcy, an ADL trigger) are signals, never exceptions.
Exceptions are for bugs and bad input, and their messages show the offending values.
"""

from __future__ import annotations


class AdlMonitorError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidEvent(AdlMonitorError):
    """An input event is malformed; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownSymbol(InvalidEvent):
    """An event names a symbol that the instruments file does not define."""


class ConfigError(AdlMonitorError):
    """The instruments file or a setting is invalid."""
