"""The vectorised queue against the one-position-at-a-time ranking (adl.rank_queue)."""

import copy
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.adl import UNDERWATER_SCORE, QueueEntry, rank_queue
from streams.engine.fixed import SCALE
from streams.engine.marks import NO_MARK
from streams.engine.profiles import PROFILES, RankInput, queue_reaches
from streams.engine.queue import (
    WIDE_AFTER,
    OtherPosition,
    QueueTable,
    SharedPositions,
    _largest,
)
from streams.engine.risk import Health, PositionRisk
from streams.engine.second_opinion import TOP_ACCOUNTS
from streams.engine.tier_columns import TierColumns
from tests.helpers import bundled_instruments

MARK = 100 * SCALE
BUNDLED = bundled_instruments()
INSTRUMENT = BUNDLED["BTCUSDT"]
# symbol indexes 0, 1, 2: BTC, ETH, SOL (Binance's score reads the maintenance from these)
TIERS = TierColumns([BUNDLED[s] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")])
AT = {"symbol": "X", "ts_ms": 0}  # the alerts' symbol and time
RANK = {**AT, "tiers": TIERS, "symbol_index": 0}  # a ranking's: the table's symbol is BTC


def maintenance_at(qty: int, mark: int) -> float:
    """BTCUSDT's maintenance of ``qty`` at ``mark`` (quote) by its published brackets:
    |q| x mark x mmr - maintenance amount, the bracket holding the notional."""
    value = abs(qty) / SCALE * (mark / SCALE)
    tier = INSTRUMENT.tier_for(round(value * SCALE))
    return max(0.0, value * tier.mmr / SCALE - tier.maintenance_amount / SCALE)


def position(qty: int, entry: int, backing: int, isolated: bool) -> PositionRisk:
    """Evaluated at ``MARK`` (BTCUSDT's maintenance is on the mark: a ranking computes it)."""
    return PositionRisk(
        symbol="X",
        qty=qty,
        entry_price=entry,
        mark_price=MARK,
        unrealized_pnl=qty * (MARK - entry) // SCALE,
        notional=0,
        maintenance_margin=0,
        backing_equity=backing,
        bankruptcy_price=None,
        isolated=isolated,
        health=Health.HEALTHY,
        instrument=INSTRUMENT,  # the queue reads none of the threshold prices
        other_maintenance=0,
        warning_ratio=0,
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
    table.rank(mark, profile, **RANK)
    for side, sign in (("long", 1), ("short", -1)):
        entries = []
        for acct, (qty, entry, backing, iso) in positions.items():
            if acct in removed or (qty > 0) != (sign > 0):
                continue
            move = qty / SCALE * (mark / SCALE - MARK / SCALE)
            evaluated = position(qty, entry, backing, iso)  # the wallet does not move
            row = RankInput(qty / SCALE, entry / SCALE, mark / SCALE, backing / SCALE + move,
                            backing / SCALE + move, iso,
                            (backing - evaluated.unrealized_pnl) / SCALE,
                            maintenance_at(qty, mark))  # fmt: skip
            score = float(profile.rank_score(row))
            if backing / SCALE + move <= 0:  # its own equity is gone: last, never chosen
                score = UNDERWATER_SCORE
            entries.append(QueueEntry(acct, abs(qty), score))
        expected = rank_queue(entries, profile)
        got = list(table.ranked(side))
        assert [(e.account, e.light) for e in got] == [(e.account, e.light) for e in expected]


def test_lights_change_alerts():
    table = QueueTable()
    profile = PROFILES["bybit"]  # the BitMEX ranking, lights by quintile of positions
    # two longs at 100: a (backing 10, lev 10), b (backing 50, lev 2); mark 110 -> a ranks first
    table.put("a", position(SCALE, 100 * SCALE, 10 * SCALE, True), 10 * SCALE)
    table.put("b", position(SCALE, 100 * SCALE, 50 * SCALE, True), 50 * SCALE)
    first = table.rank(110 * SCALE, profile, **RANK)
    # b enters at 3
    assert [(c.account, c.quantile, c.previous_quantile) for c in first] == [("a", 5, None)]
    assert table.view("b")[1] == 3
    # ranking again at the same mark changes nothing
    assert table.rank(110 * SCALE, profile, **RANK) == []
    table.remove("a")
    changes = table.rank(110 * SCALE, profile, **RANK)
    assert [(c.account, c.quantile, c.previous_quantile) for c in changes] == [("b", 5, 3)]


def test_a_position_hovering_on_a_light_boundary_is_alerted_once_it_settles():
    # 200 longs at entry 90, mark 100 (all in profit); backing i+1 -> leverage 100/(i+1),
    # so the queue is ordered by backing, ascending. With "h" added there are 201: light
    # = 5 - (5 * place) // 201, so places 0-40 are light 5 and 41-80 light 4; the debounce
    # margin is int(1% of 201) = 2 places.
    table = QueueTable()
    profile = PROFILES["bybit"]  # the BitMEX ranking, lights by quintile of positions
    for i in range(200):
        table.put(f"p{i:03d}", position(SCALE, 90 * SCALE, (i + 1) * SCALE, True), (i + 1) * SCALE)
    table.rank(MARK, profile, **RANK)

    def move_h(backing: float) -> list:
        raw = int(backing * SCALE)
        table.put("h", position(SCALE, 90 * SCALE, raw, True), raw)
        alerts = table.rank(MARK, profile, **RANK)
        return [(c.quantile, c.previous_quantile) for c in alerts if c.account == "h"]

    # backing 40.5 -> place 40 (light 5); 41.5 -> place 41 (light 4): on the boundary
    lights, alerts = [], []
    for backing in (40.5, 41.5, 40.5, 41.5):
        alerts += move_h(backing)
        lights.append(table.view("h")[1])
    assert lights == [5, 4, 5, 4]  # the lights are exact
    assert alerts == []  # but never settled: no alert
    assert move_h(60) == []  # settles at light 4: a new position below the top is not news
    for backing in (40.5, 41.5, 40.5):
        assert move_h(backing) == []  # hovering again: still nothing
    assert move_h(10) == [(5, 4)]  # settled at the top: one alert


def test_the_queue_stays_readable_between_rankings_when_positions_open_and_close():
    # the read API and the metrics show the last ranking; before, any opened or closed
    # position emptied it until the next re-rank
    table = QueueTable()
    profile = PROFILES["bybit"]  # the BitMEX ranking, lights by quintile of positions
    table.put("a", position(SCALE, 100 * SCALE, 10 * SCALE, True), 10 * SCALE)
    table.put("b", position(SCALE, 100 * SCALE, 50 * SCALE, True), 50 * SCALE)
    table.rank(110 * SCALE, profile, **RANK)
    assert not table.structure_changed
    table.remove("a")
    table.put("c", position(SCALE, 100 * SCALE, 20 * SCALE, True), 20 * SCALE)
    assert table.structure_changed
    assert [e.account for e in table.ranked("long")] == ["a", "b"]  # as ranked then
    assert table.side_totals("long")[2] == tuple(e.score for e in table.ranked("long"))
    table.rank(110 * SCALE, profile, **RANK)
    assert [e.account for e in table.ranked("long")] == ["c", "b"]  # c: lower backing
    assert not table.structure_changed


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.sampled_from("abcdefgh"),
            st.integers(-3, 3).filter(bool),
            st.integers(1, 60),
        ),
        st.tuples(st.just("remove"), st.sampled_from("abcdefgh"), st.just(0), st.just(0)),
        st.tuples(st.just("rank"), st.just(""), st.just(0), st.integers(90, 110)),
        # the desk answers: every ranking waiting so far is lit, in order
        st.tuples(st.just("answer"), st.just(""), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@pytest.mark.parametrize("venue", ["bybit", "bitmex"])  # lights by positions, by quantity
@given(ops=operations)
def test_lights_given_later_announce_what_lights_given_at_once_announce(venue, ops):
    """The partitioned path ranks now and lights later (``light_at``, when every
    partition's places are known), after more positions opened, closed and flipped,
    the desk answering at any time: the alerts must be those of lighting at each
    ranking (the single-process path)."""
    profile = PROFILES[venue]
    at_once, later = QueueTable(), QueueTable()
    want, waiting, got = [], [], []

    def answer() -> None:
        for sides in waiting:
            changes = []
            for ranking in sides:
                if ranking is not None:
                    reaches, total = queue_reaches(ranking.sizes, profile.light_by_quantity)
                    changes += later.light_at(ranking, reaches, total, profile, **AT)[0]
            got.append(sorted(changes, key=lambda c: c.account))
        waiting.clear()

    for op, acct, qty, value in ops:
        for table in (at_once, later):
            if op == "put":
                table.put(acct, position(qty * SCALE, 100 * SCALE, value * SCALE, False), 0)
            elif op == "remove":
                table.remove(acct)
        if op == "rank":
            want.append(at_once.rank(value * SCALE, profile, **RANK))
            later.rank(value * SCALE, profile, light=False, **RANK)
            waiting.append([later.ranking(side) for side in ("long", "short")])
        elif op == "answer":
            answer()
    answer()  # the rest, after all the changes
    assert got == want


def test_announced_lights_survive_a_restore():
    """A restarted partition rebuilds its tables from the changelog; the lights it had
    announced come back with the rows (``restore_announced``), so the next lighting
    announces only what changed since, with the right previous light."""
    profile = PROFILES["bybit"]  # the BitMEX ranking, lights by quintile of positions
    backings = {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50}  # a ranks first, e last

    def table_with(backing: dict[str, int]) -> QueueTable:
        table = QueueTable()
        for acct, value in backing.items():
            table.put(acct, position(SCALE, 90 * SCALE, value * SCALE, True), value * SCALE)
        return table

    def light(table: QueueTable) -> list[tuple[str, int, int | None]]:
        table.rank(MARK, profile, light=False, **RANK)
        ranking = table.ranking("long")
        count = len(ranking.accounts)
        changes, _ = table.light_at(ranking, np.arange(1, count + 1), count, profile, **AT)
        return [(c.account, c.quantile, c.previous_quantile) for c in changes]

    before = table_with(backings)
    assert light(before) == [("a", 5, None)]  # five places: lights 5, 4, 3, 2, 1
    announced = {acct: before.announced_light(acct) for acct in backings}
    assert announced == {"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}
    moved = {**backings, "e": 5}  # e now ranks first: everyone else one light down
    restored, fresh = table_with(moved), table_with(moved)
    for acct, value in announced.items():
        restored.restore_announced(acct, value)
    assert light(restored) == [
        ("a", 4, 5), ("b", 3, 4), ("c", 2, 3), ("d", 1, 2), ("e", 5, 1)
    ]  # fmt: skip
    assert light(fresh) == [("e", 5, None)]  # without the rows: the moves are lost


def test_a_position_opened_in_a_reused_row_has_no_light_announced_yet():
    """Removing a position moves the table's last row into its place; the next position
    opened takes the last row again, where the moved one's columns still lie. Its light
    announced so far must be none, not what the moved position was told."""
    profile = PROFILES["bybit"]  # the BitMEX ranking, lights by quintile of positions
    table = QueueTable()

    def put(acct: str, backing: int) -> None:
        table.put(acct, position(SCALE, 90 * SCALE, backing * SCALE, True), backing * SCALE)

    def light() -> list[tuple[str, int, int | None]]:
        table.rank(MARK, profile, light=False, **RANK)
        ranking = table.ranking("long")
        count = len(ranking.accounts)
        changes, _ = table.light_at(ranking, np.arange(1, count + 1), count, profile, **AT)
        return [(c.account, c.quantile, c.previous_quantile) for c in changes]

    for acct, backing in {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50}.items():
        put(acct, backing)  # a ranks first (least backing)
    assert light() == [("a", 5, None)]  # five places: lights 5, 4, 3, 2, 1 for a..e
    table.remove("a")  # e (light 1) moves into a's row; its old row is the next new one
    put("f", 5)  # ranks first: f, b, c, d, e get 5, 4, 3, 2, 1, as b..e already have
    assert light() == [("f", 5, None)]  # f was never told a light: none before


def test_a_ranking_kept_across_a_restore_lights_as_without_it():
    """The partitioned path lights a ranking after the desk answers, maybe after a
    restart. A restored table numbers its positions' openings anew; with the numbers
    and announced lights of before (``restore_opening``, also for a position closed
    since the ranking), the kept ranking lights exactly as it would have: e moved to
    the top, everyone else one light down, c among them though it closed meanwhile."""
    profile = PROFILES["bybit"]  # lights by quintile of positions, as above
    backings = {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50}  # a ranks first

    def put(table: QueueTable, acct: str, value: int) -> None:
        table.put(acct, position(SCALE, 90 * SCALE, value * SCALE, True), value * SCALE)

    def light(table: QueueTable, ranking: Any) -> list[tuple[str, int, int | None]]:
        count = len(ranking.accounts)
        changes, _ = table.light_at(ranking, np.arange(1, count + 1), count, profile, **AT)
        return [(c.account, c.quantile, c.previous_quantile) for c in changes]

    live = QueueTable()
    for acct, value in backings.items():
        put(live, acct, value)
    live.rank(MARK, profile, light=False, **RANK)
    assert light(live, live.ranking("long")) == [("a", 5, None)]  # lights 5, 4, 3, 2, 1
    put(live, "e", 5)  # e now ranks first
    live.rank(MARK, profile, light=False, **RANK)
    kept = copy.deepcopy(live.ranking("long"))  # summarised, the desk has not answered
    live.remove("c")  # c closes before the answer
    saved = {a: (live.opening(a), live.announced.get(a)) for a in backings}
    want = [("a", 4, 5), ("b", 3, 4), ("c", 2, 3), ("d", 1, 2), ("e", 5, 1)]
    assert light(live, copy.deepcopy(kept)) == want

    def restored(with_openings: bool) -> QueueTable:
        table = QueueTable()
        for acct in ("e", "d", "b", "a"):  # another order: other opening numbers
            put(table, acct, {**backings, "e": 5}[acct])
        for acct, (opened, announced) in saved.items():
            if with_openings:
                table.restore_opening(acct, opened, announced)
            elif announced is not None:  # a bare light, for the position there is now
                table.restore_announced(acct, announced[1])
        return table

    c_opened = int(kept.opened[kept.accounts.tolist().index("c")])
    assert saved["c"] == (0, (c_opened, 3))  # closed; its light of before kept
    assert light(restored(True), copy.deepcopy(kept)) == want
    assert light(restored(False), copy.deepcopy(kept)) != want  # the lights of before lost
    again = restored(True)
    put(again, "f", 60)  # a position opened after the restart: a number nobody had
    assert again.opening("f") > max(kept.opened.max(), *(o for o, _ in saved.values()))


def test_a_ranking_naming_one_opening_twice_lights_each_position_by_its_account():
    """A row restored before openings were kept keeps a fresh number, which a later
    ``restore_opening`` can give another row too: a ranking then names one opening
    twice. Each position must still be found by its account, as in a table whose
    numbers differ: the same alerts, and each row's light (``view``) set."""
    profile = PROFILES["bybit"]  # lights by quintile of positions: 5, 4, 3, 2, 1
    backings = {"a": 10, "b": 20, "c": 30, "d": 40, "e": 50}  # a ranks first

    def put(table: QueueTable, acct: str, value: int) -> None:
        table.put(acct, position(SCALE, 90 * SCALE, value * SCALE, True), value * SCALE)

    def lit(table: QueueTable) -> tuple[list[tuple[str, int, int | None]], list[Any]]:
        table.rank(MARK, profile, light=False, **RANK)
        ranking = table.ranking("long")
        count = len(ranking.accounts)
        changes, _ = table.light_at(ranking, np.arange(1, count + 1), count, profile, **AT)
        alerts = [(c.account, c.quantile, c.previous_quantile) for c in changes]
        return alerts, [table.view(a)[1] for a in backings]  # each row's light

    shared, distinct = QueueTable(), QueueTable()
    for table in (shared, distinct):
        for acct, value in backings.items():
            put(table, acct, value)
    shared.restore_opening("b", shared.opening("a"), None)  # a and b: one number
    assert shared.opening("a") == shared.opening("b")
    first = ([("a", 5, None)], [5, 4, 3, 2, 1])
    assert lit(shared) == lit(distinct) == first
    for table in (shared, distinct):
        put(table, "e", 5)  # e moves to the top: everyone else one light down
    second = ([("a", 4, 5), ("b", 3, 4), ("c", 2, 3), ("d", 1, 2), ("e", 5, 1)], [4, 3, 2, 1, 5])
    assert lit(shared) == lit(distinct) == second


others_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),  # symbol index
        st.integers(-(10**10), 10**10).filter(bool),  # qty, raw
        st.integers(50 * SCALE, 150 * SCALE),  # mark at the evaluation, raw
        st.booleans(),  # cross
    ),
    max_size=4,
)


@pytest.mark.parametrize("wide_after", [WIDE_AFTER, 2, 0])
@given(
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=2),
        st.tuples(st.booleans(), others_strategy),
        max_size=30,
    ),
    st.lists(st.one_of(st.none(), st.integers(50 * SCALE, 150 * SCALE)), min_size=4, max_size=4),
)
def test_other_symbols_moves_equal_a_loop_over_the_accounts_positions(
    wide_after, accounts, marks_now
):
    # reference: the loop the engine ran per account before the columns, in the account's
    # order: move = qty * ((mark now - mark then) / SCALE), summed from 0.0; a symbol with
    # no mark yet did not move; the cross sum only for a cross position here. Accounts with
    # more others than ``wide_after`` are kept as lists (0: every one), the same floats.
    table = QueueTable(wide_after)
    for acct, (isolated_here, others) in accounts.items():
        table.put(
            acct,
            position(SCALE, MARK, 10 * SCALE, isolated_here),
            10 * SCALE,
            [OtherPosition(s, q / SCALE, m, c) for s, q, m, c in others],
        )
    marks = np.array([NO_MARK if m is None else m for m in marks_now], dtype=np.int64)
    rows, cross, every, _ = table.other_moves(marks)
    got = {table.accounts[r]: (c, e) for r, c, e in zip(rows, cross, every, strict=True)}
    want = {}
    for acct, (_isolated_here, others) in accounts.items():
        if not others:
            continue
        cross_sum = every_sum = 0.0
        for s, q, m, c in others:
            move = (q / SCALE) * ((0 if marks_now[s] is None else marks_now[s] - m) / SCALE)
            every_sum += move
            if c:
                cross_sum += move
        want[acct] = (cross_sum, every_sum)  # isolated here: applied as 0.0 by rank()
    assert got == want


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.sampled_from("abcdef"), others_strategy),
            st.tuples(st.just("remove"), st.sampled_from("abcdef"), st.just([])),
        ),
        max_size=40,
    ),
    st.lists(st.integers(50 * SCALE, 150 * SCALE), min_size=4, max_size=4),
)
def test_wide_rows_follow_their_account_through_puts_and_removes(ops, marks_now):
    """Rows move when another is removed (swap-remove): an account's list of others must
    move with it. Tables keeping every account in columns, every one as a list, or only
    those with more than one other, answer alike, and as the latest put of each says."""
    tables = [QueueTable(), QueueTable(0), QueueTable(1)]
    latest: dict[str, list[tuple[int, int, int, bool]]] = {}
    for op, acct, others in ops:
        for table in tables:
            if op == "put":
                table.put(
                    acct,
                    position(SCALE, MARK, 10 * SCALE, False),
                    10 * SCALE,
                    [OtherPosition(s, q / SCALE, m, c) for s, q, m, c in others],
                )
            else:
                table.remove(acct)
        if op == "put":
            latest[acct] = others
        else:
            latest.pop(acct, None)
    marks = np.array(marks_now, dtype=np.int64)
    answers = []
    for table in tables:
        rows, cross, every, _ = table.other_moves(marks)
        answers.append(
            {table.accounts[r]: (c, e) for r, c, e in zip(rows, cross, every, strict=True)}
        )
    want = {}
    for acct, others in latest.items():
        if others:
            moves = [(q / SCALE) * ((marks_now[s] - m) / SCALE) for s, q, m, _ in others]
            cross_sum = every_sum = 0.0
            for (_, _, _, c), move in zip(others, moves, strict=True):
                every_sum += move
                if c:
                    cross_sum += move
            want[acct] = (cross_sum, every_sum)
    assert answers == [want, want, want]


