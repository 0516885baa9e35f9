"""Builders shared by the tests. Numbers are written as decimal strings, as a venue would."""

from __future__ import annotations

import difflib
import functools
import json
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from streams.engine.account import AccountState, Position
from streams.engine.decode import decode_event, decode_line
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError
from streams.engine.events import Event, MarginMode
from streams.engine.fixed import SCALE, to_raw
from streams.engine.instruments import Instrument, load_instruments
from streams.engine.instruments import parse_instruments as _parse

BUNDLED = "streams/data/instruments.toml"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


@functools.cache  # checking a schema against the meta-schema costs ~2 ms: once per name
def schema_validator(name: str) -> Draft202012Validator:
    """``schemas/<name>.schema.json``, itself checked against its meta-schema."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def bundled_instruments() -> dict[str, Instrument]:
    return load_instruments(BUNDLED)


def raw(value: str | int) -> int:
    return to_raw(str(value))


def btc_long_eth_short() -> tuple[AccountState, dict[str, int]]:
    """An account of two cross positions and its marks: wallet 10,000, long 1 BTC @
    50,000 (mark 48,000), short 10 ETH @ 3,000 (mark 3,100)."""
    state = AccountState(
        "a",
        wallet_balance=raw("10000"),
        positions=(
            Position("BTCUSDT", raw("1"), raw("50000"), MarginMode.CROSS),
            Position("ETHUSDT", raw("-10"), raw("3000"), MarginMode.CROSS),
        ),
    )
    return state, {"BTCUSDT": raw("48000"), "ETHUSDT": raw("3100")}


def one_tier(
    mmr: str = "0.01",
    profile: str = "bybit",
    symbol: str = "XUSDT",
    maintenance_base: str | None = "mark",
    fund_table: dict[str, Any] | None = None,
) -> dict[str, Instrument]:
    """A single-bracket instrument in fund F, for hand calculations (maintenance on the
    mark's notional unless told: the hand calculations written before issue 13 assume
    it; ``None``: the profile's convention); ``fund_table``: F's [funds.F] table."""
    base = {} if maintenance_base is None else {"maintenance_base": maintenance_base}
    return _parse(
        {
            "symbols": {
                symbol: {
                    "fund": "F",
                    "profile": profile,
                    **base,
                    "tiers": [
                        {
                            "max_notional": "1000000000",
                            "mmr": mmr,
                            "maintenance_amount": "0",
                            "max_leverage": 100,
                        }
                    ],
                }
            },
            "funds": {} if fund_table is None else {"F": fund_table},
        }
    )


def ceil_raw(value: Fraction) -> int:
    """Exact value rounded up to the engine's 1e-8 grid."""
    scaled = value * SCALE
    return -((-scaled.numerator) // scaled.denominator)


def floor_raw(value: Fraction) -> int:
    scaled = value * SCALE
    return scaled.numerator // scaled.denominator


def F(value: str | int) -> Fraction:  # reads like a unit in formulas
    return Fraction(Decimal(str(value)))


def ev(event_type: str, **fields: Any) -> Event:
    return decode_event({"type": event_type, **fields})


def fill(
    fid: str,
    account: str,
    side: str,
    qty: str,
    price: str,
    symbol: str = "BTCUSDT",
    ts: int = 1,
    fee: str = "0",
    kind: str = "trade",
) -> Event:
    return ev(
        "fill",
        fill_id=fid,
        ts=ts,
        account=account,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=fee,
        kind=kind,
    )


def mark(symbol: str, price: str, ts: int) -> Event:
    return ev("mark", symbol=symbol, mark_price=price, ts=ts)


def deposit(eid: str, account: str, amount: str, ts: int = 0) -> Event:
    return ev("balance", event_id=eid, ts=ts, account=account, amount=amount, reason="deposit")


def isolated(account: str, symbol: str, leverage: str, ts: int = 0) -> Event:
    return ev(
        "position_config",
        ts=ts,
        account=account,
        symbol=symbol,
        margin_mode="isolated",
        leverage=leverage,
    )


def fund(balance: str, ts: int = 0, name: str = "USDT-M", **pnl: str) -> Event:
    """``pnl``: ``symbol`` and ``symbol_pnl``, the pool's PnL from one symbol."""
    return ev("insurance_fund", ts=ts, fund=name, balance=balance, **pnl)


def assert_stages_follow(
    want: list[dict[str, Any]],
    got: list[dict[str, Any]],
    interval_ms: int,
    restarted: bool = False,
    marks: Sequence[int] = (),
) -> None:
    """Stage B's triggers (``got``) against replay's (``want``). The desk judges at mark
    groups; replay also at the venue's fills between marks, so a flip lasting less than
    a mark interval may be seen by one only. Still: 90% of replay's announcements are
    matched in order (per symbol: the topic keeps order per key), each at most one
    interval later; every ``triggered`` one is
    matched, and its plan deleverages the same counterparties for the same sizes (the
    price, the bankrupt position's bankruptcy price, may differ: replay may judge at a
    venue fill before the marks of that millisecond, the desk after them).

    ``restarted``: a partition restarted from its changelog re-evaluates every account
    at once, while the uninterrupted run re-evaluates an account with several cross
    positions only when a mark leaves its band. Deficits at the mark are the same
    either way (exact), deficits at shocked marks are not: "imminent" (a 5% move away)
    and its "cleared" may then flip a few marks apart. Timing is held to the interval
    for "triggered" only (a loss at the mark beyond the fund). ADL scores do not depend
    on evaluation history (an account's equity at a ranking moves with all its marks):
    plans are held to the same counterparties either way.

    ``marks``: the mark times (sorted); replay's round trips between two of them are
    left out of ``want`` (``_without_flips_between_marks``)."""
    want = _without_flips_between_marks(want, marks)
    matched: list[tuple[int, int]] = []  # per symbol: the output topic's order is per key
    for symbol in {t["symbol"] for t in want} | {t["symbol"] for t in got}:
        wi = [i for i, t in enumerate(want) if t["symbol"] == symbol]
        gi = [j for j, t in enumerate(got) if t["symbol"] == symbol]
        matcher = difflib.SequenceMatcher(
            a=[want[i]["stage"] for i in wi], b=[got[j]["stage"] for j in gi], autojunk=False
        )
        matched += [
            (wi[blk.a + k], gi[blk.b + k])
            for blk in matcher.get_matching_blocks()
            for k in range(blk.size)
        ]
    assert len(matched) >= 0.9 * len(want)
    triggered = {i for i, t in enumerate(want) if t["stage"] == "triggered"}
    assert triggered
    if restarted:
        # the restart's "imminent"/"cleared" flips may differ, and the alignment of the
        # stage sequences with them: each "triggered" is paired by time instead, with the
        # desk's "triggered" of its symbol within the interval after it
        matched = [
            (i, j) for i in sorted(triggered) for j in _triggered_after(want[i], got, interval_ms)
        ]
    timed = [(i, j) for i, j in matched if not restarted or want[i]["stage"] == "triggered"]
    late = [(want[i]["symbol"], want[i]["stage"], want[i]["ts"], got[j]["ts"])
            for i, j in timed if not 0 <= got[j]["ts"] - want[i]["ts"] < interval_ms]  # fmt: skip
    assert not late, f"(symbol, stage, replay's time, the desk's) outside the window: {late}"
    missing = [(want[i]["symbol"], want[i]["ts"]) for i in triggered - {i for i, _ in matched}]
    assert not missing, f"replay's triggered (symbol, time) the desk did not announce: {missing}"

    def steps(trigger: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(s["account"], s["side"], s["qty"], s["against"]) for s in trigger["plan"]]

    for i, j in matched:
        if i in triggered:
            assert steps(got[j]) == steps(want[i]), (want[i]["symbol"], want[i]["ts"])


def _triggered_after(
    trigger: dict[str, Any], got: list[dict[str, Any]], interval_ms: int
) -> list[int]:
    """The first of ``got``'s "triggered" of the trigger's symbol at or after its time
    and within ``interval_ms`` of it (none: an empty list)."""
    return [
        j
        for j, t in enumerate(got)
        if t["symbol"] == trigger["symbol"]
        and t["stage"] == "triggered"
        and 0 <= t["ts"] - trigger["ts"] < interval_ms
    ][:1]


def _without_flips_between_marks(
    triggers: list[dict[str, Any]], marks: Sequence[int]
) -> list[dict[str, Any]]:
    """Replay's announcements without its round trips that no mark saw (imminent ->
    cleared -> imminent, or cleared -> imminent -> cleared, of one symbol, the state
    between in force at no mark time): judged at marks, the desk sees neither half.
    Never a triggered one."""
    dropped: set[int] = set()
    last: dict[str, int] = {}  # symbol -> index of its last announcement kept
    for k, t in enumerate(triggers):
        j = last.get(t["symbol"])
        if (
            j is not None
            and "triggered" not in (t["stage"], triggers[j]["stage"])
            and bisect_left(marks, triggers[j]["ts"]) == bisect_left(marks, t["ts"])
        ):
            dropped |= {j, k}
            del last[t["symbol"]]
            continue
        last[t["symbol"]] = k
    return [t for k, t in enumerate(triggers) if k not in dropped]


RANK_ALERT_FIELDS = ("ts", "account", "symbol", "side", "quantile", "previous_quantile")


def rank_alert_key(alert: dict[str, Any]) -> tuple[Any, ...]:
    """A rank alert's time, position, light and previous light."""
    return tuple(alert[f] for f in RANK_ALERT_FIELDS)


def rank_alerts_matched(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> int:
    """How many of ``want`` (replay's rank alerts) ``got`` has, identical in time,
    position, light and previous light."""
    return sum((Counter(map(rank_alert_key, want)) & Counter(map(rank_alert_key, got))).values())


def unmatched_alerts(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> str:
    """Where ``want`` and ``got`` differ, per (symbol, side): how many alerts only one of
    them has and the market times they span (what a failure must say to be diagnosed)."""
    wanted, gotten = Counter(map(rank_alert_key, want)), Counter(map(rank_alert_key, got))
    lines = []
    for name, only in (("replay only", wanted - gotten), ("agents only", gotten - wanted)):
        spans: dict[tuple[str, str], list[int]] = {}
        for k, n in only.items():
            spans.setdefault((k[2], k[3]), []).extend([k[0]] * n)
        lines += [
            f"{name} {symbol} {side}: {len(ts)} at ts {min(ts)}..{max(ts)} ({len(set(ts))} times)"
            for (symbol, side), ts in sorted(spans.items())
        ]
    return "\n".join(lines)


def assert_rank_alerts_follow(
    want: list[dict[str, Any]], got: list[dict[str, Any]], share: float = 0.99
) -> None:
    """The partitioned path's rank alerts are replay's but for a known ~1%: scores of
    several partitions within the sketch's accuracy of a light boundary (each partition
    spreads its own through the bucket), and replay's re-rank at a fill for a trigger's
    plan (the desk sees marks only: its re-rank comes at the next mark)."""
    assert len(want) > 1_000
    matched = rank_alerts_matched(want, got)
    assert matched >= share * len(want), (matched, len(want), len(got), unmatched_alerts(want, got))
    assert abs(len(got) - len(want)) <= (1 - share) * len(want), (len(got), len(want))


# Hostile input lines of issue 12, each with the field its dead letter names: each one
# crashed replay or the worker, was accepted in silence, or cost seconds or 100s of MB.
FILL = {"type": "fill", "fill_id": "h", "ts": 1760129500000, "account": "acct-00001",
        "symbol": "BTCUSDT", "side": "buy", "qty": "0.01", "price": "60000"}  # fmt: skip
MARK = {"type": "mark", "ts": 1760129500000, "symbol": "BTCUSDT", "mark_price": "60000"}


def line(base: dict[str, object], **change: object) -> bytes:
    return json.dumps({**base, **change}).encode()


def hostile_lines() -> list[tuple[bytes, str]]:
    """Built on call: three of them weigh 65 MB."""
    return [
        (line(FILL, qty=10**40), "qty"),
        (line(FILL, qty="92233720369"), "qty"),
        (line(FILL, qty="1e5000"), "qty"),
        (line(FILL, qty="1e999999"), "qty"),
        (line(MARK, mark_price="9" * 5_000_000), "$size"),  # 5 MB: refused unparsed
        (line(MARK, mark_price="9" * 60), "mark_price"),
        (line(MARK, mark_price="0.010000000000000000000000000001"), "mark_price"),
        (line(MARK, mark_price="٠.٠١"), "mark_price"),
        (line(MARK, mark_price="0.0_1"), "mark_price"),
        (line(MARK, mark_price="1" + "0" * 40), "mark_price"),
        (line(FILL, fill_id="f" * 10_000_000), "$size"),
        (line(FILL, account="a" * 100_000), "account"),
        (b'{"type":"mark","pad":"' + b"x" * 50_000_000 + b'"}', "$size"),
        (
            line(
                {
                    "type": "depth",
                    "ts": 1760129500000,
                    "symbol": "BTCUSDT",
                    "bids": [["1", "1"]] * 20_000,
                    "asks": [],
                }
            ),
            "bids",
        ),
        (
            line(
                {
                    "type": "balance",
                    "event_id": "h",
                    "ts": 1760129500000,
                    "account": "acct-00001",
                    "amount": "-1" + "0" * 40,
                    "reason": "deposit",
                }
            ),
            "amount",
        ),
    ]


def signals_of(engine: Engine, lines: list[bytes]) -> list[bytes]:
    """``lines`` (JSON events) applied to ``engine``, one by one as ``replay`` does, those
    it refuses skipped; the signals they gave, each its repr."""
    symbols = frozenset(engine.instruments)
    out = []
    for line in lines:
        try:
            out += [repr(s).encode() for s in engine.apply(decode_line(line, symbols))]
        except AdlMonitorError:
            continue
    return out


# The second opinion of the hand-computed plan in tests/unit/engine/test_second_opinion.py
# (D 26, W 100, the queue closes 50 of profit, moves 36 of equity), as adl_triggers says it
SECOND_OPINION: dict[str, Any] = {
    "deficit": "26", "winners_profit": "100",
    "queue": {"haircut": "50", "equity_moved": "36", "overshoot": "24",
              "utilisation": 50 / 26, "top1_share": 0.8, "top10_share": 1.0},
    "pro_rata": {"haircut": "26", "ratio": 0.26, "top1_share": 0.4, "top10_share": 1.0},
    "by_size": {"charge_per_unit": "1.85714286", "top1_share": 4 / 14, "top10_share": 1.0},
}  # fmt: skip


def one_bankruptcy_book(
    fund_balance: str, profile: str = "bybit", fund_table: dict[str, Any] | None = None
) -> Engine:
    """A hand-computable book on XUSDT (MMR 1%, fund F), at mark 100: L deposits 24 and
    buys 3 at 100 (bankrupt below 100 - 24 / 3 = 92); shorts A 2 @ 100 (deposit 50),
    B 1 @ 100 (1,000), E 4 @ 90 (1,000); long C 4 @ 90 (1,000)."""
    engine = Engine(one_tier(profile=profile, symbol="XUSDT", fund_table=fund_table))
    events = [fund(fund_balance, name="F"), mark("XUSDT", "100", 0)]
    for acct, amount in (("L", "24"), ("A", "50"), ("B", "1000"), ("E", "1000"), ("C", "1000")):
        events.append(deposit(f"d{acct}", acct, amount, ts=1))
    events += [
        fill("f1", "L", "buy", "3", "100", "XUSDT", ts=2),
        fill("f2", "A", "sell", "2", "100", "XUSDT", ts=2),
        fill("f3", "B", "sell", "1", "100", "XUSDT", ts=2),
        fill("f4", "E", "sell", "4", "90", "XUSDT", ts=2),
        fill("f5", "C", "buy", "4", "90", "XUSDT", ts=2),
    ]
    for event in events:
        engine.apply(event)
    return engine
