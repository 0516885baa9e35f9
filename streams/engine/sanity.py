"""Market-data sanity: marks, fund snapshots and times that no venue would publish are
held out of the engine (``ImplausibleEvent``: dead-lettered by the caller, counted as
``implausible``), because one bad tick would otherwise page the desk with an ADL
trigger. Exchanges bound prices the same way (price bands around the index or the last
price); these bands are wider, since the monitor must follow a real crash.

- A mark more than ``mark_index_band_bps`` from the index price in the same message:
  the venue's own mark is derived from that index (Binance, Bybit, OKX clamp the
  premium to a few percent), so such a message contradicts itself.
- A mark more than ``mark_jump_band_bps`` from the symbol's previous mark is held until
  ``mark_jump_confirmations`` consecutive marks agree (each within the band of the one
  before): a real gap is followed by marks near it, a fat finger is not. Held marks are
  dead letters; the confirming one is applied. The count lives in the engine, not in a
  partition's changelog: a restart mid-confirmation starts counting again.
- An insurance fund snapshot below zero: a balance, not a PnL.
- An event more than ``max_clock_skew_ms`` ahead of the stream's clock (the latest
  event time applied; the first event sets it): a mark dated 2100 would otherwise make
  every later mark look stale.

Ratios are compared exactly: ``|a - b| * 10,000 > bps * b``.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.engine.errors import InvalidEvent
from streams.engine.events import Event, InsuranceFund, Mark
from streams.engine.fixed import ratio, to_str

BPS = 10_000


class ImplausibleEvent(InvalidEvent):
    """Well-formed, but no venue would publish it (see the module)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, f"implausible: {reason}")


@dataclass(frozen=True, slots=True)
class SanityBands:
    mark_index_band_bps: int = 2_000  # 20%
    mark_jump_band_bps: int = 5_000  # 50% in one tick
    mark_jump_confirmations: int = 2  # marks that must agree before a jump is applied
    max_clock_skew_ms: int = 86_400_000  # one day ahead of the stream


def _outside(price: int, reference: int, band_bps: int) -> bool:
    return abs(price - reference) * BPS > band_bps * reference


def _percent(price: int, reference: int) -> str:
    return f"{ratio(100 * (price - reference), reference):+.1f}%"  # for the message only


class MarketSanity:
    """The checks, and the jumps waiting for confirmation (symbol -> (price, count))."""

    def __init__(self, bands: SanityBands) -> None:
        self.bands = bands
        self.held: dict[str, tuple[int, int]] = {}

    def check(self, event: Event, clock_ms: int | None) -> None:
        """Raise ``ImplausibleEvent`` for an event ahead of ``clock_ms`` (``None``: no
        event applied yet) or a negative fund snapshot."""
        if clock_ms is not None and event.ts_ms > clock_ms + self.bands.max_clock_skew_ms:
            ahead_h = ratio(event.ts_ms - clock_ms, 3_600_000)
            raise ImplausibleEvent(
                "ts", f"{ahead_h:,.1f} h ahead of the stream's clock ({clock_ms} ms): at most "
                f"{self.bands.max_clock_skew_ms} ms",
            )  # fmt: skip
        if isinstance(event, InsuranceFund) and event.balance < 0:
            raise ImplausibleEvent("balance", f"an insurance fund of {to_str(event.balance)}")

    def check_mark(self, mark: Mark, previous: int | None) -> None:
        """Raise ``ImplausibleEvent`` for a mark off its index or an unconfirmed jump
        from ``previous`` (the symbol's last applied mark)."""
        bands = self.bands
        index = mark.index_price
        if index is not None and _outside(mark.mark_price, index, bands.mark_index_band_bps):
            raise ImplausibleEvent(
                "mark_price", f"{_percent(mark.mark_price, index)} from its index price "
                f"{to_str(index)}: beyond the {bands.mark_index_band_bps} bps band",
            )  # fmt: skip
        if previous is None or not _outside(mark.mark_price, previous, bands.mark_jump_band_bps):
            self.held.pop(mark.symbol, None)
            return
        held = self.held.get(mark.symbol)
        agrees = held is not None and not _outside(
            mark.mark_price, held[0], bands.mark_jump_band_bps
        )
        count = held[1] + 1 if held is not None and agrees else 1
        if count >= bands.mark_jump_confirmations:
            self.held.pop(mark.symbol, None)  # confirmed: the market moved
            return
        self.held[mark.symbol] = (mark.mark_price, count)
        raise ImplausibleEvent(
            "mark_price", f"{_percent(mark.mark_price, previous)} from the last mark "
            f"{to_str(previous)} in one tick: held until "
            f"{bands.mark_jump_confirmations - count} more mark(s) confirm it",
        )  # fmt: skip
