"""How much warning the monitor gave before each real ADL of a scenario.

An *ADL episode* is a (symbol, time) at which the input carries ``kind: adl`` fills. For
each one, the symbol's ADL stage just before it (the last ``adl_triggers`` record of the
symbol at or before that time) says whether the desk had been warned: ``imminent`` or
``triggered`` is a warning, ``cleared`` or nothing is not. The warning time is measured
from the start of that warned streak (the first imminent/triggered record after the last
``cleared``) to the episode.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

WARNED_STAGES = frozenset({"imminent", "triggered"})


@dataclass(frozen=True, slots=True)
class Episode:
    ts_ms: int
    symbol: str
    warned: bool
    warning_seconds: float | None  # from the start of the warned streak
    triggered_seconds: float | None  # from the first "triggered" of the streak


def score_warnings(
    adl_fills: Iterable[tuple[int, str]], stages: Iterable[tuple[int, str, str]]
) -> list[Episode]:
    """``adl_fills``: (ts, symbol) of each ADL fill; ``stages``: (ts, symbol, stage) of each
    ADL-trigger output, in output order."""
    streaks: dict[str, list[tuple[int, str, int | None, int | None]]] = defaultdict(list)
    # per symbol: (ts, stage, streak start, first triggered of the streak)
    start: dict[str, int | None] = {}
    first_trigger: dict[str, int | None] = {}
    for ts, symbol, stage in stages:
        if stage in WARNED_STAGES:
            start[symbol] = start.get(symbol) or ts
            if stage == "triggered":
                first_trigger[symbol] = first_trigger.get(symbol) or ts
        else:
            start[symbol] = first_trigger[symbol] = None
        streaks[symbol].append((ts, stage, start.get(symbol), first_trigger.get(symbol)))
    times = {symbol: [h[0] for h in history] for symbol, history in streaks.items()}
    episodes = []
    for ts, symbol in sorted(set(adl_fills)):
        history = streaks.get(symbol, [])
        i = bisect.bisect_left(times.get(symbol, []), ts) - 1  # strictly before
        if i < 0 or history[i][1] not in WARNED_STAGES:
            episodes.append(Episode(ts, symbol, False, None, None))
            continue
        _, _, began, triggered = history[i]
        episodes.append(
            Episode(
                ts,
                symbol,
                True,
                (ts - began) / 1000 if began is not None else None,
                (ts - triggered) / 1000 if triggered is not None else None,
            )
        )
    return episodes


def summarize(episodes: list[Episode]) -> dict[str, object]:
    """The figures a desk asks for: episodes, unwarned ones, warning times."""
    warned = [e.warning_seconds for e in episodes if e.warning_seconds is not None]
    first: dict[str, Episode] = {}
    for e in episodes:
        first.setdefault(e.symbol, e)
    return {
        "adl_episodes": len(episodes),
        "unwarned_episodes": sum(1 for e in episodes if not e.warned),
        "warning_seconds_min": round(min(warned), 3) if warned else None,
        "warning_seconds_median": round(statistics.median(warned), 3) if warned else None,
        "first_adl_by_symbol": {
            sym: {"ts": e.ts_ms, "warned": e.warned, "warning_seconds": e.warning_seconds}
            for sym, e in sorted(first.items())
        },
    }
