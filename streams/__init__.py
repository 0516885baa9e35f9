"""adl-monitor: a real-time auto-deleveraging risk monitor for perpetual futures."""

__version__ = "0.1.0"