def test_a_shared_row_reads_its_accounts_latest_evaluation_without_a_put():
    """A wide account's row holds its account's ``SharedPositions``: an evaluation that
    updates that value in place moves the row's ranking with no put on this symbol.
    Hand computation at the ranking (this symbol's mark 103; others' marks 55, 190): the
    second evaluation's backing 12 + 1 x (103 - 101) + 2 x (55 - 51) - 1 x (190 - 199)
    = 31, as a row put directly with backing and equity 31 at mark 103. Its maintenance
    at those marks, by each symbol's first bracket (BTC 0.4%, ETH 0.5%, SOL 1%): 103 x
    0.004 + 2 x 55 x 0.005 + 190 x 0.01 = 2.862, whatever the evaluations held."""
    profile = PROFILES["binance"]
    marks = np.array([103 * SCALE, 55 * SCALE, 190 * SCALE], dtype=np.int64)
    first = position(SCALE, 100 * SCALE, 10 * SCALE, False)
    shared = SharedPositions(
        [OtherPosition(0, 1.0, MARK, True), OtherPosition(1, 2.0, 50 * SCALE, True),
         OtherPosition(2, -1.0, 200 * SCALE, True)],
        {0: 0, 1: 1, 2: 2}, [10.0, 10.0, 10.0], 10.0, [9.0, 9.0, 9.0], [0.0, 0.0, 0.0],
    )  # fmt: skip
    table = QueueTable()
    table.put_shared("w", first, shared, 0)
    # the second evaluation, as the engine writes it: marks 101, 51, 199; equity 12
    shared.positions = [
        OtherPosition(0, 1.0, 101 * SCALE, True),
        OtherPosition(1, 2.0, 51 * SCALE, True),
        OtherPosition(2, -1.0, 199 * SCALE, True),
    ]
    shared.backing, shared.equity = [12.0, 12.0, 12.0], 12.0
    table.rank(103 * SCALE, profile, marks_by_index=marks, **RANK)
    # Binance's: (31 - 9) / max(1, 9) x 2.862 / 31
    assert table.ranking("long").scores[0] == pytest.approx(22 / 9 * 2.862 / 31, rel=1e-12)
    # a row put directly at 103, its others as evaluated there: the same score
    direct = QueueTable()
    at_103 = first._replace(mark_price=103 * SCALE, backing_equity=31 * SCALE)
    now = [OtherPosition(1, 2.0, 55 * SCALE, True), OtherPosition(2, -1.0, 190 * SCALE, True)]
    direct.put("w", at_103, 31 * SCALE, now, wallet=9 * SCALE)
    direct.rank(103 * SCALE, profile, marks_by_index=marks, **RANK)
    assert table.ranking("long").scores.tolist() == pytest.approx(
        direct.ranking("long").scores.tolist(), rel=1e-12
    )


