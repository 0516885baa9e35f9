"""The ADL queue of one symbol as columns, ranked in one vectorised pass.

Ranking is O(n log n) per refresh, so it runs at most every ``rank_refresh_ms``; doing it
with numpy over columns (not per-position Python objects) keeps a refresh of a hundred
thousand positions in milliseconds. Each position's equity is carried from its last
evaluation to the current mark by its own PnL, plus, for an account with positions on
other symbols, their PnL since then (``rank(other_moves=...)``, from the engine).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.engine.adl import UNDERWATER_SCORE, RankedEntry
from streams.engine.fixed import SCALE, div_ceil
from streams.engine.profiles import RankInput, VenueProfile
from streams.engine.risk import PositionRisk


@dataclass(frozen=True, slots=True)
class LightChange:
    account: str
    side: str
    light: int
    previous: int | None
    score: float
    notional: int  # |qty| * mark, quote currency (rounded up)


@dataclass(frozen=True, slots=True)
class SideRanking:
    """One side's queue as it was ranked, first to be deleveraged first. A snapshot, not
    row numbers: opening or closing a position moves rows, and the queue must stay
    readable (and, on the partitioned path, lit later) until the next ranking."""

    side: str
    accounts: list[str]
    sizes: list[int]  # |qty|, raw units
    scores: list[float]
    opened: list[int]  # each position's opening number: a flip or a reopen is a new one
    mark_price: int
    lights: list[int]  # 0 until lit


ALERT_MARGIN = 0.01  # share of the queue a position must be past a boundary to be alerted


class QueueTable:
    """Open positions of one symbol: account, size, entry and equity at last evaluation."""

    __slots__ = ("_accounts_array", "_arrays", "_dirty", "_opened_count", "_ranking", "_row",
                 "_scores", "accounts", "alerted", "announced", "cols", "lights", "opened",
                 "structure_changed")  # fmt: skip

    _COLS = ("qty", "entry", "mark", "backing", "equity", "isolated", "abs_qty")
    _DTYPES = (np.float64, np.float64, np.float64, np.float64, np.float64, np.bool_, np.int64)

    def __init__(self) -> None:
        self.accounts: list[str] = []
        self._row: dict[str, int] = {}
        self.cols: dict[str, list[float | int | bool]] = {c: [] for c in self._COLS}
        self.lights: list[int] = []  # 0 until first lit
        self.alerted: list[int] = []  # the light last announced (0: none yet)
        # the same when lights come later (``light_at``): account -> (opening, light)
        self.announced: dict[str, tuple[int, int]] = {}
        self.opened: list[int] = []  # the position's opening number (see SideRanking)
        self._opened_count = 0
        self._scores: list[float] = []
        self._ranking: dict[str, SideRanking] = {}  # per side, the last ranking
        self.structure_changed = False  # a position opened or closed since the last ranking
        self._accounts_array: npt.NDArray[np.str_] | None = None
        # numpy copies of ``cols`` for ranking, patched row by row between rankings;
        # rebuilt when rows are added or removed
        self._arrays: dict[str, npt.NDArray[Any]] | None = None
        self._dirty: set[int] = set()

    def __len__(self) -> int:
        return len(self.accounts)

    def __contains__(self, account: object) -> bool:
        return account in self._row

    def put(self, account: str, pos: PositionRisk, account_equity: int) -> None:
        values = (
            pos.qty / SCALE,
            pos.entry_price / SCALE,
            pos.mark_price / SCALE,
            pos.backing_equity / SCALE,
            account_equity / SCALE,
            pos.isolated,
            abs(pos.qty),
        )
        row = self._row.get(account)
        if row is None:
            self._row[account] = len(self.accounts)
            self.accounts.append(account)
            for name, value in zip(self._COLS, values, strict=True):
                self.cols[name].append(value)
            self.lights.append(0)
            self.alerted.append(0)
            self._opened_count += 1
            self.opened.append(self._opened_count)
            self._scores.append(0.0)
            self._accounts_array = self._arrays = None
            self.structure_changed = True
            return
        if (self.cols["qty"][row] > 0) != (pos.qty > 0):
            # flipped: a new place, other queue
            self.lights[row] = self.alerted[row] = 0
            self._opened_count += 1
            self.opened[row] = self._opened_count
        for name, value in zip(self._COLS, values, strict=True):
            self.cols[name][row] = value
        if self._arrays is not None:
            self._dirty.add(row)

    def remove(self, account: str) -> None:
        row = self._row.pop(account, None)
        if row is None:
            return
        last = len(self.accounts) - 1
        columns: list[list[Any]] = [*self.cols.values(), self.lights, self.alerted, self.opened,
                                    self._scores, self.accounts]  # fmt: skip
        for column in columns:
            column[row] = column[last]  # swap-remove: O(1), rows are unordered
            column.pop()
        if row != last:
            self._row[self.accounts[row]] = row
        self._accounts_array = self._arrays = None
        self.structure_changed = True

    def _columns(self) -> dict[str, npt.NDArray[Any]]:
        if self._arrays is None:
            self._arrays = {
                name: np.array(self.cols[name], dtype=dtype)
                for name, dtype in zip(self._COLS, self._DTYPES, strict=True)
            }
        elif self._dirty:
            rows = np.fromiter(self._dirty, dtype=np.intp, count=len(self._dirty))
            for name in self._COLS:
                column = self.cols[name]
                self._arrays[name][rows] = [column[r] for r in rows]
        self._dirty.clear()
        return self._arrays

    def view(self, account: str) -> tuple[float, int] | None:
        """(score, light) of the account's position at the last ranking that lit it."""
        row = self._row.get(account)
        if row is None or self.lights[row] == 0:
            return None
        return self._scores[row], self.lights[row]

    def announced_light(self, account: str) -> int:
        """The light last announced (``light_at``) for the account's position (0: none)."""
        row = self._row.get(account)
        opened, light = self.announced.get(account, (0, 0))
        return light if row is not None and self.opened[row] == opened else 0

    def restore_announced(self, account: str, light: int) -> None:
        """After a restart: the light announced for the account's (restored) position."""
        row = self._row.get(account)
        if row is not None:
            self.announced[account] = (self.opened[row], light)

    def ranking(self, side: str) -> SideRanking | None:
        """The side's last ranking."""
        return self._ranking.get(side)

    def rank(
        self,
        mark_price: int,
        profile: VenueProfile,
        light: bool = True,
        other_moves: Mapping[str, tuple[float, float]] | None = None,
    ) -> list[LightChange]:
        """Score and order both sides at ``mark_price``; with ``light``, give every
        position its light by its place and return the lights that changed (``light_at``).
        Without, the ranking waits for places known elsewhere (every partition's).
        ``other_moves``: per account with positions on other symbols, their PnL since
        its last evaluation: (moving the equity backing this position, moving the
        account's equity)."""
        self.structure_changed = False
        if not self.accounts:
            self._ranking.clear()
            return []
        col = self._columns()
        qty = col["qty"]
        mark = mark_price / SCALE
        move = qty * (mark - col["mark"])  # equity's move since each last evaluation
        backing = col["backing"] + move
        equity = col["equity"] + move
        if other_moves:
            rows = np.fromiter((self._row[a] for a in other_moves), np.intp, len(other_moves))
            moves = np.array(list(other_moves.values()), dtype=np.float64)
            backing[rows] += moves[:, 0]
            equity[rows] += moves[:, 1]
        scores = profile.rank_score(
            RankInput(
                qty=qty,
                entry_price=col["entry"],
                mark_price=mark,
                backing_equity=backing,
                account_equity=equity,
                isolated=col["isolated"],
            )
        )
        # under water: being liquidated, not a counterparty; last in the queue
        scores = np.where(backing <= 0, UNDERWATER_SCORE, scores)
        if self._accounts_array is None:
            self._accounts_array = np.array(self.accounts)
        abs_qty = col["abs_qty"]
        opened = np.array(self.opened, dtype=np.int64)
        ranked_rows = {}
        for side, mask in (("long", qty > 0), ("short", qty < 0)):
            rows = np.nonzero(mask)[0]
            # score desc, then larger size, then account id
            order = np.lexsort((self._accounts_array[rows], -abs_qty[rows], -scores[rows]))
            ranked = ranked_rows[side] = rows[order]
            self._ranking[side] = SideRanking(
                side=side,
                accounts=self._accounts_array[ranked].tolist(),
                sizes=abs_qty[ranked].tolist(),
                scores=scores[ranked].tolist(),
                opened=opened[ranked].tolist(),
                mark_price=mark_price,
                lights=[0] * len(ranked),
            )
        self._scores = scores.tolist()
        if not light:
            return []
        alerted = np.array(self.alerted, dtype=np.int64)
        row_lights = np.zeros(len(qty), dtype=np.int64)
        changes = []
        for side, ranked in ranked_rows.items():
            count = len(ranked)
            lights, changed, side_changes = self._light(
                self._ranking[side], np.arange(count), count, profile, alerted[ranked]
            )
            row_lights[ranked] = lights
            alerted[ranked[changed]] = lights[changed]
            changes += side_changes
        self.alerted = alerted.tolist()
        self.lights = row_lights.tolist()
        return sorted(changes, key=lambda c: c.account)

    def light_at(
        self, ranking: SideRanking, places: npt.NDArray[np.int64], count: int, profile: VenueProfile
    ) -> tuple[list[LightChange], list[str]]:
        """Light an earlier ranking of this table by its positions' places among
        ``count`` (every partition's), however late: what was announced is kept per
        (account, opening), not per row, so a position closed or flipped since the
        ranking is judged as it was then. Returns the alerts and the accounts whose
        announced light changed (alerted or not)."""
        announced = self.announced
        before = np.array(
            [
                light if opened == then else 0
                for account, then in zip(ranking.accounts, ranking.opened, strict=True)
                for opened, light in [announced.get(account, (0, 0))]
            ],
            dtype=np.int64,
        )
        lights, changed, changes = self._light(ranking, places, count, profile, before)
        for i in changed:
            announced[ranking.accounts[i]] = (ranking.opened[i], int(lights[i]))
        rows = np.array([self._row.get(a, -1) for a in ranking.accounts], dtype=np.int64)
        opened = np.array([*self.opened, -1], dtype=np.int64)  # row -1: no position now
        live = opened[rows] == np.array(ranking.opened, dtype=np.int64)
        row_lights = np.array(self.lights, dtype=np.int64)
        row_lights[rows[live]] = lights[live]
        self.lights = row_lights.tolist()
        return sorted(changes, key=lambda c: c.account), [ranking.accounts[i] for i in changed]

    @staticmethod
    def _light(
        ranking: SideRanking,
        places: npt.NDArray[np.int64],
        count: int,
        profile: VenueProfile,
        before: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp], list[LightChange]]:
        """Lights by place (``ranking.lights`` set); alerts debounced: a change from the
        light last announced (``before``, 0: none) is announced once the position sits
        ``ALERT_MARGIN`` of its queue (whole places) away from a light boundary, so a
        position hovering on a quintile boundary does not page the desk on every re-rank.
        Returns (lights, entries whose announced light changed, alerts)."""
        lights = np.asarray(profile.light(places, count), dtype=np.int64)  # type: ignore[arg-type]  # lights are elementwise
        # settled: the same light ALERT_MARGIN of the queue above and below the place
        margin = int(count * ALERT_MARGIN)  # 0 below 100 positions: no debounce
        above = profile.light(np.maximum(places - margin, 0), count)  # type: ignore[arg-type]
        below = profile.light(np.minimum(places + margin, count - 1), count)  # type: ignore[arg-type]
        settled = np.asarray(above) == np.asarray(below)
        ranking.lights[:] = lights.tolist()
        top = profile.light(0, 1)
        changed = np.nonzero((lights != before) & settled)[0]
        changes = [
            LightChange(
                account=ranking.accounts[i],
                side=ranking.side,
                light=int(lights[i]),
                previous=int(before[i]) or None,
                score=ranking.scores[i],
                notional=div_ceil(ranking.sizes[i] * ranking.mark_price, SCALE),
            )
            for i in changed
            if before[i] != 0 or lights[i] >= top  # a new position: only entering at the top
        ]
        return lights, changed, changes

    def side_totals(self, side: str) -> tuple[int, tuple[int, ...], tuple[float, ...]]:
        """(open interest, positions per light 0..5, first five scores) of one side."""
        col = self._columns()
        qty, abs_qty = col["qty"], col["abs_qty"]
        mask = qty > 0 if side == "long" else qty < 0
        lights = np.bincount(np.array(self.lights, dtype=np.int64)[mask], minlength=6)
        top = self._ranking[side].scores[:5] if side in self._ranking else []
        return int(abs_qty[mask].sum()), tuple(int(n) for n in lights[:6]), tuple(top)

    def ranked(self, side: str) -> Iterator[RankedEntry]:
        """The side's queue at the last ranking, first to be deleveraged first (sizes and
        scores as they were then; a position closed since is still listed)."""
        ranking = self._ranking.get(side)
        if ranking is None:
            return
        for place, (account, qty, score, light) in enumerate(
            zip(ranking.accounts, ranking.sizes, ranking.scores, ranking.lights, strict=True)
        ):
            yield RankedEntry(account=account, qty=qty, score=score, rank=place, light=light)
