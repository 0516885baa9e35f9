"""An account's state as a changelog row: exact integers in JSON (orjson), plus the
input offsets already applied to it, so a re-delivered event is recognised after a
restart."""

from __future__ import annotations

from typing import Any

import orjson

from streams.engine.account import AccountState, Position, PositionSetting
from streams.engine.events import MarginMode


def encode_account(state: AccountState, applied: dict[str, int], partition: int) -> bytes:
    """``applied``: source "topic:partition" -> last offset applied to this account."""
    return orjson.dumps(
        {
            "p": partition,
            "account": state.account,
            "wallet_balance": state.wallet_balance,
            "positions": [
                [p.symbol, p.qty, p.entry_price, p.margin_mode.value, p.isolated_margin]
                for p in state.positions
            ],
            "settings": [[s, c.margin_mode.value, c.leverage] for s, c in state.settings],
            "realized_pnl": state.realized_pnl,
            "fees_paid": state.fees_paid,
            "last_ts_ms": state.last_ts_ms,
            "applied": applied,
        }
    )


def decode_account(raw: bytes) -> tuple[AccountState, dict[str, int], int]:
    row: dict[str, Any] = orjson.loads(raw)
    state = AccountState(
        account=row["account"],
        wallet_balance=row["wallet_balance"],
        positions=tuple(
            Position(sym, qty, entry, MarginMode(mode), iso)
            for sym, qty, entry, mode, iso in row["positions"]
        ),
        settings=tuple(
            (sym, PositionSetting(MarginMode(mode), lev)) for sym, mode, lev in row["settings"]
        ),
        realized_pnl=row["realized_pnl"],
        fees_paid=row["fees_paid"],
        last_ts_ms=row["last_ts_ms"],
    )
    return state, dict(row["applied"]), int(row["p"])