reorders = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.sampled_from("abcdefghijkl"),
            st.integers(-4, 4).filter(bool),  # few sizes and equity values: ties happen
            st.integers(1, 8),
        ),
        st.tuples(st.just("remove"), st.sampled_from("abcdefghijkl"), st.just(0), st.just(0)),
        st.tuples(st.just("rank"), st.just(""), st.just(0), st.integers(80, 120)),
    ),
    max_size=80,
)


@given(reorders, st.sampled_from(sorted(PROFILES)))
def test_a_ranking_started_from_the_last_order_equals_a_fresh_one(ops, venue):
    """Each ranking sorts starting from the last one's order, its rows followed through
    the swap-removes since: after any opens, closes, flips and moves, the queue must be
    the one a table that never ranked before gives for the same positions."""
    profile = PROFILES[venue]
    table, now = QueueTable(), {}
    for op, acct, qty, value in ops:
        if op == "put":
            table.put(acct, position(qty * SCALE, 100 * SCALE, value * SCALE, False), 0)
            now[acct] = (qty, value)
        elif op == "remove":
            table.remove(acct)
            now.pop(acct, None)
        else:
            fresh = QueueTable()
            for name, (size, backing) in sorted(now.items()):
                fresh.put(name, position(size * SCALE, 100 * SCALE, backing * SCALE, False), 0)
            table.rank(value * SCALE, profile, **RANK)
            fresh.rank(value * SCALE, profile, **RANK)
            for side in ("long", "short"):
                assert list(table.ranked(side)) == list(fresh.ranked(side))


