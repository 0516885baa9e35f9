"""Per-account state and its reducer: fills, balances, margin settings.

``apply(state, event, instrument) -> state`` is pure: it returns a new ``AccountState``
and never mutates the old one, so a Faust table can store the new value and a replay
can be repeated. Position accounting:

- same direction (or from flat): weighted average entry
  ``E' = (|q|*E + qty*price) / (|q| + qty)``, rounded against the holder
  (up for a long, down for a short);
- reduction: realized PnL ``closed * (price - E) * sign(q)`` to the wallet;
- through zero: close the whole position, then open the remainder at the fill price;
- fee: paid (+) or rebate (-) from the wallet, once per fill;
- isolated margin: ``qty * price / leverage`` (ceil) moved from the wallet on increase,
  released pro rata ``margin * closed / |q|`` (floor) on decrease.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, replace

from streams.engine.errors import InvalidEvent
from streams.engine.events import Balance, Fill, IsolatedMargin, MarginMode, PositionConfig
from streams.engine.fixed import SCALE, div_ceil, div_floor

DEFAULT_LEVERAGE = 10 * SCALE  # 10x, used until a position_config says otherwise


@dataclass(frozen=True, slots=True)
class PositionSetting:
    margin_mode: MarginMode = MarginMode.CROSS
    leverage: int = DEFAULT_LEVERAGE  # scaled: 20x = 20 * SCALE


_DEFAULT_SETTING = PositionSetting()


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    qty: int  # signed base units (+ long, - short), scaled
    entry_price: int
    margin_mode: MarginMode
    isolated_margin: int = 0  # quote currency, only for isolated positions

    def __init__(
        self,
        symbol: str,
        qty: int,
        entry_price: int,
        margin_mode: MarginMode,
        isolated_margin: int = 0,
    ) -> None:  # written out: see signals.LadderPoint (one per fill)
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "qty", qty)
        object.__setattr__(self, "entry_price", entry_price)
        object.__setattr__(self, "margin_mode", margin_mode)
        object.__setattr__(self, "isolated_margin", isolated_margin)

    @property
    def is_isolated(self) -> bool:
        return self.margin_mode is MarginMode.ISOLATED


@dataclass(frozen=True, slots=True)
class AccountState:
    account: str
    wallet_balance: int = 0  # cross wallet, excluding margin held by isolated positions
    positions: tuple[Position, ...] = ()  # sorted by symbol, no flat positions
    settings: tuple[tuple[str, PositionSetting], ...] = ()
    realized_pnl: int = 0
    fees_paid: int = 0
    last_ts_ms: int = 0

    def __init__(
        self,
        account: str,
        wallet_balance: int = 0,
        positions: tuple[Position, ...] = (),
        settings: tuple[tuple[str, PositionSetting], ...] = (),
        realized_pnl: int = 0,
        fees_paid: int = 0,
        last_ts_ms: int = 0,
    ) -> None:  # written out: see signals.LadderPoint (one per fill and balance)
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "wallet_balance", wallet_balance)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "settings", settings)
        object.__setattr__(self, "realized_pnl", realized_pnl)
        object.__setattr__(self, "fees_paid", fees_paid)
        object.__setattr__(self, "last_ts_ms", last_ts_ms)

    def position(self, symbol: str) -> Position | None:
        positions = self.positions
        k = bisect_left(positions, symbol, key=_symbol_of)
        return positions[k] if k < len(positions) and positions[k].symbol == symbol else None

    def setting(self, symbol: str) -> PositionSetting:
        for sym, setting in self.settings:
            if sym == symbol:
                return setting
        return _DEFAULT_SETTING  # immutable: one for all (a new one per call was ~0.5 us)

    def with_position(self, symbol: str, position: Position | None) -> tuple[Position, ...]:
        """The positions with ``symbol``'s replaced (``None`` or flat: removed), still
        sorted: found by bisection, not a scan and a sort (an account may hold 162)."""
        positions = self.positions
        k = bisect_left(positions, symbol, key=_symbol_of)
        end = k + 1 if k < len(positions) and positions[k].symbol == symbol else k
        kept = (position,) if position is not None and position.qty != 0 else ()
        return positions[:k] + kept + positions[end:]


def _symbol_of(position: Position) -> str:
    return position.symbol


def _average_entry(old_qty: int, old_entry: int, add_qty: int, price: int) -> int:
    total = abs(old_qty) + abs(add_qty)
    cost = abs(old_qty) * old_entry + abs(add_qty) * price
    # against the holder: a long's entry up, a short's down -> less unrealized profit
    return div_ceil(cost, total) if add_qty > 0 else div_floor(cost, total)


def apply_fill(state: AccountState, fill: Fill) -> AccountState:
    setting = state.setting(fill.symbol)
    pos = state.position(fill.symbol)
    old_qty = pos.qty if pos else 0
    mode = pos.margin_mode if pos else setting.margin_mode
    entry = pos.entry_price if pos else 0
    margin = pos.isolated_margin if pos else 0
    delta = fill.signed_qty
    wallet = state.wallet_balance - fill.fee
    realized = 0

    closing = 0 if old_qty == 0 or (old_qty > 0) == (delta > 0) else min(abs(delta), abs(old_qty))
    if closing:
        direction = 1 if old_qty > 0 else -1
        realized = div_floor(closing * (fill.price - entry) * direction, SCALE)
        released = margin if closing == abs(old_qty) else div_floor(margin * closing, abs(old_qty))
        margin -= released
        wallet += realized + released
    opening = abs(delta) - closing
    new_qty = old_qty + delta
    if opening:
        # from flat or flipped: the new position takes the current setting's mode
        if closing == abs(old_qty):
            mode, entry, margin = setting.margin_mode, fill.price, 0
        else:
            entry = _average_entry(old_qty, entry, delta, fill.price)
        if mode is MarginMode.ISOLATED:
            initial = div_ceil(opening * fill.price, setting.leverage)
            margin += initial
            wallet -= initial
    new_pos = Position(fill.symbol, new_qty, entry, mode, margin) if new_qty else None
    # every field named, not ``replace``: dataclasses.replace runs as interpreted Python
    return AccountState(
        state.account,
        wallet_balance=wallet,
        positions=state.with_position(fill.symbol, new_pos),
        settings=state.settings,
        realized_pnl=state.realized_pnl + realized,
        fees_paid=state.fees_paid + fill.fee,
        last_ts_ms=max(state.last_ts_ms, fill.ts_ms),
    )


def apply_balance(state: AccountState, event: Balance) -> AccountState:
    return AccountState(  # every field named: see apply_fill
        state.account,
        wallet_balance=state.wallet_balance + event.amount,
        positions=state.positions,
        settings=state.settings,
        realized_pnl=state.realized_pnl,
        fees_paid=state.fees_paid,
        last_ts_ms=max(state.last_ts_ms, event.ts_ms),
    )


def apply_position_config(state: AccountState, event: PositionConfig) -> AccountState:
    pos = state.position(event.symbol)
    if pos is not None and pos.margin_mode is not event.margin_mode:
        raise InvalidEvent(
            "margin_mode",
            f"{event.account} holds {pos.symbol} in {pos.margin_mode.value} mode; "
            "the mode changes only when the position is flat",
        )
    settings = tuple(
        sorted(
            [(s, v) for s, v in state.settings if s != event.symbol]
            + [(event.symbol, PositionSetting(event.margin_mode, event.leverage))]
        )
    )
    return replace(state, settings=settings, last_ts_ms=max(state.last_ts_ms, event.ts_ms))


def apply_isolated_margin(state: AccountState, event: IsolatedMargin) -> AccountState:
    pos = state.position(event.symbol)
    if pos is None or not pos.is_isolated:
        raise InvalidEvent("symbol", f"{event.account} has no isolated {event.symbol} position")
    new_margin = pos.isolated_margin + event.amount
    if new_margin < 0:
        raise InvalidEvent(
            "amount", f"removes {-event.amount} raw but the position holds {pos.isolated_margin}"
        )
    return replace(
        state,
        wallet_balance=state.wallet_balance - event.amount,
        positions=state.with_position(event.symbol, replace(pos, isolated_margin=new_margin)),
        last_ts_ms=max(state.last_ts_ms, event.ts_ms),
    )


AccountEvent = Fill | Balance | PositionConfig | IsolatedMargin


def apply(state: AccountState, event: AccountEvent) -> AccountState:
    """The account reducer: one pure function for every event that changes an account."""
    if isinstance(event, Fill):
        return apply_fill(state, event)
    if isinstance(event, Balance):
        return apply_balance(state, event)
    if isinstance(event, PositionConfig):
        return apply_position_config(state, event)
    return apply_isolated_margin(state, event)
