"""Inverse perpetuals and wallets per settlement currency, at the engine's boundary.

An inverse contract (BitMEX XBTUSD, Bybit BTCUSD, Binance COIN-M) is worth a fixed
``F`` USD; margin, PnL, fees and the insurance fund are in the coin. With ``n`` contracts
(signed, + long), entry ``E`` and mark ``P`` in USD per coin, the venues' formulas
(Bybit help center, "Inverse contract": unrealized PnL = n F (1/E - 1/P), position value
= n F / P, initial margin = value / leverage, maintenance = value x MMR on the entry
value; BitMEX "XBTUSD" the same with F = 1) are linear in ``x = U / P`` (coin per ``U``
USD, ``U`` = 10^8). So the engine holds an inverse symbol as a linear one in x::

    q  = -n F / U           a USD long gains as x falls: it is a short in x
    PnL   = q (x - x_E)     = n F (1/E - 1/P)        the venues' inverse PnL
    value = |q| x           = |n| F / P              the position value, in the coin
    entry = the |q|-weighted mean of x_E             = the venues' harmonic mean of prices
    maintenance on the entry value |q| x_E mmr       = |n| F / E x mmr (tiers in the coin)

and every formula of ``margin.py``, the indexes, the ranking and the fund's curves hold
unchanged. Bybit's isolated example (5,000 BTCUSD long at 7,890.08, 50x): the margin
is n F x_E / 50, bankrupt where it is lost: x_B = x_E (1 + 1/50), i.e.
B = E x 50 / 51 = 7,735.37, shown as 7,735.5 on the 0.5 tick.

Fixed point (10^-8): x_raw = 10^24 / P_raw rounded to the nearest (1/P has no finite
decimal: the one inexact step, at most 5e-17 coin per USD of position), q_raw = n F
(whole contracts, whole USD: exact). Going out, prices are 10^24 / x_raw: a threshold
rounded the way that reaches it no later (a USD long's up, a short's down), then onto
the instrument's tick the same way; quantities in contracts (exact); sides swapped
back; a relative move d of x is a move 1 / (1 + d) - 1 of P (ADL distances and the
ladder's shocks are given in P).

Wallets: venues keep one wallet per settlement currency (Bybit's inverse cross margin
is per coin), so the engine keys an account's wallet in a currency other than USDT as
``account + "\\x1f" + currency`` (the ASCII unit separator, refused in input ids) and its
USDT wallet as the account itself; outputs name the account and, beside it, the
``settlement`` currency (absent: USDT).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple

from streams.engine.decode import MAX_PRICE_OR_QTY_RAW
from streams.engine.errors import InvalidEvent
from streams.engine.events import (
    Balance,
    Depth,
    Event,
    Fill,
    InsuranceFund,
    Mark,
    Side,
)
from streams.engine.fixed import SCALE, PriceRaw, QtyRaw, div_ceil, div_floor, to_str
from streams.engine.instruments import HOME_SETTLEMENT, Instrument
from streams.engine.margin import on_tick, tick_price
from streams.engine.risk import PositionRisk
from streams.engine.signals import (
    AdlTriggered,
    BankruptPosition,
    DeleverageStep,
    FundProjection,
    LiquidationDetected,
    RankAlert,
    Signal,
)

INVERSE_UNIT_USD = 10**8  # U: the USD of one unit of an inverse symbol's engine quantity
_PRICE_NUMERATOR = INVERSE_UNIT_USD * SCALE * SCALE  # x_raw * P_raw, exactly
WALLET_SEPARATOR = "\x1f"
_OTHER_SIDE = {"long": "short", "short": "long"}


def other_side(side: str) -> str:
    """The other side of a position: an inverse symbol's USD long is a short in x."""
    return _OTHER_SIDE[side]


# the lowest USD price an inverse symbol takes: x = U / P stays within the decoder's
# bound on a price (10^10), as the engine's columns assume
MIN_INVERSE_PRICE_RAW = _PRICE_NUMERATOR // MAX_PRICE_OR_QTY_RAW  # 0.01 USD