changes = st.lists(
    st.tuples(
        st.sampled_from(["put", "remove", "remove"]),
        st.sampled_from("abcdefghijkl"),
        st.integers(-4, 4).filter(bool),
        st.integers(1, 8),
    ),
    max_size=30,
)


@given(changes, st.integers(80, 120), changes)
def test_the_last_order_follows_its_accounts_through_swap_removes(before, mark, since):
    """What the next sort starts from: the last ranking's accounts in its order, less
    the ones closed since, each at the row it has now (a removal moves the table's last
    row into the freed one)."""
    table, closed = QueueTable(), set()
    for ops in (before, since):
        for op, acct, qty, value in ops:
            if op == "put":
                table.put(acct, position(qty * SCALE, 100 * SCALE, value * SCALE, False), 0)
            elif acct in table:
                table.remove(acct)
                closed.add(acct)  # opened again later: a new row, not in the last order
        if ops is before:
            closed.clear()
            table.rank(mark * SCALE, PROFILES["bybit"], **RANK)
            ranked = {s: [e.account for e in table.ranked(s)] for s in ("long", "short")}
    names = table.accounts  # by row
    for side, order in table._last_orders().items():
        assert [names[row] for row in order] == [a for a in ranked[side] if a not in closed]


@given(
    st.lists(st.integers(0, 10**18), min_size=1, max_size=4),
    st.lists(st.integers(0, 3), max_size=3000),
    st.booleans(),
)
def test_the_largest_are_the_top_of_a_full_sort(distinct, picks, as_floats):
    """A side's largest sizes or profits, against Python's ``sorted``: arrays of a few
    values in long runs (the queue's sizes after fills of one lot), where the cut falls
    inside a run of equal values, and short ones."""
    values = [distinct[k % len(distinct)] for k in picks]
    column = np.array(values, dtype=np.float64 if as_floats else np.int64)
    expected = sorted(map(int, column.tolist()), reverse=True)[:TOP_ACCOUNTS]
    assert _largest(column) == tuple(expected)


