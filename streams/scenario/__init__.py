"""Synthetic market scenarios (the bundled example cascade)."""
