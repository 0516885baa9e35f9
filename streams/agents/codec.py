"""Changelog rows, exact integers in JSON (orjson): an account's state plus the input
offsets already applied to it, so a re-delivered event is recognised after a restart,
and the lights announced for its positions (so a restart does not announce them anew);
and the fund desk's state per fund."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import orjson

from streams.agents.desk import FundDesk
from streams.agents.shard import AccountRow
from streams.engine.account import AccountState, Position, PositionSetting
from streams.engine.drawdown import PoolDrawdown, RollingMax
from streams.engine.events import Depth, MarginMode
from streams.engine.fixed import PriceRaw, QtyRaw
from streams.engine.signals import AdlStage


def encode_account(row: AccountRow) -> bytes:
    state = row.state
    return orjson.dumps(
        {
            "p": row.partition,
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
            "applied": row.applied,
            "lights": row.lights,
            "seen": row.seen,
        }
    )


def decode_account(raw: bytes) -> AccountRow:
    row: dict[str, Any] = orjson.loads(raw)
    state = AccountState(
        account=row["account"],
        wallet_balance=row["wallet_balance"],
        positions=tuple(  # sorted by symbol, as the reducer keeps them (and bisects)
            Position(sym, qty, entry, MarginMode(mode), iso)
            for sym, qty, entry, mode, iso in sorted(row["positions"])
        ),
        settings=tuple(
            (sym, PositionSetting(MarginMode(mode), lev)) for sym, mode, lev in row["settings"]
        ),
        realized_pnl=row["realized_pnl"],
        fees_paid=row["fees_paid"],
        last_ts_ms=row["last_ts_ms"],
    )
    return AccountRow(
        state,
        dict(row["applied"]),
        int(row["p"]),
        {  # [opening, announced to, light]; a bare light: a row of before
            s: v if isinstance(v, int) else (int(v[0]), int(v[1]), int(v[2]))
            for s, v in row.get("lights", {}).items()
        },
        dict(row.get("seen", {})),  # rows written before the dedupe ids were kept: none
    )


def row_partition(raw: bytes) -> int:
    """The partition an account row belongs to, read off its first bytes where it can be
    (``encode_account`` writes ``{"p":N,`` first): a process's table holds the rows of
    every partition it reads, standbys included, and picking one partition's should not
    decode the others'."""
    if raw.startswith(b'{"p":'):
        end = raw.find(b",", 5, 16)
        if end > 5 and raw[5:end].isdigit():
            return int(raw[5:end])
    return decode_account(raw).partition


def partition_accounts(partition: int, raws: Iterable[bytes]) -> list[AccountRow]:
    """The account rows of ``partition`` among ``raws``, decoded."""
    return [decode_account(raw) for raw in raws if row_partition(raw) == partition]


def partition_marks(
    partition: int, rows: Iterable[tuple[bytes, bytes]]
) -> list[tuple[str, int, int]]:
    """(symbol, time, price) of ``partition``'s mark rows among ``rows`` (key
    ``partition:symbol``; a symbol may hold a colon)."""
    out = []
    for key, raw in rows:
        p, symbol = key.decode().split(":", 1)
        if int(p) == partition:
            ts_ms, price = orjson.loads(raw)
            out.append((symbol, int(ts_ms), int(price)))
    return out


def encode_desk(desk: FundDesk[Any], fund: str) -> bytes:
    """The fund desk's state for one fund: what it announced, the fund's recent balances,
    the books of its symbols, the last mark applied and the last offset of each fund or
    book input applied to the fund (to know a re-delivered summary or update) and
    when each symbol was last lit (the re-ranking schedule)."""
    watch = desk.watch
    symbols = watch.fund_symbols[fund]
    books = [watch.depth[s] for s in symbols if s in watch.depth]
    return orjson.dumps(
        {
            "fund": fund,
            "balances": list(watch.funds[fund].snapshots),
            "stages": {
                s: watch.stages[(fund, s)].value for s in symbols if (fund, s) in watch.stages
            },
            "triggered": {
                s: watch.triggered[(fund, s)] for s in symbols if (fund, s) in watch.triggered
            },
            "stage_rules": {
                s: watch.stage_rules[(fund, s)] for s in symbols if (fund, s) in watch.stage_rules
            },
            "projected_at_ms": watch.projected_at_ms.get(fund),
            "books": [[d.symbol, d.ts_ms, d.bids, d.asks] for d in books],
            # the last mark applied (one completed later is completed again when its
            # summaries are delivered again), the last offset of each input applied
            "complete": desk.applied_key.get(fund),
            "applied": desk.applied.get(fund, {}),
            "fund_moved": fund in desk.fund_moved,
            "lights_at": {s: desk.lights_at_ms[s] for s in symbols if s in desk.lights_at_ms},
            "pool": _pool_row(watch.drawdown.pools.get(fund)),
        }
    )


def _pool_row(pool: PoolDrawdown | None) -> dict[str, Any] | None:
    """A drawdown pool's trailing maxima (``engine.drawdown``), as lists of ints."""
    if pool is None:
        return None
    return {
        "balance": list(pool.balance.entries),
        "pnl": {s: list(series.entries) for s, series in pool.symbol_pnl.items()},
    }


def _restore_pool(pool: PoolDrawdown | None, row: dict[str, Any] | None) -> None:
    if pool is None or row is None:
        return
    pool.balance.entries = deque(_triples(row["balance"]))
    for s, entries in row["pnl"].items():
        pool.symbol_pnl[s] = RollingMax(pool.keep_ms, deque(_triples(entries)))


def _triples(rows: list[list[int]]) -> list[tuple[int, int, int]]:
    return [(int(a), int(b), int(c)) for a, b, c in rows]


def restore_desk(desk: FundDesk[Any], raw: bytes) -> None:
    row = orjson.loads(raw)
    fund = row["fund"]
    watch = desk.watch
    history = watch.funds[fund]
    history.snapshots.clear()
    history.snapshots.extend((int(t), int(b)) for t, b in row["balances"])
    for s, stage in row["stages"].items():
        watch.stages[(fund, s)] = AdlStage(stage)
    for s, (count, ts) in row["triggered"].items():
        watch.triggered[(fund, s)] = (int(count), int(ts))
    for s, rule in row.get("stage_rules", {}).items():
        watch.stage_rules[(fund, s)] = rule
    if row["projected_at_ms"] is not None:
        watch.projected_at_ms[fund] = int(row["projected_at_ms"])
    for symbol, ts, bids, asks in row["books"]:
        watch.depth[symbol] = Depth(int(ts), symbol, _levels(bids), _levels(asks))
    if row["complete"] is not None:
        key = tuple(row["complete"])
        desk.complete_key[fund] = desk.applied_key[fund] = key
        desk.clock_key = key if desk.clock_key is None else max(desk.clock_key, key)
    if row["fund_moved"]:
        desk.fund_moved.add(fund)
    desk.applied[fund] = {where: int(o) for where, o in row.get("applied", {}).items()}
    desk.lights_at_ms.update((s, int(ts)) for s, ts in row.get("lights_at", {}).items())
    _restore_pool(watch.drawdown.pools.get(fund), row.get("pool"))


def _levels(rows: list[list[int]]) -> tuple[tuple[PriceRaw, QtyRaw], ...]:
    return tuple((PriceRaw(int(p)), QtyRaw(int(q))) for p, q in rows)
