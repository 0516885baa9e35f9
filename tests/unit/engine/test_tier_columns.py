"""Margin tiers as float columns against Binance's published BTCUSDT and SOLUSDT brackets
(streams/data/instruments.toml), worked by hand."""

from dataclasses import replace

import numpy as np
import pytest

from streams.engine.fixed import SCALE
from streams.engine.profiles import PROFILES
from streams.engine.queue import QueueTable
from streams.engine.tier_columns import TierColumns
from tests.helpers import bundled_instruments
from tests.unit.engine.test_queue import position

BUNDLED = bundled_instruments()
BTC, SOL = BUNDLED["BTCUSDT"], BUNDLED["SOLUSDT"]


def test_each_notional_takes_its_brackets_rate_and_amount():
    tiers = TierColumns([BTC, SOL])  # indexes 0 and 1
    symbol = np.array([0, 0, 0, 0, 1, 1, 1])
    qty = np.array([1.0, -1.0, 40.0, 10_000.0, 10.0, -100.0, 50_000.0])
    mark = np.array([50_000.0, 50_000.0, 50_000.0, 60_000.0, 100.0, 100.0, 100.0])
    got = tiers.maintenance(symbol, qty, mark)
    want = [
        50_000 * 0.004,  # BTC at its first edge (<= 50,000): 200
        50_000 * 0.004,  # a short's size counts as |q|
        2_000_000 * 0.025 - 16_300,  # BTC 2M in the 1M-10M bracket: 33,700
        600_000_000 * 0.5 - 100_016_300,  # past the table: its last bracket, 199,983,700
        1_000 * 0.01,  # SOL 1,000 in its first bracket: 10
        10_000 * 0.025 - 75,  # SOL 10,000 in 5,000-25,000: 175
        5_000_000 * 0.5 - 386_950,  # SOL at its last edge: 2,113,050
    ]
    assert got.tolist() == pytest.approx(want, rel=1e-12)


def test_the_bracket_past_an_edge_and_the_scalar_form():
    tiers = TierColumns([BTC])
    past = tiers.maintenance(0, np.array([1.00001]), 50_000.0)  # 50,000.5: second bracket
    assert past.tolist() == pytest.approx([50_000.5 * 0.005 - 50], rel=1e-12)


def test_maintenance_on_the_entry_value_is_not_the_marks():
    # a symbol whose maintenance is on the entry value: its evaluation gives it, not a mark
    tiers = TierColumns([replace(BTC, maintenance_base="entry"), SOL])
    got = tiers.maintenance(np.array([0, 1]), np.array([1.0, 10.0]), np.array([50_000.0, 100.0]))
    assert got.tolist() == pytest.approx([0.0, 10.0])


def test_a_ranking_that_reads_the_maintenance_asks_for_the_tiers():
    table = QueueTable()
    table.put("a", position(SCALE, 100 * SCALE, 10 * SCALE, False), 10 * SCALE)
    with pytest.raises(ValueError, match=r"binance.*maintenance.*tiers"):
        table.rank(100 * SCALE, PROFILES["binance"], symbol="X", ts_ms=0)
