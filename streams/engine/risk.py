"""Evaluate an account at the current marks: equity, margins, thresholds, health.

Cross positions share the cross wallet: equity = wallet + sum of their unrealized PnL;
the account is liquidatable when equity <= sum of their maintenance margins.
An isolated position is judged alone on ``isolated_margin + unrealized_pnl``.
A position with no mark yet is valued at its entry price.

Health, worst first: ``bankrupt`` (equity < 0; deficit = -equity), ``liquidatable``
(equity <= maintenance), ``warning`` (maintenance / equity >= warning ratio), ``healthy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from streams.engine.account import AccountState, Position
from streams.engine.events import MarginMode
from streams.engine.fixed import SCALE, div_floor
from streams.engine.instruments import Instrument
from streams.engine.margin import (
    bankruptcy_price,
    bankruptcy_price_scaled,
    liquidation_price,
    maintenance_margin,
    notional,
    threshold_price,
    unrealized_pnl,
)

DEFAULT_WARNING_RATIO = 7 * SCALE // 10  # maintenance / equity >= 70% -> warning


class Health(IntEnum):
    """Ordered so that ``max`` gives the worst."""

    HEALTHY = 0
    WARNING = 1
    LIQUIDATABLE = 2
    BANKRUPT = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class PositionRisk(NamedTuple):
    """One position as evaluated. A NamedTuple (immutable, like the frozen dataclasses
    elsewhere) because an evaluation builds one per position: an account on 162 symbols
    builds 162 per fill, and a frozen dataclass's ``__init__`` costs ~4x a tuple's.

    The liquidation and warning prices are computed when read, from the fields they
    depend on (``instrument``, ``other_maintenance``, ``warning_ratio`` are kept for
    them): a wide account's fill re-evaluates its 162 positions, and the engine reads
    these two prices only for positions it indexes by threshold (not a wide account's
    cross positions: its move budget) and for outputs."""

    symbol: str
    qty: int
    entry_price: int
    mark_price: int
    unrealized_pnl: int
    notional: int
    maintenance_margin: int
    backing_equity: int  # cross equity of the account, or isolated margin + upnl
    bankruptcy_price: int | None
    isolated: bool
    health: Health
    instrument: Instrument
    other_maintenance: int  # the cross maintenance of the account's other positions; 0 isolated
    warning_ratio: int  # maintenance / equity at which the account is in warning, raw

    @property
    def liquidation_price(self) -> int | None:
        """Where the backing equity equals the maintenance margin, other marks fixed."""
        return liquidation_price(
            self.instrument, self.qty, self.mark_price, self.backing_equity, self.other_maintenance
        )

    @property
    def warning_price(self) -> int | None:
        """Where maintenance / equity reaches the warning ratio, other marks fixed."""
        return threshold_price(
            self.instrument,
            self.qty,
            self.mark_price,
            self.backing_equity,
            self.other_maintenance,
            self.warning_ratio,
        )

    @property
    def deficit(self) -> int:
        """Loss beyond the backing equity; for cross, the account's (shared) deficit."""
        return max(0, -self.backing_equity)

    @property
    def side(self) -> str:
        return "long" if self.qty > 0 else "short"


@dataclass(frozen=True, slots=True)
class AccountRisk:
    account: str
    wallet_balance: int
    equity: int  # cross equity + isolated positions' equity
    maintenance_margin: int
    cross_equity: int
    cross_maintenance: int
    health: Health
    deficit: int  # cross deficit + isolated deficits
    positions: tuple[PositionRisk, ...]

    @property
    def margin_ratio(self) -> float | None:
        """maintenance / equity; ``None`` with no requirement, ``inf`` at equity <= 0."""
        if self.maintenance_margin == 0:
            return 0.0 if self.equity >= 0 else float("inf")
        if self.equity <= 0:
            return float("inf")
        return self.maintenance_margin / self.equity

    @property
    def cross_position_count(self) -> int:
        return sum(1 for p in self.positions if not p.isolated)

    def cross_cushion(self, warning_ratio: int) -> int:
        """Distance of the cross part from its nearest health boundary (quote, raw):
        min |e*w - mm|, |e - mm|, |e| for cross equity e and maintenance mm."""
        e, mm = self.cross_equity, self.cross_maintenance
        return min(abs(div_floor(e * warning_ratio, SCALE) - mm), abs(e - mm), abs(e))