def test_the_largest_of_a_sorted_column_by_hand():
    # 0..999 ascending: the ten largest are 999 down to 990, wherever the chunks cut
    assert _largest(np.arange(1000, dtype=np.int64)) == tuple(range(999, 989, -1))
    assert _largest(np.arange(1000, dtype=np.int64)[::-1].copy()) == tuple(range(999, 989, -1))


def test_a_table_pickled_between_puts_goes_on_as_the_one_never_pickled():
    # a snapshot pickles the tables; rows are written through views of the columns that
    # cannot be pickled and must be made again over the unpickled columns: writes after a
    # restore that went to the columns of before would leave the restored table's rows
    # as they were. The puts grow it past its first 64 rows and its other columns wider.
    profile = PROFILES["bybit"]
    others = [OtherPosition(1, 2.0, 50 * SCALE, True), OtherPosition(2, -1.0, 20 * SCALE, True)]

    def put(table: QueueTable, k: int, backing: int, count: int) -> None:
        table.put(f"a{k}", position(SCALE, 90 * SCALE, backing * SCALE, False), 0, others[:count])

    live = QueueTable()
    for k in range(40):
        put(live, k, 10 + k, 1)
    restored = pickle.loads(pickle.dumps(live))  # noqa: S301 (our own bytes)
    for table in (live, restored):
        for k in range(0, 40, 3):  # first into the columns as unpickled
            put(table, k, 1000 + k, 0)
        table.remove("a5")  # a swap-remove: the last row moved into row 5
        for k in range(40, 100):  # 99 rows: grown past 64
            put(table, k, 200 - k, 2)  # a place for a second other position: grown wider
        table.rank(MARK, profile, **RANK)
    ranked = [(e.account, e.score, e.light) for e in restored.ranked("long")]
    assert ranked == [(e.account, e.score, e.light) for e in live.ranked("long")]
    assert len(ranked) == 99
    # by hand: every position is 1 BTC bought at 90, +10 at MARK, and no other mark
    # moved, so the smaller the backing the higher the score: first a1 (backing 11: a0
    # and a3 were put again at 1000 and 1003, a2 is 12), last a39 (1039)
    assert ranked[0][0] == "a1"
    assert ranked[-1][0] == "a39"
