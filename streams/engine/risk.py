"""Evaluate an account at the current marks: equity, margins, thresholds, health.

Cross positions share the cross wallet: equity = wallet + sum of their unrealized PnL;
the account is liquidatable when equity <= sum of their maintenance margins.
An isolated position is judged alone on ``isolated_margin + unrealized_pnl``.
A position with no mark yet is valued at its entry price. Where the venue counts the fee
to close against the margin (``Instrument.closing_fee_rate``), unrealized PnL is net of
it (``margin``).

Health, worst first: ``bankrupt`` (equity < 0; deficit = -equity), ``liquidatable``
(equity <= maintenance), ``warning`` (maintenance / equity >= warning ratio), ``healthy``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from typing import NamedTuple

from streams.engine.account import AccountState, Position
from streams.engine.events import MarginMode
from streams.engine.fixed import SCALE, div_floor, ratio
from streams.engine.instruments import Instrument
from streams.engine.margin import (
    bankruptcy_price,
    bankruptcy_price_scaled,
    closing_fee,
    liquidation_price,
    notional,
    on_tick,
    position_maintenance,
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
    cross positions: its move budget) and for outputs.

    The evaluations build it as ``tuple.__new__(PositionRisk, (every field, in order))``:
    the NamedTuple's own ``__new__`` (and ``_replace``) is generated Python, run by the
    interpreter even under the compiled engine (~1% of the crash's replay);
    ``tests/unit/engine/test_value_inits.py`` checks that each holds every field."""

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
            self.instrument,
            self.qty,
            self.mark_price,
            self.backing_equity,
            self.other_maintenance,
            self._fixed_maintenance,
            self.instrument.slope(self.qty),
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
            self._fixed_maintenance,
            self.instrument.slope(self.qty),
        )

    @property
    def liquidation_price_on_tick(self) -> int | None:
        """The liquidation price as the venue shows it: on the instrument's tick."""
        return on_tick(self.liquidation_price, self.instrument.engine_tick, self.qty > 0)

    @property
    def bankruptcy_price_on_tick(self) -> int | None:
        """The bankruptcy price as the venue shows it: on the instrument's tick."""
        return on_tick(self.bankruptcy_price, self.instrument.engine_tick, self.qty > 0)

    @property
    def _fixed_maintenance(self) -> int | None:
        """The position's maintenance where the price does not move it (on the entry value)."""
        return self.maintenance_margin if self.instrument.maintenance_base == "entry" else None

    @property
    def deficit(self) -> int:
        """Loss beyond the backing equity; for cross, the account's (shared) deficit."""
        return max(0, -self.backing_equity)

    @property
    def side(self) -> str:
        return "long" if self.qty > 0 else "short"


_ACCOUNT_FIELDS = (
    "account",
    "wallet_balance",
    "equity",
    "maintenance_margin",
    "cross_equity",
    "cross_maintenance",
    "health",
    "deficit",
)


