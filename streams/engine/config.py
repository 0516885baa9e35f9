"""Engine settings: thresholds, shock grid and refresh intervals (event time)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.engine.dedupe import DEFAULT_MAX_IDS, DEFAULT_WINDOW_MS
from streams.engine.risk import DEFAULT_WARNING_RATIO
from streams.engine.sanity import SanityBands

DEFAULT_SHOCKS = (
    -0.5, -0.4, -0.3, -0.2, -0.15, -0.1, -0.05, -0.02, -0.01,
    0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
)  # fmt: skip
DEFAULT_SANITY = SanityBands()
NEVER_MS = 1 << 62  # a refresh period that never comes (an engine that must not rank)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    warning_ratio: int = DEFAULT_WARNING_RATIO  # scaled maintenance/equity for "warning"
    shocks: tuple[float, ...] = DEFAULT_SHOCKS  # ladder grid, fraction of the mark
    imminent_coverage: float = 1.5  # fund / projected loss below this -> imminent
    imminent_distance: float = 0.05  # an adverse move this small exhausts the fund -> imminent
    projection_interval_ms: int = 1_000  # fund projections at most this often per fund
    rank_refresh_ms: int = 1_000  # ADL queue re-ranked and lit this often per symbol
    # False: a partition's engine, whose positions' places (lights) need every partition's
    light_locally: bool = True
    trigger_refresh_ms: int = 1_000  # a triggered symbol re-announced at most this often
    runway_window_ms: int = 300_000  # drawdown rate measured over this window
    # fill and balance ids remembered this long (event time) and at most this many
    dedupe_window_ms: int = DEFAULT_WINDOW_MS
    dedupe_max_ids: int = DEFAULT_MAX_IDS
    # keep each account's dedupe ids readable (a partitioned shard writes them with the
    # account's changelog row); the single-process worker rebuilds them from its inputs
    dedupe_by_account: bool = False
    # marks, funds and times no venue would publish: held out (engine.sanity)
    sanity: SanityBands = DEFAULT_SANITY
    # an account on more symbols than this + 1 is "wide": one move budget for its cross
    # positions (engine.budget) and one shared value for its ADL-queue rows (engine.queue)
    # instead of a band and a row put per position on each of its events. The same
    # signals either way (tested with 0: every account with several positions is wide)
    wide_after: int = 8


def refresh_due(ts_ms: int, last_ms: int | None, period_ms: int) -> bool:
    """A periodic refresh at ``ts_ms``: the first event of each ``period_ms`` of event
    time (a grid, not "period since the last": every partition, and a restarted one,
    refreshes at the same events). ``NEVER_MS``: never."""
    if period_ms >= NEVER_MS:
        return False
    return last_ms is None or ts_ms // period_ms != last_ms // period_ms
