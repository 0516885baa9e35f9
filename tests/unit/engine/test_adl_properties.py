import itertools

from hypothesis import given
from hypothesis import strategies as st

from streams.engine.adl import QueueEntry, deleverage_plan, rank_queue
from streams.engine.profiles import PROFILES
from streams.engine.signals import BankruptPosition

entries = st.lists(
    st.builds(
        QueueEntry,
        account=st.text("abcdef", min_size=1, max_size=4),
        qty=st.integers(1, 10**9),
        score=st.floats(-100, 100),
    ),
    max_size=60,
    unique_by=lambda e: e.account,
)


@given(entries, st.sampled_from(sorted(PROFILES)))
def test_rank_order_is_a_permutation_with_monotone_lights(rows, venue):
    profile = PROFILES[venue]
    ranked = rank_queue(rows, profile)
    assert sorted(e.account for e in ranked) == sorted(e.account for e in rows)
    assert [e.rank for e in ranked] == list(range(len(rows)))
    assert all(a.score >= b.score for a, b in itertools.pairwise(ranked))
    assert all(a.light >= b.light for a, b in itertools.pairwise(ranked))
    assert all(1 <= e.light <= 5 for e in ranked)


@given(entries, st.integers(1, 10**10))
def test_plan_closes_min_of_remaining_and_available(rows, size):
    profile = PROFILES["bybit"]
    queue = rank_queue(rows, profile)
    bankrupt = [BankruptPosition("zz-bankrupt", "X", "long", size, 10**10, 0)]
    plan = deleverage_plan(bankrupt, {"short": queue}, profile, 10**10)
    assert sum(s.qty for s in plan) == min(size, sum(e.qty for e in rows))
    by_account = {e.account: e.qty for e in rows}
    assert all(0 < s.qty <= by_account[s.account] for s in plan)
    order = [e.account for e in queue]
    assert [s.account for s in plan] == order[: len(plan)]


def reference_plan(bankrupt, queue):
    """Each bankrupt position walks the queue from the top, skipping what is used up."""
    used: dict[str, int] = {}
    out = []
    for position in bankrupt:
        remaining = position.qty
        for entry in queue:
            available = entry.qty - used.get(entry.account, 0)
            if remaining <= 0:
                break
            if available <= 0:
                continue
            take = min(remaining, available)
            used[entry.account] = used.get(entry.account, 0) + take
            remaining -= take
            out.append((entry.account, take, position.account))
    return out


@given(entries, st.lists(st.integers(1, 10**9), min_size=1, max_size=8))
def test_plan_matches_the_reference_walk(rows, sizes):
    profile = PROFILES["bitmex"]
    queue = rank_queue(rows, profile)
    bankrupt = [BankruptPosition(f"zz{i}", "X", "long", q, 10**10, 0) for i, q in enumerate(sizes)]
    plan = deleverage_plan(bankrupt, {"short": queue}, profile, 10**10)
    assert [(s.account, s.qty, s.against) for s in plan] == reference_plan(bankrupt, queue)
