"""Offline replay of an event file through the engine."""
