"""Render engine values as JSON-ready dicts: the public payload contract.

Money, prices and quantities are decimal strings; scores, ratios and percentages are
JSON numbers (floats; ``null`` where undefined or infinite). The same payloads go to
the ``replay`` files and to the Kafka output topics; ``schemas/`` describes them.
"""

from __future__ import annotations

import math
from typing import Any

from streams.engine.engine import Engine
from streams.engine.fixed import to_str
from streams.engine.inverse import venue_position, wallet_of
from streams.engine.risk import AccountRisk
from streams.engine.signals import (
    AdlStage,
    AdlTriggered,
    BankruptcyDetected,
    FundProjection,
    LiquidationDetected,
    RankAlert,
    SecondOpinion,
    Signal,
)


def _money(raw: int | None) -> str | None:
    return None if raw is None else to_str(raw)


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _settled(payload: dict[str, Any], settlement: str | None) -> dict[str, Any]:
    """``settlement`` beside the money fields where it is not USDT (``engine.inverse``)."""
    if settlement is not None:
        payload["settlement"] = settlement
    return payload


def _position_event(s: LiquidationDetected | BankruptcyDetected) -> dict[str, Any]:
    return {
        "ts": s.ts_ms,
        "account": s.account,
        "symbol": s.symbol,
        "side": s.side,
        "qty": to_str(s.qty),
        "mark_price": to_str(s.mark_price),
        "bankruptcy_price": _money(s.bankruptcy_price),
        "margin_mode": "isolated" if s.isolated else "cross",
    }


def liquidation(s: LiquidationDetected) -> dict[str, Any]:
    payload = {
        **_position_event(s),
        "liquidation_price": _money(s.liquidation_price),
        "equity": to_str(s.equity),
        "maintenance_margin": to_str(s.maintenance_margin),
    }
    return _settled(payload, s.settlement)


def bankruptcy(s: BankruptcyDetected) -> dict[str, Any]:
    return _settled({**_position_event(s), "deficit": to_str(s.deficit)}, s.settlement)


def adl_trigger(s: AdlTriggered) -> dict[str, Any]:
    payload = {
        "ts": s.ts_ms,
        "fund": s.fund,
        "symbol": s.symbol,
        "stage": s.stage.value,
        "fund_balance": to_str(s.fund_balance),
        "projected_loss": to_str(s.projected_loss),
        "shortfall": to_str(s.shortfall),
        "coverage_ratio": _num(s.coverage_ratio),
        "adl_distance_pct": _num(s.adl_distance_pct),
        "bankrupt": [
            {
                "account": b.account,
                "symbol": b.symbol,
                "side": b.side,
                "qty": to_str(b.qty),
                "bankruptcy_price": to_str(b.bankruptcy_price),
                "deficit": to_str(b.deficit),
                "state": "liquidating" if b.liquidating else "bankrupt",
            }
            for b in s.bankrupt
        ],
        "plan": [
            {
                "account": p.account,
                "symbol": p.symbol,
                "side": p.side,
                "qty": to_str(p.qty),
                "price": to_str(p.price),
                "rank_score": _num(p.rank_score),
                "fee": to_str(p.fee),
                "against": p.against,
            }
            for p in s.plan
        ],
        "second_opinion": None if s.second_opinion is None else second_opinion(s.second_opinion),
        "rule": s.rule,
    }
    return _settled(payload, s.settlement)


def plan_now(planned: AdlTriggered, stage: AdlStage | None) -> dict[str, Any]:
    """``/adl/{symbol}/plan``: what ADL would do now; ``stage``: the one last announced."""
    return {**adl_trigger(planned), "stage": None if stage is None else stage.value}


def _shares(shares: tuple[float | None, float | None]) -> dict[str, float | None]:
    return {"top1_share": _num(shares[0]), "top10_share": _num(shares[1])}


def second_opinion(o: SecondOpinion) -> dict[str, Any]:
    return {
        "deficit": to_str(o.deficit),
        "winners_profit": to_str(o.winners_profit),
        "queue": {
            "haircut": to_str(o.queue_haircut),
            "equity_moved": to_str(o.equity_moved),
            "overshoot": to_str(o.overshoot),
            "utilisation": _num(o.utilisation),
            **_shares(o.queue_top_shares),
        },
        "pro_rata": {
            "haircut": to_str(o.minimal_haircut),
            "ratio": _num(o.pro_rata_ratio),
            **_shares(o.pro_rata_top_shares),
        },
        "by_size": {
            "charge_per_unit": _money(o.size_charge),
            **_shares(o.size_top_shares),
        },
    }


