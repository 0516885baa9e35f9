"""Account ids as integer codes: given once, never moved, names read back intact."""

import pickle

import numpy as np

from streams.engine.account_names import AccountNames
from streams.engine.fixed import SCALE
from streams.engine.profiles import PROFILES
from streams.engine.queue import QueueTable
from tests.unit.engine.test_queue import RANK, position

# a Hyperliquid address: 42 characters, past the first array's 16
ADDRESS = "0x" + "ab" * 20


def test_codes_are_given_once_in_order_of_first_use():
    names = AccountNames()
    assert [names.code(a) for a in ("b", "a", "b", "c", "a")] == [0, 1, 0, 2, 1]
    assert len(names) == 3
    assert names.names(np.array([2, 0, 1, 0])).tolist() == ["c", "b", "a", "b"]
    assert names.name(1) == "a"


def test_a_longer_name_and_growth_keep_every_earlier_name():
    names = AccountNames()
    short = [f"a{k}" for k in range(40)]  # past the first capacity (16) twice
    codes = [names.code(a) for a in short]
    long_code = names.code(ADDRESS)
    more = [names.code(f"z{k:03d}") for k in range(100)]
    assert names.names(np.array(codes)).tolist() == short
    assert names.name(long_code) == ADDRESS  # not cut to 16 characters
    assert names.names(np.array(more)).tolist() == [f"z{k:03d}" for k in range(100)]
    assert codes == list(range(40))
    assert long_code == 40
    assert more == list(range(41, 141))


def test_pickled_names_keep_their_codes():
    names = AccountNames(["x", ADDRESS, "y"])
    back = pickle.loads(pickle.dumps(names))  # noqa: S301  # our own bytes
    assert [back.code(a) for a in ("x", ADDRESS, "y", "new")] == [0, 1, 2, 3]
    assert back.names(np.array([1, 0])).tolist() == [ADDRESS, "x"]


def test_a_ranking_names_its_accounts_after_rows_moved_and_names_grew():
    # three longs at entry 90 marked at 100, backing 1, 2, 3: leverage falls with the
    # backing, so the BitMEX ranking puts "c" (backing 1) first, then "b", then "a"
    table = QueueTable()
    profile = PROFILES["bybit"]
    for acct, backing in (("a", 3), ("b", 2), ("c", 1)):
        table.put(acct, position(SCALE, 90 * SCALE, backing * SCALE, True), backing * SCALE)
    table.rank(100 * SCALE, profile, **RANK)
    before = table.ranking("long")
    assert before is not None
    assert before.accounts.tolist() == ["c", "b", "a"]
    # "a" closes (the last row, "c", moves into its place by swap-remove), and 100 new
    # accounts with long names grow the names past their first array
    table.remove("a")
    for k in range(100):
        table.put(f"{ADDRESS}{k}", position(SCALE, 90 * SCALE, 50 * SCALE, True), 50 * SCALE)
    assert before.accounts.tolist() == ["c", "b", "a"]
    assert before.names_at(np.array([2, 0])) == ["a", "c"]
    table.rank(100 * SCALE, profile, **RANK)
    after = table.ranking("long")
    assert after is not None
    # backing 50 -> leverage 2, below "b" (5) and "c" (10): last, ties by account id
    assert after.accounts.tolist() == ["c", "b", *sorted(f"{ADDRESS}{k}" for k in range(100))]


def test_equal_scores_are_ordered_by_account_id_whatever_order_they_came_in():
    # codes follow first use (z first): the tie must still go by the id's own order
    table = QueueTable()
    profile = PROFILES["bybit"]
    ids = ["z", "m", ADDRESS, "a", "0x01"]
    for acct in ids:
        table.put(acct, position(SCALE, 90 * SCALE, 5 * SCALE, True), 5 * SCALE)
    table.rank(100 * SCALE, profile, **RANK)
    ranking = table.ranking("long")
    assert ranking is not None
    assert ranking.accounts.tolist() == sorted(ids)
    assert [e.account for e in table.ranked("long")] == sorted(ids)
