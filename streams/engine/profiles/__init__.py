"""Venue profiles: ranking score, rank lights and ADL execution rules per venue."""

from __future__ import annotations

from streams.engine.errors import ConfigError
from streams.engine.profiles.base import (
    LIGHTS,
    RankInput,
    VenueProfile,
    adl_fee,
    queue_reaches,
)
from streams.engine.profiles.venues import (
    BinanceProfile,
    BitmexProfile,
    BybitProfile,
    HyperliquidProfile,
    OkxProfile,
)

PROFILES: dict[str, VenueProfile] = {
    p.name: p
    for p in (
        BitmexProfile(),
        BybitProfile(),
        BinanceProfile(),
        OkxProfile(),
        HyperliquidProfile(),
    )
}


def profile_named(name: str) -> VenueProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown venue profile {name!r}; known: {sorted(PROFILES)}") from None


__all__ = [
    "LIGHTS",
    "PROFILES",
    "RankInput",
    "VenueProfile",
    "adl_fee",
    "profile_named",
    "queue_reaches",
]
