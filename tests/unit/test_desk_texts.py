"""What the desk reads: the demo's stage line and the webhook's chat text carry a
triggered plan's second opinion in one sentence, a rank alert the venue's own light."""

from __future__ import annotations

from typing import Any

from streams.demo import stage_line
from streams.notify.webhooks import opinion_sentence, slack_text
from tests.helpers import SECOND_OPINION

OPINION = SECOND_OPINION
TRIGGER: dict[str, Any] = {
    "ts": 1_000, "fund": "F", "symbol": "XUSDT", "stage": "triggered", "fund_balance": "10",
    "projected_loss": "36", "shortfall": "26", "coverage_ratio": 0.27, "adl_distance_pct": 0.0,
    "bankrupt": [{"account": "L"}],
    "plan": [{"account": "A", "side": "short", "qty": "2", "price": "92"},
             {"account": "E", "side": "short", "qty": "1", "price": "92"}],
    "second_opinion": OPINION,
}  # fmt: skip


def test_the_sentence_says_how_much_more_the_queue_takes() -> None:
    assert opinion_sentence(OPINION) == (
        "the queue closes 50.00 of winners' profit where 26.00 covers the deficit (1.9x); "
        "pro-rata takes 26.00% of each winner's profit; its top account bears 80%"
    )


def test_without_winners_the_sentence_says_only_what_it_knows() -> None:
    bare = {
        **OPINION,
        "queue": {**OPINION["queue"], "haircut": "0", "utilisation": None, "top1_share": None},
        "pro_rata": {**OPINION["pro_rata"], "haircut": "0", "ratio": None},
    }
    assert (
        opinion_sentence(bare)
        == "the queue closes 0.00 of winners' profit where 0.00 covers the deficit"
    )


def test_the_chat_text_and_the_demo_line_carry_it() -> None:
    assert slack_text("adl_triggers", TRIGGER).endswith(
        f". Second opinion: {opinion_sentence(OPINION)}"
    )
    assert stage_line(TRIGGER, 1.0, 3).splitlines()[-1] == (
        f"         second opinion: {opinion_sentence(OPINION)}"
    )
    quiet = {**TRIGGER, "stage": "imminent", "plan": [], "second_opinion": None}
    assert "second opinion" not in slack_text("adl_triggers", quiet).lower()
    assert "second opinion" not in stage_line(quiet, 1.0, 3)


def test_a_rank_alert_says_what_the_venue_shows_where_its_scale_differs() -> None:
    alert = {"account": "A", "side": "long", "symbol": "BTCUSDT", "quantile": 5,
             "previous_quantile": 3, "venue_indicator": 4}  # fmt: skip
    # Binance: 5 lights is adlQuantile 4
    assert slack_text("rank_alerts", alert) == (
        "ADL rank light 3 -> 5 for A long BTCUSDT (the venue shows 4)"
    )
    for same in (5, None):  # BitMEX, Bybit, OKX: 1..5 lit; Hyperliquid: none shown
        assert slack_text("rank_alerts", {**alert, "venue_indicator": same}) == (
            "ADL rank light 3 -> 5 for A long BTCUSDT"
        )


def test_a_stage_says_its_rule_where_it_is_not_the_funds() -> None:
    """A triggered stage with the fund far from short (10,000 against a loss of 36)
    must say why: Bybit's pool-drawdown rule; the fund's own rule goes unsaid."""
    drawdown = {**TRIGGER, "fund_balance": "10000", "rule": "drawdown"}
    assert slack_text("adl_triggers", drawdown).startswith(
        ":rotating_light: ADL triggered by the pool-drawdown rule on XUSDT (F): "
    )
    assert (
        stage_line(drawdown, 1.0, 3)
        .splitlines()[0]
        .endswith("1 positions to close by the pool-drawdown rule")
    )
    under_water = {**TRIGGER, "rule": "negative_value"}
    said = slack_text("adl_triggers", under_water)
    assert "ADL triggered by a value under water on XUSDT" in said
    for rule in ("fund", None):
        text = slack_text("adl_triggers", {**TRIGGER, "rule": rule})
        assert text.startswith(":rotating_light: ADL triggered on XUSDT (F): ")


def test_a_coin_funds_money_is_named_and_to_the_satoshi() -> None:
    # an inverse symbol's trigger: money in BTC (adl_triggers' settlement)
    coin = {**TRIGGER, "symbol": "BTCUSD", "fund": "BTC-inverse", "settlement": "BTC",
            "fund_balance": "0.005", "projected_loss": "0.02039474",
            "shortfall": "0.01539474"}  # fmt: skip
    text = slack_text("adl_triggers", coin)
    assert "projected loss 0.02039474 BTC vs fund 0.005 BTC, shortfall 0.01539474 BTC" in text
    assert opinion_sentence(OPINION, "BTC").startswith(
        "the queue closes 50.00000000 BTC of winners' profit where 26.00000000 BTC covers"
    )
    assert "fund BTC-inverse 0.00500000 BTC loss 0.02039474 BTC" in stage_line(coin, 1.0, 3)
