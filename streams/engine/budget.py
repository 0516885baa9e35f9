"""When an account holding many cross positions must be re-evaluated: one move budget.

A cross account's health boundaries (equity, equity - maintenance, w * equity -
maintenance) move by at most ``|q_j| * (1 + mmr_max_j)`` per unit of position j's mark
(``Engine._band``). So while

    sum_j |q_j| * (SCALE + mmr_max_j) * |m_j - m_j0|  <  cushion * SCALE**2     (raw units)

(``m_j0``: the marks it was evaluated at, ``cushion``: its distance from the nearest
boundary then) no mix of mark moves can reach a boundary. An account with a few cross
positions gets a price band per position instead (the cushion split evenly over them,
``ThresholdIndex``); an account on 162 symbols would get 162 bands 1/162 as wide, each
rewritten on every one of its fills. Here its budget is one exact integer, spent in O(1)
per mark of one of its symbols, rebuilt in O(positions) when it is evaluated.

Under water the cushion is at most the deficit d0, so while the budget lasts each
position's own move is below d0: each deficit-index entry (the deficit with only its own
symbol moved) stays >= 0 and the fund's over-count stays exact, as with the bands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.engine.fixed import SCALE


@dataclass(slots=True)
class _Spend:
    weight: int  # |q| * (SCALE + mmr_max), raw
    mark0: int  # the mark it was evaluated at, raw
    spent: int  # weight * |mark - mark0|


@dataclass(slots=True)
class _Budget:
    left: int  # cushion * SCALE**2 minus what the moves since the evaluation spent
    spends: dict[str, _Spend]
    # the symbols whose mark moved since the evaluation (a spend not zero, then or now):
    # the only positions besides a fill's whose evaluation can differ (``moved_since``)
    moved: set[str] = field(default_factory=set)


class MoveBudget:
    """Accounts re-evaluated when their marks together moved as far as their cushion."""

    __slots__ = ("_accounts", "_by_symbol")

    def __init__(self) -> None:
        self._accounts: dict[str, _Budget] = {}
        self._by_symbol: dict[str, set[str]] = {}

    def __contains__(self, account: object) -> bool:
        return account in self._accounts

    def put(
        self, account: str, cushion: int, positions: Iterable[tuple[str, int, int, int]]
    ) -> None:
        """The account as evaluated: ``cushion`` (raw quote) and its cross positions as
        (symbol, signed qty raw, mmr_max raw, mark raw)."""
        old = self._accounts.get(account)
        kept = {} if old is None else old.spends
        spends = {}
        for symbol, qty, mmr_max, mark in positions:
            weight = abs(qty) * (SCALE + mmr_max)
            spend = kept.get(symbol)
            # a spend at the same weight whose mark has not moved since spent nothing
            # (``moved`` sees every mark): kept as it is, not made again (an account on
            # 162 symbols is put again at each of its fills, and one of them changed)
            if spend is None or spend.spent or spend.mark0 != mark or spend.weight != weight:
                spend = _Spend(weight, mark, 0)
            spends[symbol] = spend
        self._accounts[account] = _Budget(cushion * SCALE * SCALE, spends)
        if spends.keys() == kept.keys():
            return  # the same symbols (most fills of a wide account)
        if old is not None:
            for symbol in old.spends.keys() - spends.keys():
                self._leave(symbol, account)
        for symbol in spends.keys() - kept.keys():
            self._by_symbol.setdefault(symbol, set()).add(account)

    def moved_since(self, account: str) -> set[str]:
        """The account's symbols whose mark moved since it was put (a superset: a mark that
        moved away and back is in it)."""
        return self._accounts[account].moved

    def put_moved(
        self, account: str, cushion: int, positions: Iterable[tuple[str, int, int, int]]
    ) -> None:
        """``put`` for an account on the same symbols whose positions changed only on
        ``moved_since`` and the ones given (as ``put``'s): every other spend is zero, at
        its mark and weight, and ``put`` would keep it as it is."""
        budget = self._accounts[account]
        budget.left = cushion * SCALE * SCALE
        spends = budget.spends
        for symbol, qty, mmr_max, mark in positions:
            spends[symbol] = _Spend(abs(qty) * (SCALE + mmr_max), mark, 0)
        budget.moved.clear()

    def remove(self, account: str) -> None:
        old = self._accounts.pop(account, None)
        if old is not None:
            for symbol in old.spends:
                self._leave(symbol, account)

    def _leave(self, symbol: str, account: str) -> None:
        held = self._by_symbol[symbol]
        held.discard(account)
        if not held:
            del self._by_symbol[symbol]

    def moved(self, symbol: str, mark: int) -> list[str]:
        """Spend the move of ``symbol`` to ``mark``; the accounts whose budget it used up
        (to be re-evaluated, which puts them again)."""
        held = self._by_symbol.get(symbol)
        if not held:
            return []
        spent_out = []
        for account in held:
            budget = self._accounts[account]
            spend = budget.spends[symbol]
            now = spend.weight * abs(mark - spend.mark0)
            budget.left -= now - spend.spent
            spend.spent = now
            if now:
                budget.moved.add(symbol)
            if budget.left <= 0:
                spent_out.append(account)
        return spent_out
