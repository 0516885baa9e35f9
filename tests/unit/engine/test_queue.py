"""The vectorised queue against the one-position-at-a-time ranking (adl.rank_queue)."""

from hypothesis import given
from hypothesis import strategies as st

from streams.engine.adl import UNDERWATER_SCORE, QueueEntry, rank_queue
from streams.engine.fixed import SCALE
from streams.engine.profiles import PROFILES, RankInput
from streams.engine.queue import QueueTable
from streams.engine.risk import Health, PositionRisk

MARK = 100 * SCALE


def position(qty: int, entry: int, backing: int, isolated: bool) -> PositionRisk:
    return PositionRisk(
        symbol="X",
        qty=qty,
        entry_price=entry,
        mark_price=MARK,
        unrealized_pnl=0,
        notional=0,
        maintenance_margin=0,
        backing_equity=backing,
        liquidation_price=None,
        bankruptcy_price=None,
        warning_price=None,
        isolated=isolated,
        health=Health.HEALTHY,
    )


rows = st.dictionaries(
    st.text("abcdefghij", min_size=1, max_size=3),
    st.tuples(
        st.integers(-(10**10), 10**10).filter(bool),
        st.integers(50 * SCALE, 150 * SCALE),
        st.integers(-(10**11), 10**12),
        st.booleans(),
    ),
    max_size=40,
)


@given(rows, st.sampled_from(sorted(PROFILES)), st.integers(60 * SCALE, 140 * SCALE), st.data())
def test_vectorised_ranking_matches_the_reference(positions, venue, mark, data):
    profile = PROFILES[venue]
    table = QueueTable()
    for acct, (qty, entry, backing, iso) in positions.items():
        table.put(acct, position(qty, entry, backing, iso), backing)
    removed = data.draw(st.sets(st.sampled_from(sorted(positions)))) if positions else set()
    for acct in removed:
        table.remove(acct)
    table.rank(mark, profile)
    for side, sign in (("long", 1), ("short", -1)):
        entries = []
        for acct, (qty, entry, backing, iso) in positions.items():
            if acct in removed or (qty > 0) != (sign > 0):
                continue
            move = qty / SCALE * (mark / SCALE - MARK / SCALE)
            row = RankInput(qty / SCALE, entry / SCALE, mark / SCALE, backing / SCALE + move,
                            backing / SCALE + move, iso)  # fmt: skip
            score = float(profile.rank_score(row))
            if backing / SCALE + move <= 0:  # its own equity is gone: last, never chosen
                score = UNDERWATER_SCORE
            entries.append(QueueEntry(acct, abs(qty), score))
        expected = rank_queue(entries, profile)
        got = list(table.ranked(side))
        assert [(e.account, e.light) for e in got] == [(e.account, e.light) for e in expected]


def test_lights_change_alerts():
    table = QueueTable()
    profile = PROFILES["bitmex"]
    # two longs at 100: a (backing 10, lev 10), b (backing 50, lev 2); mark 110 -> a ranks first
    table.put("a", position(SCALE, 100 * SCALE, 10 * SCALE, True), 10 * SCALE)
    table.put("b", position(SCALE, 100 * SCALE, 50 * SCALE, True), 50 * SCALE)
    first = table.rank(110 * SCALE, profile)
    assert [(c.account, c.light, c.previous) for c in first] == [("a", 5, None)]  # b enters at 3
    assert table.view("b")[1] == 3
    # ranking again at the same mark changes nothing
    assert table.rank(110 * SCALE, profile) == []
    table.remove("a")
    changes = table.rank(110 * SCALE, profile)
    assert [(c.account, c.light, c.previous) for c in changes] == [("b", 5, 3)]