class AccountRisk:
    """An account as evaluated: immutable (like the frozen dataclasses elsewhere).

    ``positions`` is made when first read for an evaluation made by ``evaluate_moved``
    (a wide, cross-only account's fill, below): its positions differ from the previous
    evaluation's only in the few whose size, entry or mark moved, and in what the cross
    equity gives all of them (backing, bankruptcy price, health), which the engine reads
    per position only for outputs. ``rows`` then holds each position's own part
    (``unrealized_pnl``, ``notional``, ``maintenance_margin``, ...) by symbol."""

    __slots__ = (*_ACCOUNT_FIELDS, "cross_position_count", "rows", "_positions", "_warning")

    account: str
    wallet_balance: int
    equity: int  # cross equity + isolated positions' equity
    maintenance_margin: int
    cross_equity: int
    cross_maintenance: int
    health: Health
    deficit: int  # cross deficit + isolated deficits
    cross_position_count: int
    rows: dict[str, PositionRisk] | None  # only for a cross-only account's lazy positions
    _positions: tuple[PositionRisk, ...] | None
    _warning: int

    def __init__(
        self,
        account: str,
        wallet_balance: int,
        equity: int,
        maintenance_margin: int,
        cross_equity: int,
        cross_maintenance: int,
        health: Health,
        deficit: int,
        positions: tuple[PositionRisk, ...] | None,
        cross_position_count: int,
        rows: dict[str, PositionRisk] | None = None,
        warning_ratio: int = DEFAULT_WARNING_RATIO,
    ) -> None:
        # written out (one per evaluation): a loop over the names was a zip(strict=...),
        # which mypyc calls as Python, and a set by name per field
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "wallet_balance", wallet_balance)
        object.__setattr__(self, "equity", equity)
        object.__setattr__(self, "maintenance_margin", maintenance_margin)
        object.__setattr__(self, "cross_equity", cross_equity)
        object.__setattr__(self, "cross_maintenance", cross_maintenance)
        object.__setattr__(self, "health", health)
        object.__setattr__(self, "deficit", deficit)
        object.__setattr__(self, "cross_position_count", cross_position_count)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "_positions", positions)
        object.__setattr__(self, "_warning", warning_ratio)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AccountRisk is immutable: cannot set {name!r}")

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountRisk):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}"
            for name, value in zip((*_ACCOUNT_FIELDS, "positions"), self._key(), strict=True)
        )
        return f"AccountRisk({fields})"

    def _key(self) -> tuple[object, ...]:
        return (*(getattr(self, name) for name in _ACCOUNT_FIELDS), self.positions)

    @property
    def positions(self) -> tuple[PositionRisk, ...]:
        positions = self._positions
        if positions is None:
            position = self._cross_position  # ``rows`` is set when ``_positions`` is not
            positions = tuple(position(row) for row in (self.rows or {}).values())
            object.__setattr__(self, "_positions", positions)
        return positions

    @property
    def position_count(self) -> int:
        return len(self._positions if self._positions is not None else self.rows or ())

    def position(self, symbol: str) -> PositionRisk | None:
        """One position, without making the others (the deficit index's deferred reads)."""
        if self._positions is None and self.rows is not None:
            row = self.rows.get(symbol)
            return None if row is None else self._cross_position(row)
        positions = self.positions  # sorted by symbol, like the account's
        k = bisect_left(positions, symbol, key=_symbol_of)
        return positions[k] if k < len(positions) and positions[k].symbol == symbol else None

    def _cross_position(self, row: PositionRisk) -> PositionRisk:
        """``row`` (its own part as evaluated) backed by this evaluation's cross equity."""
        cross_equity = self.cross_equity
        return tuple.__new__(  # see PositionRisk
            PositionRisk,
            (
                row.symbol,
                row.qty,
                row.entry_price,
                row.mark_price,
                row.unrealized_pnl,
                row.notional,
                row.maintenance_margin,
                cross_equity,
                bankruptcy_price_scaled(
                    row.qty, row.mark_price, cross_equity * SCALE, row.instrument.slope(row.qty)
                ),
                False,
                self.health,
                row.instrument,
                self.cross_maintenance - row.maintenance_margin,
                self._warning,
            ),
        )

    @property
    def margin_ratio(self) -> float | None:
        """maintenance / equity; ``None`` with no requirement, ``inf`` at equity <= 0."""
        if self.maintenance_margin == 0:
            return 0.0 if self.equity >= 0 else float("inf")
        if self.equity <= 0:
            return float("inf")
        return ratio(self.maintenance_margin, self.equity)

    def cross_cushion(self, warning_ratio: int) -> int:
        """Distance of the cross part from its nearest health boundary (quote, raw):
        min |e*w - mm|, |e - mm|, |e| for cross equity e and maintenance mm."""
        e, mm = self.cross_equity, self.cross_maintenance
        return min(abs(div_floor(e * warning_ratio, SCALE) - mm), abs(e - mm), abs(e))


def _symbol_of(position: PositionRisk) -> str:
    return position.symbol


def health_of(equity: int, maintenance: int, warning_ratio: int) -> Health:
    if equity < 0:
        return Health.BANKRUPT
    if maintenance > 0 and equity <= maintenance:
        return Health.LIQUIDATABLE
    if maintenance > 0 and maintenance * SCALE >= warning_ratio * equity:
        return Health.WARNING
    return Health.HEALTHY


