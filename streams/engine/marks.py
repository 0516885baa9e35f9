"""The last mark of every symbol: a dict by name, and the same as a column by symbol
index that a ranking reads whole (its accounts' positions on other symbols moved with
their marks: a list of 162 ``dict.get`` per ranking was a tenth of a ranking's cost)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

NO_MARK = np.iinfo(np.int64).min  # a symbol without a mark yet: its positions did not move


class Marks(dict[str, int]):
    """Symbol -> last mark (raw fixed point); ``by_index`` kept in step on every write.
    Every write is a ``marks[symbol] = price`` (no ``update``, no ``pop``: a symbol's
    mark is never forgotten)."""

    def __init__(self, symbol_names: Sequence[str]) -> None:
        super().__init__()
        self.index = {s: k for k, s in enumerate(symbol_names)}
        self.by_index: npt.NDArray[np.int64] = np.full(len(symbol_names), NO_MARK, np.int64)

    def __setitem__(self, symbol: str, price: int) -> None:
        super().__setitem__(symbol, price)
        self.by_index[self.index[symbol]] = price

    def __reduce__(self) -> tuple[object, ...]:
        # pickle sets a dict subclass's items before its attributes (``index`` would not
        # be there yet for ``__setitem__``): rebuilt from the names and the marks instead
        names = sorted(self.index, key=self.index.__getitem__)
        return (_rebuilt, (names, dict(self)))


def _rebuilt(symbol_names: Sequence[str], marks: dict[str, int]) -> Marks:
    rebuilt = Marks(symbol_names)
    for symbol, price in marks.items():
        rebuilt[symbol] = price
    return rebuilt
