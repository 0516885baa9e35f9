"""Binance's published USDⓈ-M examples ("How to Calculate Liquidation Price of USDⓈ-M
Futures Contracts") against the bundled brackets."""

import itertools

import pytest

from streams.engine.errors import ConfigError
from streams.engine.fixed import SCALE
from streams.engine.instruments import parse_instruments
from tests.helpers import bundled_instruments, raw


def test_binance_example_264000_usdt_position_uses_1_percent():
    # "if the position of USDT-margined BTC/USDT Contract is 264,000 USDT, then the
    #  maintenance margin rate would be 1% (or 0.01)"
    btc = bundled_instruments()["BTCUSDT"]
    assert btc.tier_for(raw("264000")).mmr == raw("0.01")


def test_binance_example_500000_usdt_position_has_maintenance_amount_1300():
    # "if the position ... is 500,000 USDT, then the maintenance amount would be 1,300 USDT"
    # "= 250,000 * (1% - 0.5%) + 50 USDT = 1,300 USDT"
    btc = bundled_instruments()["BTCUSDT"]
    assert btc.tier_for(raw("500000")).maintenance_amount == raw("1300")
    assert pytest.approx(1300) == 250_000 * (0.01 - 0.005) + 50


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"])
def test_every_bracket_follows_binance_maintenance_amount_rule(symbol):
    # cum_n = floor_n * (mmr_n - mmr_{n-1}) + cum_{n-1}: margin is continuous at each floor
    tiers = bundled_instruments()[symbol].tiers
    assert tiers[0].maintenance_amount == 0
    for prev, cur in itertools.pairwise(tiers):
        floor = prev.max_notional
        expected = floor * (cur.mmr - prev.mmr) // 10**8 + prev.maintenance_amount
        assert cur.maintenance_amount == expected


def test_bad_files_are_refused_with_the_place():
    with pytest.raises(ConfigError, match="symbols"):
        parse_instruments({})
    with pytest.raises(ConfigError, match=r"tiers\[0\]: missing mmr"):
        parse_instruments({"symbols": {"X": {"tiers": [{"max_notional": "1"}]}}})
    with pytest.raises(ConfigError, match="ascend"):
        parse_instruments(
            {
                "symbols": {
                    "X": {
                        "tiers": [
                            {"max_notional": "10", "mmr": "0.01", "maintenance_amount": "0"},
                            {"max_notional": "5", "mmr": "0.02", "maintenance_amount": "0"},
                        ]
                    }
                }
            }
        )


def test_the_maintenance_base_is_the_profiles_unless_the_file_states_it():
    tier = {"max_notional": "1000", "mmr": "0.01", "maintenance_amount": "0"}

    def base(**spec: str) -> str:
        return parse_instruments({"symbols": {"X": {"tiers": [tier], **spec}}})[
            "X"
        ].maintenance_base

    # Bybit and BitMEX publish liquidation prices on the entry value; the others on the mark
    assert base(profile="bybit") == base(profile="bitmex") == base() == "entry"  # default bybit
    assert base(profile="binance") == base(profile="okx") == base(profile="hyperliquid") == "mark"
    assert base(profile="bybit", maintenance_base="mark") == "mark"
    assert base(profile="binance", maintenance_base="entry") == "entry"
    with pytest.raises(ConfigError, match=r"symbols\.X\.maintenance_base: 'last'"):
        base(maintenance_base="last")
    with pytest.raises(ConfigError, match="profile"):
        base(profile="ftx")


def test_a_tick_size_is_optional_and_positive():
    tier = {"max_notional": "1000", "mmr": "0.01", "maintenance_amount": "0"}

    def tick(**spec: str) -> int:
        return parse_instruments({"symbols": {"X": {"tiers": [tier], **spec}}})["X"].tick_size

    assert tick() == 0  # none: prices on the engine's 1e-8 grid
    assert tick(tick_size="0.5") == raw("0.5")
    for bad in ("0", "-0.1"):
        with pytest.raises(ConfigError, match=r"symbols\.X\.tick_size"):
            tick(tick_size=bad)


def test_a_closing_fee_rate_is_optional_and_below_ten_percent():
    tier = {"max_notional": "1000", "mmr": "0.01", "maintenance_amount": "0"}

    def fee(**spec: str) -> tuple[int, int, int]:
        inst = parse_instruments({"symbols": {"X": {"tiers": [tier], **spec}}})["X"]
        return inst.closing_fee_rate, inst.slope(1), inst.slope(-1)

    assert fee() == (0, SCALE, SCALE)  # none: a position's equity moves by q
    # 0.075%: a long's equity moves by q (1 - r), a short's by q (1 + r)
    assert fee(closing_fee_rate="0.00075") == (raw("0.00075"), raw("0.99925"), raw("1.00075"))
    for bad in ("-0.0001", "0.1", "1"):
        with pytest.raises(ConfigError, match=r"symbols\.X\.closing_fee_rate"):
            fee(closing_fee_rate=bad)
