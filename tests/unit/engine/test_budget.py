"""The move budget of a wide cross account, against hand-computed numbers.

Account ``a``: cushion 100 USD; long 2 BTC evaluated at 50,000 (max mmr 0.5%), short
10 ETH at 3,000 (max mmr 1%). Each unit of BTC's mark moves its boundaries by at most
2 x 1.005 = 2.01 USD, each unit of ETH's by 10 x 1.01 = 10.1 USD; the budget is used up
when 2.01 |dBTC| + 10.1 |dETH| >= 100.
"""

from streams.engine.budget import MoveBudget
from tests.helpers import raw


def budget_of_a() -> MoveBudget:
    budget = MoveBudget()
    budget.put(
        "a",
        raw("100"),
        [
            ("BTC", raw("2"), raw("0.005"), raw("50000")),
            ("ETH", raw("-10"), raw("0.01"), raw("3000")),
        ],
    )
    return budget


def test_one_symbol_uses_the_budget_up_at_cushion_over_its_weight():
    budget = budget_of_a()
    # 100 / 2.01 = 49.7512...: 49.75 spends 99.9975, 49.76 spends 100.0176
    assert budget.moved("BTC", raw("50049.75")) == []
    assert budget.moved("BTC", raw("50049.76")) == ["a"]
    # down as well as up: |move|
    assert budget.moved("BTC", raw("49950.25")) == []
    assert budget.moved("BTC", raw("49950.24")) == ["a"]


def test_moves_of_several_symbols_add_up_and_a_move_back_gives_back():
    budget = budget_of_a()
    assert budget.moved("BTC", raw("50030")) == []  # 2.01 x 30 = 60.3
    assert budget.moved("ETH", raw("2997")) == []  # + 10.1 x 3 = 30.3: 90.6
    assert budget.moved("ETH", raw("3004")) == ["a"]  # + 10.1 x 4 = 40.4: 100.7
    # the bound is on the marks now, not on the path: back to 3,003 -> 60.3 + 30.3
    assert budget.moved("ETH", raw("3003")) == []
    assert budget.moved("SOL", raw("150")) == []  # not one of its symbols


def test_an_evaluation_puts_a_fresh_budget_and_a_removed_account_is_not_watched():
    budget = budget_of_a()
    assert budget.moved("BTC", raw("50040")) == []  # 80.4 spent
    budget.put("a", raw("100"), [("BTC", raw("2"), raw("0.005"), raw("50040"))])
    assert budget.moved("BTC", raw("50080")) == []  # 80.4 from the new mark
    assert budget.moved("ETH", raw("2000")) == []  # ETH closed since: no longer its
    budget.remove("a")
    assert "a" not in budget
    assert budget.moved("BTC", raw("60000")) == []


def test_a_zero_cushion_is_used_up_by_any_move():
    budget = MoveBudget()
    budget.put("a", 0, [("BTC", raw("1"), raw("0.005"), raw("50000"))])
    assert budget.moved("BTC", raw("50000.00000001")) == ["a"]
