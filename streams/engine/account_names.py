"""Account ids as integer codes, for columns that are gathered often.

A ranking copies its accounts in queue order; as numpy strings that is 4 bytes per
character per position (``<U16``: 64 bytes; a venue's 42-character addresses: 168),
the largest part of a large symbol's ranking (BTC's 166,738 positions in the
Hyperliquid preset: ~25% of its 28 ms). An integer code per account makes it 8 bytes,
and the names are read only where a name is needed (an alert, the head of a queue, a
tie between equal scores).

Codes are given once and never reused or moved: ``AccountNames`` only grows, so a code
read from a ranking made earlier still names the same account. It holds every account
that ever had a row in its table (one entry per account, not per event).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class AccountNames:
    """Append-only account id <-> code (0, 1, 2, ... in order of first use)."""

    __slots__ = ("_array", "_code", "_count")

    def __init__(self, names: Sequence[str] = ()) -> None:
        self._code: dict[str, int] = {}
        self._array: npt.NDArray[np.str_] = np.empty(max(len(names), 16), dtype="<U16")
        self._count = 0
        for name in names:
            self.code(name)

    def __len__(self) -> int:
        return self._count

    def code(self, name: str) -> int:
        """The account's code, given now if it has none."""
        code = self._code.get(name)
        if code is not None:
            return code
        code = self._code[name] = self._count
        array = self._array
        if code == len(array) or len(name) > array.itemsize // 4:  # 4 bytes per character
            width = max(len(name), array.itemsize // 4)
            grown = np.empty(max(len(array), 2 * code, 16), dtype=f"<U{width}")
            grown[:code] = array[:code]
            self._array = array = grown
        array[code] = name
        self._count += 1
        return code

    def name(self, code: int) -> str:
        return str(self._array[code])

    def names(self, codes: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
        """The names of ``codes`` (numpy strings, in their order)."""
        out: npt.NDArray[np.str_] = self._array[codes]
        return out
