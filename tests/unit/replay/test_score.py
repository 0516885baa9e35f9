"""The warning-time score: hand-made stage timelines, then the bundled scenario."""

import json

from streams.cli import bundled
from streams.replay.score import score_warnings, summarize


def test_warning_runs_from_the_start_of_the_streak_to_the_adl():
    stages = [
        (1_000, "BTC", "imminent"),
        (4_000, "BTC", "triggered"),
        (4_500, "BTC", "imminent"),  # still warned: the streak goes on
    ]
    (episode,) = score_warnings([(6_000, "BTC"), (6_000, "BTC")], stages)  # one episode
    assert episode.warned
    assert episode.warning_seconds == 5.0  # 6,000 - 1,000 ms
    assert episode.triggered_seconds == 2.0  # 6,000 - 4,000 ms


def test_a_cleared_stage_ends_the_streak_and_a_late_warning_does_not_count():
    stages = [
        (1_000, "BTC", "imminent"),
        (2_000, "BTC", "cleared"),
        (5_000, "BTC", "triggered"),  # same millisecond as the ADL: too late
        (7_000, "BTC", "imminent"),
    ]
    first, second = score_warnings([(5_000, "BTC"), (8_000, "BTC")], stages)
    assert not first.warned
    assert first.warning_seconds is None
    assert second.warned
    assert second.warning_seconds == 3.0


def test_another_symbols_warning_does_not_count():
    (episode,) = score_warnings([(9_000, "ETH")], [(1_000, "BTC", "triggered")])
    assert not episode.warned
    summary = summarize([episode])
    assert summary["adl_episodes"] == 1
    assert summary["unwarned_episodes"] == 1
    assert summary["warning_seconds_min"] is None


def test_the_bundled_scenario_warned_before_every_real_adl(tmp_path):
    from streams.engine.instruments import load_instruments
    from streams.replay.runner import replay

    result = replay(bundled("cascade.jsonl"), load_instruments(bundled("instruments.toml")),
                    tmp_path, progress=False)  # fmt: skip
    # the episodes, counted from the input file by hand
    episodes = set()
    for line in bundled("cascade.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("type") == "fill" and e.get("kind") == "adl":
            episodes.add((e["ts"], e["symbol"]))
    warning = result.summary["adl_warning"]
    assert warning["adl_episodes"] == len(episodes) > 0
    assert warning["unwarned_episodes"] == 0
    assert warning["warning_seconds_min"] > 0
    # the first ADL of each symbol came after a stage record of that symbol, strictly
    triggers = [json.loads(x) for x in (tmp_path / "adl_triggers.jsonl").read_text().splitlines()]
    for symbol, first in warning["first_adl_by_symbol"].items():
        before = [t for t in triggers if t["symbol"] == symbol and t["ts"] < first["ts"]]
        assert before
        assert before[-1]["stage"] in {"imminent", "triggered"}