def fund_projection(s: FundProjection) -> dict[str, Any]:
    payload = {
        "ts": s.ts_ms,
        "fund": s.fund,
        "fund_balance": to_str(s.fund_balance),
        "projected_loss": to_str(s.projected_loss),
        "coverage_ratio": _num(s.coverage_ratio),
        "runway_seconds": _num(s.runway_seconds),
        "symbols": [
            {
                "symbol": p.symbol,
                "mark_price": _money(p.mark_price),
                "adl_distance_long_pct": _num(p.adl_distance_long_pct),
                "adl_distance_short_pct": _num(p.adl_distance_short_pct),
                "bankrupt_deficit": to_str(p.bankrupt_deficit),
                "liquidatable_loss": to_str(p.liquidatable_loss),
                "pool_pnl_ratio": _num(p.pool_pnl_ratio),
                "pool_pnl_ratio_after_loss": _num(p.pool_pnl_ratio_after_loss),
                "ladder": [
                    {"shock_pct": pt.shock_pct, "projected_loss": to_str(pt.projected_loss)}
                    for pt in p.ladder
                ],
            }
            for p in s.symbols
        ],
    }
    return _settled(payload, s.settlement)


def rank_alert(s: RankAlert) -> dict[str, Any]:
    payload = {
        "ts": s.ts_ms,
        "account": s.account,
        "symbol": s.symbol,
        "side": s.side,
        "quantile": s.quantile,
        "previous_quantile": s.previous_quantile,
        "rank_score": _num(s.rank_score),
        "notional": to_str(s.notional),
        "venue_indicator": s.venue_indicator,
    }
    return _settled(payload, s.settlement)


def account_risk(risk: AccountRisk, engine: Engine | None) -> dict[str, Any]:
    """``engine`` gives the positions' ranks; ``None`` where no ranking is known (stage A
    of the partitioned worker: ranks need every account)."""
    positions = []
    for p in risk.positions:
        view = None if engine is None else engine.rank_view(risk.account, p.symbol)
        side, qty, entry, mark, liquidation, bankruptcy = venue_position(p)
        positions.append(
            {
                "symbol": p.symbol,
                "side": side,
                "margin_mode": "isolated" if p.isolated else "cross",
                "qty": to_str(qty),
                "entry_price": to_str(entry),
                "mark_price": to_str(mark),
                "unrealized_pnl": to_str(p.unrealized_pnl),
                "maintenance_margin": to_str(p.maintenance_margin),
                "liquidation_price": _money(liquidation),
                "bankruptcy_price": _money(bankruptcy),
                "state": p.health.label,
                "rank_score": None if view is None else _num(view[0]),
                "quantile": None if view is None else view[1],
            }
        )
    account, settlement = wallet_of(risk.account)
    payload = {
        "account": account,
        "wallet_balance": to_str(risk.wallet_balance),
        "equity": to_str(risk.equity),
        "maintenance_margin": to_str(risk.maintenance_margin),
        "margin_ratio": _num(risk.margin_ratio),
        "state": risk.health.label,
        "deficit": to_str(risk.deficit),
        "positions": positions,
    }
    return _settled(payload, settlement)


def final_accounts(engine: Engine) -> list[dict[str, Any]]:
    """Every account re-evaluated at the final marks, sorted by account id."""
    out = []
    for acct in sorted(engine.accounts):
        risk = engine.risk_now(acct)
        if risk is not None:  # always: an account of engine.accounts
            out.append(account_risk(risk, engine))
    return out


RENDERERS: dict[type, tuple[str, Any]] = {
    LiquidationDetected: ("liquidations", liquidation),
    BankruptcyDetected: ("bankruptcies", bankruptcy),
    AdlTriggered: ("adl_triggers", adl_trigger),
    FundProjection: ("fund_projection", fund_projection),
    RankAlert: ("rank_alerts", rank_alert),
}


def render(signal: Signal) -> tuple[str, dict[str, Any]]:
    """(stream name, payload) of one signal."""
    name, fn = RENDERERS[type(signal)]
    return name, fn(signal)
