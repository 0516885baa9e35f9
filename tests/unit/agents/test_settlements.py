"""The partitioned path refuses what it cannot convert yet: symbols settled outside USDT."""

from __future__ import annotations

import pytest

from streams.agents.app import check_settlements
from streams.engine.errors import ConfigError
from tests.helpers import bundled_instruments
from tests.unit.engine.test_inverse import inverse_book


def test_the_agents_take_usdt_symbols_and_refuse_a_coin_settled_one() -> None:
    check_settlements(bundled_instruments())  # nothing raised: every bundled one is USDT
    with pytest.raises(ConfigError, match="BTCUSD settle outside USDT"):
        check_settlements(inverse_book())