def health_of(equity: int, maintenance: int, warning_ratio: int) -> Health:
    if equity < 0:
        return Health.BANKRUPT
    if maintenance > 0 and equity <= maintenance:
        return Health.LIQUIDATABLE
    if maintenance > 0 and maintenance * SCALE >= warning_ratio * equity:
        return Health.WARNING
    return Health.HEALTHY


def evaluate(
    state: AccountState,
    marks: Mapping[str, int],
    instruments: Mapping[str, Instrument],
    warning_ratio: int = DEFAULT_WARNING_RATIO,
    previous: AccountRisk | None = None,
) -> AccountRisk:
    """The account at ``marks``. ``previous``: an earlier evaluation of the same account,
    whose PnL, notional and maintenance are taken over for every position with the same
    size, entry and mark (they depend on nothing else): a fill of an account on 162
    symbols changes one position, and the marks of a few symbols moved since."""
    rows: list[tuple[Position, Instrument, int, int, int, int, bool]] = []
    cross_upnl = cross_mm = 0
    has_cross = False
    isolated_mode = MarginMode.ISOLATED
    for pos, before in zip(state.positions, _earlier(state, previous), strict=True):
        mark = marks.get(pos.symbol, pos.entry_price)
        if (
            before is not None
            and before.mark_price == mark
            and before.qty == pos.qty
            and before.entry_price == pos.entry_price
        ):
            inst = before.instrument
            upnl, value, mm = before.unrealized_pnl, before.notional, before.maintenance_margin
        else:
            inst = instruments[pos.symbol]
            upnl = unrealized_pnl(pos.qty, pos.entry_price, mark)
            value = notional(pos.qty, mark)
            mm = maintenance_margin(inst, value)
        isolated = pos.margin_mode is isolated_mode
        rows.append((pos, inst, mark, upnl, value, mm, isolated))
        if not isolated:
            has_cross = True
            cross_upnl += upnl
            cross_mm += mm
    cross_equity = state.wallet_balance + cross_upnl
    cross_health = health_of(cross_equity, cross_mm, warning_ratio)
    cross_scaled = cross_equity * SCALE  # once for every cross position's bankruptcy price

    risks = []
    equity = cross_equity
    deficit = max(0, -cross_equity) if has_cross else 0
    health = cross_health if has_cross else health_of(cross_equity, 0, warning_ratio)
    maintenance = 0
    for pos, inst, mark, upnl, value, mm, isolated in rows:
        qty = pos.qty
        maintenance += mm
        if isolated:
            backing = pos.isolated_margin + upnl
            other_mm = 0
            pos_health = health_of(backing, mm, warning_ratio)
            equity += backing
            deficit += max(0, -backing)
            health = max(health, pos_health)
            bankruptcy = bankruptcy_price(qty, mark, backing)
        else:
            backing = cross_equity
            other_mm = cross_mm - mm
            pos_health = cross_health
            bankruptcy = bankruptcy_price_scaled(qty, mark, cross_scaled)
        risks.append(
            PositionRisk(
                pos.symbol,
                qty,
                pos.entry_price,
                mark,
                upnl,
                value,
                mm,
                backing,
                bankruptcy,
                isolated,
                pos_health,
                inst,
                other_mm,
                warning_ratio,
            )
        )
    return AccountRisk(
        account=state.account,
        wallet_balance=state.wallet_balance,
        equity=equity,
        maintenance_margin=maintenance,
        cross_equity=cross_equity,
        cross_maintenance=cross_mm,
        health=health,
        deficit=deficit,
        positions=tuple(risks),
    )


def _earlier(state: AccountState, previous: AccountRisk | None) -> Sequence[PositionRisk | None]:
    """``previous``'s evaluation of each of ``state``'s positions (``None``: new). Both
    are sorted by symbol and mostly hold the same symbols: then ``previous`` as it is."""
    if previous is None:
        return [None] * len(state.positions)
    before = previous.positions
    if len(before) == len(state.positions) and [p.symbol for p in before] == [
        p.symbol for p in state.positions
    ]:
        return before
    earlier = {p.symbol: p for p in before}
    return [earlier.get(p.symbol) for p in state.positions]
