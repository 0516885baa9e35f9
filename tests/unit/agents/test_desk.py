"""Stage B without Faust: three partitions' summaries merged by the fund desk give the
fund's loss, ladder and ADL stages that one engine over every account gives."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from streams import wire
from streams.agents.codec import decode_account, encode_account, encode_desk, restore_desk
from streams.agents.desk import FundDesk
from streams.agents.ranking_rows import decode_rankings, write_changes
from streams.agents.shard import Shard
from streams.agents.warm import WarmCopy
from streams.engine.drawdown import DrawdownRule
from streams.engine.engine import Engine
from streams.engine.events import Depth, InsuranceFund, Mark
from streams.engine.fixed import SCALE, MoneyRaw
from streams.engine.instruments import Instrument
from streams.engine.quantiles import RankCuts, cuts_from_wire, cuts_to_wire
from streams.engine.second_opinion import SideWinners
from streams.engine.signals import AdlTriggered, FundProjection
from streams.engine.summary import from_wire
from streams.pipeline.sequencer import canonical_key
from streams.replay.runner import replay
from tests.helpers import (
    assert_rank_alerts_follow,
    assert_stages_follow,
    bundled_instruments,
    rank_alerts_matched,
    raw,
    schema_validator,
)
from tests.unit.agents.test_shard import (
    BUNDLED,
    PARTITIONS,
    bundled_events,
    canonical,
    feeds,
    partition_of,
    run,
)
from tests.unit.agents.test_warm import changelog_rows

SYMBOLS = sorted(bundled_instruments())
INTERVAL_MS = 100  # the cascade's marks come every 100 ms: a summary at every mark group


StageB = tuple[
    FundDesk[None], list[Any], list[dict[str, Any]], list[dict[str, Any]], list[RankCuts]
]


@pytest.fixture(scope="module")
def stage_b() -> StageB:
    return run_stage_b(bundled_instruments())


def run_stage_b(instruments: dict[str, Instrument], events: list[Any] | None = None) -> StageB:
    """Shards fed their accounts and every mark; the desk fed their summaries (in the
    order the partitions finished, not interleaved) and the fund and books; the desk's
    light boundaries fed back to the shards (which keep every summarised ranking).
    ``events``: the bundled cascade's unless given (``bundled_events``)."""
    events = bundled_events() if events is None else events
    summaries: list[dict[str, Any]] = []
    shards = []
    for p in range(PARTITIONS):
        shard = summarising(p, instruments)
        shards.append(shard)
        for feed in feeds(p, events).values():
            for event, obj, source in feed:
                shard.push(event, obj, source, None)
        outputs = [o for item in shard.release([], flush=True) for o in shard.apply(item).outputs]
        outputs += shard.summaries()
        summaries += [o.payload for o in outputs if o.stream == "risk_summaries"]
    desk = fed_desk(summaries, events, instruments)
    applied = []
    alerts: list[dict[str, Any]] = []
    cuts: list[RankCuts] = []
    for item in desk.release([], flush=True):
        result = desk.apply(item)
        signals = result.signals
        alerts += lit(shards, result.cuts)
        cuts += result.cuts
        readings = None
        if item.event is None:  # the fund as the desk sees it at this mark group
            fund = item.summaries[0].fund
            view = desk.view(fund)
            readings = (
                desk.watch.loss_now(view, fund)[0],
                ladders(desk.watch.projection(view, fund, item.key[0])),
                {sym: view.winners(sym) for sym in desk.watch.fund_symbols[fund]},
            )
        applied.append((item, signals, readings))
    return desk, applied, summaries, alerts, cuts


def fed_desk(
    summaries: list[dict[str, Any]],
    events: list[Any],
    instruments: dict[str, Instrument] | None = None,
) -> FundDesk[None]:
    """A desk given every partition's summaries (as the wire carries them), the fund
    snapshots and the books."""
    desk: FundDesk[None] = FundDesk(instruments or bundled_instruments(), PARTITIONS)
    for s in summaries:
        assert desk.push_summary(from_wire(orjson.loads(orjson.dumps(s))), None)
    for offset, (event, obj, topic) in enumerate(events):
        if isinstance(event, InsuranceFund | Depth):
            desk.push_event(event, obj, topic, offset, None)
    return desk