def inverse_price(price: int, field: str = "price") -> int:
    """x = U / P at the scale, rounded to the nearest (half up); ``price`` in USD, > 0.
    ``InvalidEvent`` below ``MIN_INVERSE_PRICE_RAW`` (``field`` names it)."""
    if price < MIN_INVERSE_PRICE_RAW:
        raise InvalidEvent(
            field, f"an inverse symbol's price is at least 0.01 USD, got {to_str(price)}"
        )
    return (2 * _PRICE_NUMERATOR + price) // (2 * price)


def venue_price(x: int, rounding: str = "nearest") -> int:
    """P = U / x at the scale: ``"up"``, ``"down"`` (exact quotients, for thresholds) or
    ``"nearest"`` (to the digits x carries: marks, entries, plan prices); ``x`` > 0."""
    if rounding == "up":
        return div_ceil(_PRICE_NUMERATOR, x)
    if rounding == "down":
        return div_floor(_PRICE_NUMERATOR, x)
    price = (2 * _PRICE_NUMERATOR + x) // (2 * x)
    # x was rounded by half a unit of its last place, which moves P by up to P / (2x)
    # units: P is shown to its own digits, not the rounding's (8,000 -> x = 12,500
    # exactly; 60,000 -> x = 1,666.66666667 -> 59,999.99999988 -> 60,000)
    quantum = int(10 ** len(str(max(1, price // x))))
    return (price + quantum // 2) // quantum * quantum


def engine_qty(contracts: int, contract_size: int) -> int:
    """|q| raw = n F: ``contracts`` as decoded (raw), which must be whole."""
    if contracts % SCALE:
        raise InvalidEvent(
            "qty", f"an inverse contract trades in whole contracts, got {to_str(contracts)}"
        )
    return contracts // SCALE * contract_size


def venue_qty(qty: int, contract_size: int) -> int:
    """Contracts (raw) of an engine quantity ``qty`` (a multiple of F: exact)."""
    return qty * SCALE // contract_size


def price_move(move: float, x_long: bool) -> float:
    """The relative move of P of an adverse relative move ``move`` of x: x's longs
    (USD shorts) lose as x falls by d, i.e. P rises by d / (1 - d); x's shorts (USD
    longs) as x rises by d, i.e. P falls by d / (1 + d)."""
    if x_long:
        return move / (1.0 - move) if move < 1.0 else float("inf")
    return move / (1.0 + move)


def engine_move(move: float) -> float:
    """A relative move of an inverse symbol's USD price P as the move of x = U / P it is:
    1 / (1 + move) - 1 (P +10%: x -9.09%; P -10%: x +11.1%)."""
    return 1.0 / (1.0 + move) - 1.0


def adverse_moves(move: float, inverse: bool) -> tuple[float, float]:
    """The moves of the engine's price at which its longs and its shorts are read after
    an adverse ``move`` of the venue's price (``imminent_distance``): (-move, +move); an
    inverse symbol's longs in x (USD shorts) lose as P rises, its shorts as P falls."""
    if inverse:
        return engine_move(move), engine_move(-move)
    return -move, move


def wallet_key(account: str, currency: str) -> str:
    """The engine's key of ``account``'s wallet in ``currency``."""
    return account if currency == HOME_SETTLEMENT else f"{account}{WALLET_SEPARATOR}{currency}"


def account_of(key: str) -> str:
    """The venue's account of an engine key."""
    return key.split(WALLET_SEPARATOR, 1)[0]


def wallet_of(key: str) -> tuple[str, str | None]:
    """(account, currency) of an engine key; currency ``None``: USDT."""
    account, _, currency = key.partition(WALLET_SEPARATOR)
    return account, currency or None


class VenuePosition(NamedTuple):
    """A position's side, size and prices as the venue states them."""

    side: str
    qty: int  # absolute: base units, or contracts for an inverse symbol
    entry_price: int
    mark_price: int
    liquidation_price: int | None
    bankruptcy_price: int | None


def venue_position(pos: PositionRisk) -> VenuePosition:
    """``pos`` (as the engine evaluated it) in the venue's terms: an inverse one's
    side swapped, contracts, prices in USD (thresholds rounded and on the tick as
    ``Settlements.outward``'s)."""
    inst = pos.instrument
    if not inst.inverse:
        return VenuePosition(
            pos.side,
            abs(pos.qty),
            pos.entry_price,
            pos.mark_price,
            pos.liquidation_price_on_tick,
            pos.bankruptcy_price_on_tick,
        )
    long = pos.qty < 0  # x's short is a USD long
    return VenuePosition(
        other_side(pos.side),
        venue_qty(abs(pos.qty), inst.contract_size),
        venue_price(pos.entry_price),
        venue_price(pos.mark_price),
        _threshold(pos.liquidation_price, inst, long),
        _threshold(pos.bankruptcy_price, inst, long),
    )


def _usd_threshold(x: int, long: bool) -> int:
    """A threshold of x in USD, rounded to be reached no later (a USD long's up, a short's
    down). x <= 0 (x's short, a USD long, past it at every price) shows as the largest
    price the scale holds, 10^16 USD (a linear short's shows <= 0)."""
    return venue_price(max(1, x), "up" if long else "down")


def _threshold(x: int | None, inst: Instrument, long: bool) -> int | None:
    """A threshold of x as the venue shows it: ``_usd_threshold`` on the tick the same way."""
    return None if x is None else on_tick(_usd_threshold(x, long), inst.tick_size, long)


class Settlements:
    """An engine's symbols that settle outside USDT or are inverse: their events made
    engine events (``inward``), their signals made the venue's again (``outward``).
    Symbols settled in USDT and linear (every bundled one) pass through untouched."""

    def __init__(self, instruments: Mapping[str, Instrument]) -> None:
        self.foreign = {
            s: inst for s, inst in instruments.items() if inst.settlement != HOME_SETTLEMENT
        }
        self.inverse = {s: inst for s, inst in self.foreign.items() if inst.inverse}
        self.currencies = frozenset(inst.settlement for inst in instruments.values())
        self.fund_settlement = {inst.fund: inst.settlement for inst in instruments.values()}

    @property
    def active(self) -> bool:
        return bool(self.foreign)

    # ------------------------------------------------------------------ in
    def inward(self, event: Event) -> Event:
        if isinstance(event, Balance):
            return self._balance(event)
        if isinstance(event, InsuranceFund):
            return event
        inst = self.foreign.get(event.symbol)
        if inst is None:
            return event
        if isinstance(event, Mark):
            return _inverse_mark(event) if inst.inverse else event
        if isinstance(event, Depth):
            return self.book(event)
        key = wallet_key(event.account, inst.settlement)
        if isinstance(event, Fill) and inst.inverse:
            return replace(
                event,
                account=key,
                side=Side.SELL if event.side is Side.BUY else Side.BUY,
                qty=QtyRaw(engine_qty(event.qty, inst.contract_size)),
                price=PriceRaw(inverse_price(event.price, "price")),
            )
        return replace(event, account=key)

    def book(self, event: Depth) -> Depth:
        """A book in the engine's terms (an inverse symbol's in x)."""
        inst = self.inverse.get(event.symbol)
        return event if inst is None else _inverse_book(event, inst)

    def _balance(self, event: Balance) -> Balance:
        if event.currency is None or event.currency == HOME_SETTLEMENT:
            return event
        if event.currency not in self.currencies:
            raise InvalidEvent(
                "currency", f"no symbol settles in {event.currency!r}: {sorted(self.currencies)}"
            )
        return replace(event, account=wallet_key(event.account, event.currency))

    # ------------------------------------------------------------------ out
    def outward(self, signal: Signal) -> Signal:
        if isinstance(signal, FundProjection):
            return self.projection(signal)
        inst = self.foreign.get(signal.symbol)
        if inst is None:
            return signal
        if isinstance(signal, RankAlert):
            return self.rank_alert(signal)
        if isinstance(signal, AdlTriggered):
            return self.trigger(signal)
        out = replace(signal, account=account_of(signal.account), settlement=inst.settlement)
        if not inst.inverse:
            return out
        long = signal.side == "short"  # the USD side: x's short is a USD long
        bankruptcy = _threshold(signal.bankruptcy_price, inst, long)
        common = {
            "side": other_side(signal.side),
            "qty": venue_qty(signal.qty, inst.contract_size),
            "mark_price": venue_price(signal.mark_price),
            "bankruptcy_price": bankruptcy,
        }
        if isinstance(out, LiquidationDetected):
            liquidation = _threshold(out.liquidation_price, inst, long)
            return replace(out, liquidation_price=liquidation, **common)  # type: ignore[arg-type]
        return replace(out, **common)  # type: ignore[arg-type]

    def rank_alert(self, alert: RankAlert) -> RankAlert:
        inst = self.foreign.get(alert.symbol)
        if inst is None:
            return alert
        side = other_side(alert.side) if inst.inverse else alert.side
        return alert._replace(
            account=account_of(alert.account), side=side, settlement=inst.settlement
        )

    def trigger(self, signal: AdlTriggered) -> AdlTriggered:
        inst = self.foreign.get(signal.symbol)
        if inst is None:
            return signal
        inverse = inst.inverse
        size = inst.contract_size
        tick = inst.tick_size

        def bankrupt(b: BankruptPosition) -> BankruptPosition:
            b = replace(b, account=account_of(b.account))
            if not inverse:
                return b
            # the exact price, off the tick (the plan's steps are on it)
            return replace(
                b,
                side=other_side(b.side),
                qty=venue_qty(b.qty, size),
                bankruptcy_price=_usd_threshold(b.bankruptcy_price, b.side == "short"),
            )

        def step(p: DeleverageStep) -> DeleverageStep:
            p = replace(p, account=account_of(p.account), against=account_of(p.against))
            if not inverse:
                return p
            # on the USD tick as the venue executes it (the bankrupt side, the step's
            # engine side: a USD long's rounded up)
            price = tick_price(venue_price(p.price), tick, p.side == "long")
            return replace(p, side=other_side(p.side), qty=venue_qty(p.qty, size), price=price)

        opinion = signal.second_opinion
        if inverse and opinion is not None and opinion.size_charge is not None:
            # coin per engine unit (U USD) -> coin per contract (F USD), rounded up as it was
            per_contract = div_ceil(opinion.size_charge * size, INVERSE_UNIT_USD)
            opinion = replace(opinion, size_charge=per_contract)
        return replace(
            signal,
            bankrupt=tuple(bankrupt(b) for b in signal.bankrupt),
            plan=tuple(step(p) for p in signal.plan),
            second_opinion=opinion,
            settlement=inst.settlement,
        )

    def projection(self, signal: FundProjection) -> FundProjection:
        settlement = self.fund_settlement.get(signal.fund, HOME_SETTLEMENT)
        if settlement == HOME_SETTLEMENT:
            return signal
        symbols = []
        for p in signal.symbols:
            if p.symbol in self.inverse:
                p = replace(
                    p,
                    mark_price=None if p.mark_price is None else venue_price(p.mark_price),
                    # x's longs are USD shorts; the distances and the ladder's shocks are
                    # moves of P already
                    adl_distance_long_pct=p.adl_distance_short_pct,
                    adl_distance_short_pct=p.adl_distance_long_pct,
                )
            symbols.append(p)
        return replace(signal, symbols=tuple(symbols), settlement=settlement)


def _inverse_mark(event: Mark) -> Mark:
    """An inverse symbol's mark in x."""
    index = event.index_price
    return replace(
        event,
        mark_price=PriceRaw(inverse_price(event.mark_price, "mark_price")),
        index_price=None if index is None else PriceRaw(inverse_price(index, "index_price")),
    )


def _inverse_book(event: Depth, inst: Instrument) -> Depth:
    """An inverse symbol's book in x: a bid for coins at P is an offer of USD, an ask in
    x (the best first still), sizes in the engine's units."""
    size = inst.contract_size

    def levels(side: tuple[tuple[PriceRaw, QtyRaw], ...]) -> tuple[tuple[PriceRaw, QtyRaw], ...]:
        return tuple(
            (PriceRaw(inverse_price(p, "depth")), QtyRaw(engine_qty(n, size))) for p, n in side
        )

    return replace(event, bids=levels(event.asks), asks=levels(event.bids))