def _own_part(pos: Position, inst: Instrument, mark: int) -> tuple[int, int, int]:
    """A position's own part at ``mark``: (unrealized PnL, net of the fee to close where
    the venue counts it; notional; maintenance margin); nothing else of the account
    enters them."""
    value = notional(pos.qty, mark)
    maintenance = position_maintenance(inst, pos.qty, pos.entry_price, value)
    pnl = unrealized_pnl(pos.qty, pos.entry_price, mark)
    if inst.closing_fee_rate:
        pnl -= closing_fee(pos.qty, mark, inst.closing_fee_rate)
    return pnl, value, maintenance


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
    cross_upnl = cross_mm = cross_count = 0
    isolated_mode = MarginMode.ISOLATED
    positions = state.positions
    earlier = _earlier(state, previous)  # one per position
    for k in range(len(positions)):  # not a zip(strict=...): mypyc calls that as Python
        pos, before = positions[k], earlier[k]
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
            upnl, value, mm = _own_part(pos, inst, mark)
        isolated = pos.margin_mode is isolated_mode
        rows.append((pos, inst, mark, upnl, value, mm, isolated))
        if not isolated:
            cross_count += 1
            cross_upnl += upnl
            cross_mm += mm
    cross_equity = state.wallet_balance + cross_upnl
    cross_health = health_of(cross_equity, cross_mm, warning_ratio)
    cross_scaled = cross_equity * SCALE  # once for every cross position's bankruptcy price

    risks = []
    equity = cross_equity
    deficit = max(0, -cross_equity) if cross_count else 0
    health = cross_health if cross_count else health_of(cross_equity, 0, warning_ratio)
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
            bankruptcy = bankruptcy_price(qty, mark, backing, inst.slope(qty))
        else:
            backing = cross_equity
            other_mm = cross_mm - mm
            pos_health = cross_health
            bankruptcy = bankruptcy_price_scaled(qty, mark, cross_scaled, inst.slope(qty))
        risks.append(
            tuple.__new__(  # see PositionRisk
                PositionRisk,
                (
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
                ),
            )
        )
    return AccountRisk(
        state.account,
        state.wallet_balance,
        equity,
        maintenance,
        cross_equity,
        cross_mm,
        health,
        deficit,
        tuple(risks),
        cross_count,
        warning_ratio=warning_ratio,
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


def evaluate_moved(
    state: AccountState,
    marks: Mapping[str, int],
    previous: AccountRisk,
    moved: Iterable[str],
) -> AccountRisk | None:
    """``evaluate(state, marks, ..., previous)`` in O(moved) for a cross-only account whose
    positions are on the same symbols as at ``previous``, and differ from it (size, entry
    or mark) only on the symbols in ``moved`` (the caller knows them: the fill's symbol
    and the marks its move budget saw move). ``None`` where that does not hold as far as
    can be seen in O(moved) (an isolated position, a symbol opened or closed): then
    ``evaluate``. The cross sums move by the moved positions' differences: exact integers,
    the same sums as ``evaluate``'s; the positions are made when read (``AccountRisk``)."""
    if previous.cross_position_count != len(state.positions) or len(state.positions) != len(
        previous.rows if previous.rows is not None else previous.positions
    ):
        return None
    rows = previous.rows
    if rows is None:
        rows = {p.symbol: p for p in previous.positions}
    rows = dict(rows)
    upnl_change = maintenance_change = 0
    for symbol in moved:
        pos = state.position(symbol)
        before = rows.get(symbol)
        if pos is None or before is None or pos.margin_mode is MarginMode.ISOLATED:
            return None
        mark = marks.get(symbol, pos.entry_price)
        if (
            before.mark_price == mark
            and before.qty == pos.qty
            and before.entry_price == pos.entry_price
        ):
            continue
        upnl, value, mm = _own_part(pos, before.instrument, mark)
        upnl_change += upnl - before.unrealized_pnl
        maintenance_change += mm - before.maintenance_margin
        # its own part only: backing, bankruptcy price and health come from the account
        rows[symbol] = tuple.__new__(  # before._replace(...), see PositionRisk
            PositionRisk,
            (
                symbol,
                pos.qty,
                pos.entry_price,
                mark,
                upnl,
                value,
                mm,
                before.backing_equity,
                before.bankruptcy_price,
                before.isolated,
                before.health,
                before.instrument,
                before.other_maintenance,
                before.warning_ratio,
            ),
        )
    warning_ratio = previous._warning
    cross_equity = (
        state.wallet_balance + previous.cross_equity - previous.wallet_balance + upnl_change
    )
    cross_mm = previous.cross_maintenance + maintenance_change
    health = health_of(cross_equity, cross_mm, warning_ratio)
    return AccountRisk(
        state.account,
        state.wallet_balance,
        cross_equity,
        cross_mm,
        cross_equity,
        cross_mm,
        health,
        max(0, -cross_equity),
        None,
        len(rows),
        rows,
        warning_ratio,
    )