def lit(shards: list[Shard[None]], cuts: list[RankCuts]) -> list[dict[str, Any]]:
    """The shards lit by the desk's boundaries (through the wire): their rank alerts."""
    alerts = []
    for one in cuts:
        wired = cuts_from_wire(orjson.loads(orjson.dumps(cuts_to_wire(one))))
        alerts += [o.payload for shard in shards for o in shard.light(wired).outputs]
    return alerts


def ladders(projection: FundProjection) -> list[tuple[str, list[int]]]:
    return [(p.symbol, [point.projected_loss for point in p.ladder]) for p in projection.symbols]


def test_summaries_follow_their_schema(stage_b: Any) -> None:
    _, _, summaries, _, _ = stage_b
    validator = schema_validator("topic.risk_summaries")
    for s in summaries[:: max(1, len(summaries) // 50)]:
        validator.validate(s)


def test_merged_loss_and_ladder_equal_one_engine_at_every_summary(stage_b: Any) -> None:
    """Reference: one engine over every event in file (canonical) order, read after the
    last mark of each mark group — the point a summary describes."""
    _, applied, _, _, _ = stage_b
    engine = Engine(bundled_instruments())
    reference: dict[tuple[Any, ...], tuple[int, list[tuple[float, int]]]] = {}
    events = bundled_events()
    for i, (event, obj, _) in enumerate(events):
        engine.apply(event)
        following = events[i + 1][0].ts_ms if i + 1 < len(events) else None
        if isinstance(event, Mark) and following != event.ts_ms:
            fund = engine.instruments[event.symbol].fund
            loss, _ = engine.loss_now(fund)
            reference[canonical_key(obj)] = (loss, ladders(engine.projection(fund, event.ts_ms)))
    compared = 0
    for item, _, readings in applied:
        if readings is None:
            continue
        loss, got_ladders, _ = readings
        want_loss, want_ladders = reference[item.key[:3]]
        # each partition rounds each side's deficit up: a raw unit per side and symbol
        assert want_loss <= loss <= want_loss + PARTITIONS * 2 * 4
        for (sym, got), (want_sym, want) in zip(got_ladders, want_ladders, strict=True):
            assert sym == want_sym
            assert all(w <= g <= w + PARTITIONS * 2 * 8 for g, w in zip(got, want, strict=True)), (
                got,
                want,
                item.key,
            )
        compared += 1
    assert compared > 1_000


def test_merged_winners_equal_one_engine_at_every_summary(stage_b: Any) -> None:
    """A second opinion's inputs: each side's positive PnL and sizes merged from the
    partitions are one engine's (accounts are whole in a partition: exact)."""
    _, applied, _, _, _ = stage_b
    engine = Engine(bundled_instruments())
    reference: dict[tuple[Any, ...], dict[str, dict[str, SideWinners]]] = {}
    events = bundled_events()
    for i, (event, obj, _) in enumerate(events):
        engine.apply(event)
        following = events[i + 1][0].ts_ms if i + 1 < len(events) else None
        if isinstance(event, Mark) and following != event.ts_ms:
            reference[canonical_key(obj)] = {sym: engine.winners(sym) for sym in SYMBOLS}
    compared = 0
    for item, _, readings in applied:
        if readings is not None:
            assert readings[2] == reference[item.key[:3]], item.key
            compared += 1
    assert compared > 1_000
    last = [w for sides in readings[2].values() for w in sides.values()]
    assert any(w.profit > 0 and len(w.top_profits) == 10 for w in last)


def test_stages_follow_replay_within_one_interval(
    stage_b: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """See ``assert_stages_follow`` for what may differ, and why."""
    _, applied, _, _, _ = stage_b
    out = tmp_path_factory.mktemp("replay")
    replay(BUNDLED, bundled_instruments(), out, progress=False)
    want = [orjson.loads(x) for x in (out / "adl_triggers.jsonl").read_bytes().splitlines()]
    assert_stages_follow(want, triggers_of(applied), INTERVAL_MS)


def test_rank_alerts_follow_replay(stage_b: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each partition lit by the desk's boundaries gives replay's rank alerts (see
    ``assert_rank_alerts_follow`` for what may differ, and why)."""
    out = tmp_path_factory.mktemp("replay")
    replay(BUNDLED, bundled_instruments(), out, progress=False)
    want = [orjson.loads(x) for x in (out / "rank_alerts.jsonl").read_bytes().splitlines()]
    got = stage_b[3]
    assert all(o["quantile"] in range(1, 6) for o in got)
    validator = schema_validator("topic.rank_alerts")
    for payload in got[:: max(1, len(got) // 100)]:
        validator.validate(payload)
    assert_rank_alerts_follow(want, got)


def test_bitmex_lights_by_quantity_follow_replay(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The bundled cascade ranked by BitMEX's rules, whose lights go by the queue's
    cumulative quantity: the partitions lit by the desk's quantity boundaries give
    replay's rank alerts (the same tolerance as by positions)."""
    instruments = {
        sym: replace(inst, profile="bitmex") for sym, inst in bundled_instruments().items()
    }
    out = tmp_path_factory.mktemp("replay-bitmex")
    replay(BUNDLED, instruments, out, progress=False)
    want = [orjson.loads(x) for x in (out / "rank_alerts.jsonl").read_bytes().splitlines()]
    got = run_stage_b(instruments)[3]
    # Bybit ranks as BitMEX does, but lights by positions: the lights moved
    by_positions = tmp_path_factory.mktemp("replay-bybit")
    replay(BUNDLED, {s: replace(i, profile="bybit") for s, i in instruments.items()}, by_positions)
    bybit = [
        orjson.loads(x) for x in (by_positions / "rank_alerts.jsonl").read_bytes().splitlines()
    ]
    assert rank_alerts_matched(bybit, want) < len(want) / 2  # 867 of 6,655 when written
    assert all(o["venue_indicator"] == o["quantile"] for o in got)  # BitMEX shows 1..5 lit
    assert_rank_alerts_follow(want, got)


def triggers_of(applied: list[Any]) -> list[dict[str, Any]]:
    return [
        payload
        for _, signals, _ in applied
        for name, payload in map(wire.render, signals)
        if name == "adl_triggers"
    ]


def test_a_pool_drawdown_rule_on_the_desk_follows_replay(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The bundled cascade under Bybit's rules with its pool-drawdown trigger in force
    (minimum balance 1: the bundled pool holds 2,000, under Bybit's 10,000): the desk's
    stages follow replay's, and the rule moved them (22 triggered announcements, the
    first 25.7 s before the fund rule's first, when written)."""
    rule = DrawdownRule(min_balance=raw("1"))
    instruments = {
        s: replace(i, profile="bybit", drawdown_rule=rule) for s, i in bundled_instruments().items()
    }
    runs = {}
    for name, chosen in (("drawdown", rule), ("fund", None)):
        out = tmp_path_factory.mktemp(f"replay-{name}")
        replay(BUNDLED, {s: replace(i, drawdown_rule=chosen) for s, i in instruments.items()}, out)
        lines = (out / "adl_triggers.jsonl").read_bytes().splitlines()
        runs[name] = [orjson.loads(x) for x in lines]

    def first_triggered(triggers: list[dict[str, Any]]) -> int:
        return min(t["ts"] for t in triggers if t["stage"] == "triggered")

    assert first_triggered(runs["drawdown"]) < first_triggered(runs["fund"])
    # the desk judges at marks: the cascade's opening (accounts building positions
    # for a minute at the first marks) has none after its first, and replay's BTC
    # stages from fills there (the rule's budget is small: 0.3 x 2,000) the desk
    # cannot see; it is held to replay from its second mark on
    marks = sorted({e.ts_ms for e, _, _ in bundled_events() if isinstance(e, Mark)})
    judged = [t for t in runs["drawdown"] if t["ts"] >= marks[1]]
    stage_b = run_stage_b(instruments)
    assert_stages_follow(judged, triggers_of(stage_b[1]), INTERVAL_MS, marks=marks)
    # the desk's row keeps the pool's trailing maxima: a restarted desk judges alike
    desk = stage_b[0]
    fresh: FundDesk[None] = FundDesk(instruments, PARTITIONS)
    restore_desk(fresh, encode_desk(desk, "USDT-M"))
    old, new = desk.watch.drawdown.pools["USDT-M"], fresh.watch.drawdown.pools["USDT-M"]
    assert len(old.balance.entries) > 0
    assert new.balance.entries == old.balance.entries


def test_desk_row_restores_what_the_desk_announced(stage_b: Any) -> None:
    """A restarted desk reads its row: the same stages, announcements, balances, books
    and last complete mark, so it neither re-announces nor takes an old summary."""
    _, applied, _, _, _ = stage_b
    fund = "USDT-M"
    desk: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    for item, _, _ in applied:  # again, up to the first trigger: mid-cascade
        signals = desk.apply(item).signals
        if any(isinstance(s, AdlTriggered) and s.stage == "triggered" for s in signals):
            break
    fresh: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    restore_desk(fresh, encode_desk(desk, fund))
    old, new = desk.watch, fresh.watch
    assert any(stage == "triggered" for stage in old.stages.values())
    assert new.stages == old.stages
    assert new.triggered == old.triggered
    assert list(new.funds[fund].snapshots) == list(old.funds[fund].snapshots)
    assert new.depth == old.depth
    assert new.projected_at_ms == old.projected_at_ms


def summarising(
    partition: int, instruments: dict[str, Instrument] | None = None, persist: bool = False
) -> Shard[None]:
    shard: Shard[None] = Shard(
        partition,
        instruments or bundled_instruments(),
        summary_interval_ms=INTERVAL_MS,
        persist_rankings=persist,
    )
    assert shard.summarizer is not None
    shard.summarizer.kept_entries = 1 << 40  # lit at the end, not as they come
    return shard


def summaries_of(shard: Shard[None], outputs: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    due = [(o.stream, o.payload) for o in shard.summaries()]  # the last groups: inputs done
    return [payload for name, payload in outputs + due if name == "risk_summaries"]


def test_a_partition_given_back_lights_what_it_summarised_before(stage_b: Any) -> None:
    """A rebalance revokes partition 0 mid-stream and gives it back (Faust's
    rebalances revoke everything): its shard is rewound (what it buffered is dropped and
    delivered again from the committed offsets, here the start) and keeps the rankings
    it summarised that the desk had not lit yet. The desk hears what an uninterrupted
    partition says, and the partition's rank alerts are that partition's (the
    fixture's), each once. A shard restored from its rows at the same point (what a
    process that did not keep it does) lights them the same when the rows of the
    rankings it kept come back too (``agents.ranking_rows``, through their bytes); without
    them it has lost those rankings: the control."""
    _, _, summaries, alerts, cuts = stage_b
    mine = [s for s in summaries if s["partition"] == 0]
    want_alerts = [a for a in alerts if partition_of(a["account"]) == 0]
    want = sorted(map(canonical, want_alerts))
    assert len(want) > 100

    def second_life(take_up: Callable[[Shard[None]], Shard[None]], stop_after: int) -> Any:
        first = summarising(0, persist=True)
        before, _ = run(first, feeds(0), random.Random(3), stop_after=stop_after)
        write_changes(table, 0, first.ranking_changes())  # the changelog table's rows
        # buffered when the partition was revoked: marks too (seen, not applied)
        assert stop_after > 1000 or any(isinstance(i.event, Mark) for i in first.sequencer.items())
        again = take_up(first)
        after, _ = run(again, feeds(0), random.Random(4))  # from the start again
        assert again.stats.redelivered > 0
        said = [p for name, p in before if name == "risk_summaries"]
        return again, said + summaries_of(again, after)

    def rewound(first: Shard[None]) -> Shard[None]:
        assert first.rewind() > 0
        return first

    def restored(first: Shard[None], rankings: bool = False) -> Shard[None]:
        shard = summarising(0)
        rows = [decode_account(encode_account(first.row(a))) for a in first.applied]
        kept = decode_rankings(0, table.items()) if rankings else ()
        shard.restore(rows, [(s, *first.mark_row(s)) for s in first.engine.marks], kept)
        return shard

    table: dict[bytes, bytes] = {}
    again, said = second_life(rewound, 1000)
    assert again.stats.applied == sum(map(len, feeds(0).values()))  # each event once
    assert said == mine
    assert sorted(map(canonical, lit([again], cuts))) == want
    assert again.stats.unlit == 0
    table.clear()
    # later (3,000 inputs in): rankings of 70-91 positions a side, none lit yet
    # (scores after the restore carried to the marks from other evaluations: equal to
    # ~1e-15 relative, the float carry; every light and previous light the same)
    again, _ = second_life(lambda first: restored(first, rankings=True), 3000)
    assert len(table) > 500
    assert sorted(map(rounded, lit([again], cuts))) == sorted(map(rounded, want_alerts))
    assert again.stats.unlit == 0
    table.clear()
    again, _ = second_life(restored, 3000)
    assert sorted(map(rounded, lit([again], cuts))) != sorted(map(rounded, want_alerts))
    assert again.stats.unlit > 400


def rounded(alert: dict[str, Any]) -> bytes:
    return canonical({**alert, "rank_score": float(f"{alert['rank_score']:.12g}")})


def fund_update(ts_ms: int, balance: int) -> tuple[InsuranceFund, dict[str, Any]]:
    obj = {"type": "insurance_fund", "ts": ts_ms, "fund": "USDT-M", "balance": str(balance)}
    return InsuranceFund(ts_ms, "USDT-M", MoneyRaw(balance * SCALE)), obj


def test_a_fund_update_delivered_again_is_not_applied_again() -> None:
    """The fund at 1,000 (offset 0), then 400 (offset 1). Offset 0 delivered again after
    both were applied (its input re-read from an older committed offset) would stand as
    the fund's balance (the history appends it: 1,000 again until the next update).
    Recognised as applied, by the desk and by a desk restored from its row; offset 2
    (300) is new."""
    desk: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    for offset, (ts_ms, balance) in enumerate([(1_000, 1_000), (2_000, 400)]):
        assert desk.push_event(*fund_update(ts_ms, balance), "insurance_fund", offset, None)
    for item in desk.release([], flush=True):
        desk.apply(item)
    history = desk.watch.funds["USDT-M"]
    assert history.balance == 400 * SCALE
    assert not desk.push_event(*fund_update(1_000, 1_000), "insurance_fund", 0, None)
    assert desk.release([], flush=True) == []
    assert history.balance == 400 * SCALE
    restored: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    restore_desk(restored, encode_desk(desk, "USDT-M"))
    assert not restored.push_event(*fund_update(2_000, 400), "insurance_fund", 1, None)
    assert restored.push_event(*fund_update(3_000, 300), "insurance_fund", 2, None)
    assert restored.stats.redelivered == 1
    # applied twice when pushed twice before it applied (a re-read): once
    desk.push_event(*fund_update(3_000, 300), "insurance_fund", 2, None)
    desk.push_event(*fund_update(3_000, 300), "insurance_fund", 2, None)
    for item in desk.release([], flush=True):
        desk.apply(item)
    assert list(history.snapshots)[-2:] == [(2_000, 400 * SCALE), (3_000, 300 * SCALE)]


def test_a_desk_rewound_completes_again_the_marks_it_had_not_applied(stage_b: Any) -> None:
    """Every partition's summaries of the fund's first two mark groups; the first
    applied, the second complete but held (its fund input not delivered yet) when a
    rebalance revokes the desk's inputs. The row names the first as the last complete
    mark (a desk restored from it takes the second's summaries again: before, it named
    the second and they were dropped as copies, a mark never applied). Rewound, the
    desk drops what it held and takes the second's summaries, delivered again, once."""
    _, _, summaries, _, _ = stage_b
    decoded = [from_wire(orjson.loads(orjson.dumps(s))) for s in summaries]
    clocks = sorted({s.clock for s in decoded if s.fund == "USDT-M"})
    first, second = ([s for s in decoded if s.clock == c] for c in clocks[:2])
    assert len(first) == len(second) == PARTITIONS
    desk: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    for s in first:
        assert desk.push_summary(s, None)
    for item in desk.release([], flush=True):
        desk.apply(item)
    for s in second:
        assert desk.push_summary(s, None)
    assert len(desk.sequencer) == 1  # complete, not applied
    row = orjson.loads(encode_desk(desk, "USDT-M"))
    assert tuple(row["complete"]) == (*clocks[0], "risk_summaries", 0)
    restored: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    restore_desk(restored, encode_desk(desk, "USDT-M"))
    assert all(restored.push_summary(s, None) for s in second)
    desk.rewind()
    assert len(desk.sequencer) == 0
    assert not any(desk.waiting.values())
    assert all(desk.push_summary(s, None) for s in second)
    assert not desk.push_summary(second[0], None)  # a copy of one now waiting
    released = desk.release([], flush=True)
    assert [item.key[:3] for item in released] == [clocks[1]]
    desk.apply(released[0])
    assert desk.stats.marks == 2


def test_a_mark_one_partition_skipped_lights_nothing_until_every_partition_reached_it(
    stage_b: Any,
) -> None:
    """A partition restored after a crash may have applied a mark without sending its
    summary (the process died between the two): its next summary stands in for it
    (``FundDesk._complete``). Here partition 0 skips a lit mark (the cascade's first
    seconds: a mark group a second, each lit) and sends the next one. The skipped group
    completes with partition 0's next summary: it is judged at its own time and lights
    nothing (the partitions' histograms are of two marks, and partition 0 kept no
    ranking of it: those lights are lost, not wrong); the next group lights with every
    partition's histogram of it, as the uninterrupted desk does. Before, the skipped
    group took partition 0's time, lit the next mark from the mixed histograms and the
    true next group found it lit already: in the failover test a crash gave ~290 rank
    alerts replay does not have, in the three seconds after the partition's restart."""
    _, _, summaries, _, cuts = stage_b
    decoded = [from_wire(orjson.loads(orjson.dumps(s))) for s in summaries]
    clocks = sorted({s.clock for s in decoded if s.fund == "USDT-M"})
    lit_at = {c.ts_ms for c in cuts}
    i = next(i for i in range(10, len(clocks) - 1) if {clocks[i][0], clocks[i + 1][0]} <= lit_at)
    skipped, lit_mark = clocks[i], clocks[i + 1]
    desk: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    for s in decoded:
        if s.clock <= lit_mark and not (s.partition == 0 and s.clock == skipped):
            assert desk.push_summary(s, None)
    got = []
    for item in desk.release([], flush=True):
        result = desk.apply(item)
        assert item.key[:3] <= lit_mark
        if item.key[:3] == skipped:
            assert result.cuts == []
        got += [cuts_to_wire(c) for c in result.cuts]
    want = [cuts_to_wire(c) for c in cuts if c.ts_ms <= lit_mark[0] and c.ts_ms != skipped[0]]
    assert got[-1]["ts"] == lit_mark[0]
    assert got == want


def test_a_mark_group_a_partition_stood_in_for_is_judged_at_its_own_prices(
    stage_b: Any,
) -> None:
    """The group partition 0 skipped completes with partition 0's next summary standing
    in (``FundDesk._complete``): the desk judges it at the group's own mark prices (what
    the other partitions' digests of it say), not at the later mark partition 0's
    digest carries, first in the view. Before, ``MergedView.mark`` took the first
    digest's price: a projection and a plan at the later mark's price, stamped with the
    group's time."""
    _, _, summaries, _, _ = stage_b
    decoded = [from_wire(orjson.loads(orjson.dumps(s))) for s in summaries]
    usdt = [s for s in decoded if s.fund == "USDT-M"]
    clocks = sorted({s.clock for s in usdt})

    def prices(partition: int, clock: tuple[int, int, str]) -> dict[str, int]:
        summary = next(s for s in usdt if s.partition == partition and s.clock == clock)
        return {d.symbol: d.mark_price for d in summary.symbols}

    # a group whose next group moved a mark: partition 0's stand-in then carries a price
    # of its own
    i = next(
        i for i in range(10, len(clocks) - 1) if prices(1, clocks[i]) != prices(1, clocks[i + 1])
    )
    skipped, later = clocks[i], clocks[i + 1]
    desk: FundDesk[None] = FundDesk(bundled_instruments(), PARTITIONS)
    for s in decoded:
        if s.clock <= later and not (s.partition == 0 and s.clock == skipped):
            assert desk.push_summary(s, None)
    for item in desk.release([], flush=True):
        desk.apply(item)
        if item.key[:3] == skipped:
            view = desk.view("USDT-M")
            assert item.summaries[0].clock == later  # partition 0 stands in
            assert {sym: view.mark(sym) for sym in prices(1, skipped)} == prices(1, skipped)


def lit_marks(summaries: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """(symbol, mark time) of each ranking the summaries describe for the desk to light
    (the digests carrying score histograms)."""
    out = set()
    for wired in summaries:
        summary = from_wire(orjson.loads(orjson.dumps(wired)))
        ranked = [d for d in summary.symbols if d.long_scores or d.short_scores]
        out |= {(d.symbol, summary.ts_ms) for d in ranked}
    return out


def restarted(first: Shard[None]) -> list[Shard[None]]:
    """``first``'s partition after a crash, both ways: a shard restored from its
    changelog rows, and a warm copy fed the same rows and taken over (what
    ``AccountAgents._warmed`` does)."""
    accounts, marks = changelog_rows(first)
    restored = summarising(0)
    restored.restore(
        [decode_account(raw) for raw in accounts.values()],
        [(s, *first.mark_row(s)) for s in first.engine.marks],
    )
    copy = WarmCopy(0, bundled_instruments(), summary_interval_ms=INTERVAL_MS)
    copy.refresh(accounts, marks)
    assert copy.shard is not None
    copy.shard.resume()
    return [restored, copy.shard]


@pytest.mark.parametrize("stop_after", [2000, 4000, 6000])
def test_a_partition_restored_or_taken_over_ranks_on_every_partitions_grid(
    stage_b: Any, stop_after: int
) -> None:
    """A shard ranks for the desk's lights at the first mark of each refresh period (1 s
    of event time: a grid, the same on every partition). Partition 0 stops mid-second
    (the cascade's marks come every 100 ms there) and is restored from its rows, or
    taken over by a warm copy fed the same rows: either ranks at the marks the
    uninterrupted partition ranks at, not one more. Before, both ranked at their first
    mark after the restart (x.700 s), off the grid: a ranking the desk lit from that one
    partition's histogram when the grid's mark had been skipped (a crash: 8,634 rank
    alerts sent where replay has 8,552, the extras at x.100 s)."""
    _, _, summaries, _, _ = stage_b
    want = lit_marks([s for s in summaries if s["partition"] == 0])
    first = summarising(0)
    before, _ = run(first, feeds(0), random.Random(3), stop_after=stop_after)
    assert max(first.mark_row(s)[0] for s in first.engine.marks) % 1000 != 0  # mid-second
    said = [p for name, p in before if name == "risk_summaries"]
    for again in restarted(first):
        after, _ = run(again, feeds(0), random.Random(4))
        assert lit_marks(said + summaries_of(again, after)) == want


@pytest.mark.parametrize("stop_after", [1513, 1695])
def test_a_partition_restored_inside_a_mark_group_still_summarises_it(
    stage_b: Any, stop_after: int
) -> None:
    """Partition 0 stops inside a mark group: some symbols have the group's mark (x.500
    s; x+1.000 s, the first of its second: a lit mark), the others the one before.
    The summary of a group goes out when its last mark is applied: not yet. Restored
    from its rows (or a warm copy taken over: ``Shard.resume`` for both), the shard
    sends the summary of that group when the group's last marks come, with the
    rankings of every symbol if it is a lit mark, as the uninterrupted partition does.
    Before, the rest of the group found the summary interval begun: no summary of that
    mark from the partition, no ranking, and the desk lit nothing there (a failover run
    lost ~160 rank alerts of one second)."""
    _, _, summaries, _, _ = stage_b
    mine = [s for s in summaries if s["partition"] == 0]
    first = summarising(0)
    before, _ = run(first, feeds(0), random.Random(3), stop_after=stop_after)
    times = sorted({first.mark_row(s)[0] for s in first.engine.marks})
    assert len(times) == 2  # inside a group
    for again in restarted(first):
        after, _ = run(again, feeds(0), random.Random(4))
        said = [p for name, p in before if name == "risk_summaries"] + summaries_of(again, after)
        assert [s["clock"] for s in said] == [s["clock"] for s in mine]
        assert times[-1] in {s["clock"][0] for s in said}
        assert lit_marks(said) == lit_marks(mine)
