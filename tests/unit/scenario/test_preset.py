"""``simulate --preset``: the Hyperliquid-scale scenario's size, its instruments, and the
generator's invariants on a small copy (the full preset takes minutes: a benchmark).

Independent checks: the published figures (accounts, assets, the block) written here by
hand; Hyperliquid's maintenance rule (half the initial margin at maximum leverage) by
hand per major; zero-sum open interest and canonical order folded from the file with
``Decimal``; the monitor's own replay reading every line without a dead letter.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from streams.cli import main
from streams.engine.decode import decode_line
from streams.engine.instruments import load_instruments, parse_instruments
from streams.pipeline.sequencer import canonical_key
from streams.replay.runner import replay
from streams.scenario.preset import (
    ALT_CLASSES,
    HYPERLIQUID_2025_10_10,
    MAJORS,
    assets,
    generate,
    instruments_toml,
    scaled,
)

# a small copy: 1,500 accounts, 3 majors and 3 alts per class, a 90 s window with the
# block at 30 s (the rest as published)
SMALL = replace(
    scaled(HYPERLIQUID_2025_10_10, accounts=1_500),
    window_minutes=1.5,
    crash_minutes=1.0,
    block_at_ms=30_029,
    classes=MAJORS + tuple(replace(c, count=3) for c in ALT_CLASSES),
)


def test_the_preset_is_sized_on_the_published_figures():
    # Hyperliquid, 10 Oct 2025 21:15-21:27 UTC: 437,723 accounts, 162 assets; the block at
    # 21:16:04.83 (1,760,130,964,830 ms): gap step 500 ms (the liquidation delay) before
    spec = HYPERLIQUID_2025_10_10
    assert spec.accounts == 437_723
    assert sum(c.count for c in spec.classes) == 162
    assert spec.window_start_ms == 1_760_130_900_000  # 21:15:00 UTC
    fills_at = spec.window_start_ms + spec.block_at_ms + spec.liquidation_delay_ms + 1
    assert fills_at == 1_760_130_964_830
    assert spec.window_minutes == 12


def test_the_instruments_follow_hyperliquids_margin_rule():
    symbols = assets(HYPERLIQUID_2025_10_10, np.random.default_rng(1))
    instruments = parse_instruments(
        tomllib.loads(instruments_toml(HYPERLIQUID_2025_10_10, symbols))
    )
    assert len(instruments) == 162
    assert {i.profile for i in instruments.values()} == {"hyperliquid"}
    assert len({i.fund for i in instruments.values()}) == 1  # one vault for every asset
    # maintenance = half the initial margin at maximum leverage: 1 / (2 * max)
    scale = 10**8
    assert instruments["BTC"].tiers[0].mmr == scale * 125 // 10_000  # 40x -> 1.25%
    assert instruments["ETH"].tiers[0].mmr == scale * 2 // 100  # 25x -> 2%
    assert instruments["SOL"].tiers[0].mmr == scale * 25 // 1_000  # 20x -> 2.5%


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("preset")
    events, instruments = folder / "small.jsonl", folder / "small.instruments.toml"
    generate(SMALL, events, instruments, progress=False)
    return events, instruments


def test_same_seed_same_bytes(small: tuple[Path, Path], tmp_path: Path) -> None:
    again = tmp_path / "again.jsonl"
    generate(SMALL, again, tmp_path / "again.toml", progress=False)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (small[0], again)]
    assert digest[0] == digest[1]
    other = tmp_path / "other.jsonl"
    generate(replace(SMALL, seed=SMALL.seed + 1), other, tmp_path / "o.toml", progress=False)
    assert hashlib.sha256(other.read_bytes()).hexdigest() != digest[0]


def test_every_line_decodes_in_canonical_order_and_positions_sum_to_zero(
    small: tuple[Path, Path],
) -> None:
    instruments = load_instruments(small[1])
    net: dict[str, Decimal] = defaultdict(Decimal)
    last = None
    for line in small[0].read_bytes().splitlines():
        decode_line(line)  # raises on anything the monitor would dead-letter
        obj = json.loads(line)
        key = canonical_key(obj)
        assert last is None or last <= key
        last = key
        if obj["type"] == "fill":
            assert obj["symbol"] in instruments
            signed = Decimal(obj["qty"]) * (1 if obj["side"] == "buy" else -1)
            net[obj["symbol"]] += signed
    # every fill has its other side in the file (a trade's two accounts, the maker, or
    # the counterparties of an ADL): open interest is zero-sum per symbol
    assert net
    assert {s: v for s, v in net.items() if v} == {}


def test_the_block_holds_the_most_liquidation_and_adl_fills(small: tuple[Path, Path]) -> None:
    by_ts: Counter[int] = Counter()
    kinds: dict[int, Counter[str]] = defaultdict(Counter)
    for line in small[0].read_bytes().splitlines():
        obj = json.loads(line)
        if obj["type"] == "fill" and obj["kind"] in ("liquidation", "adl"):
            by_ts[obj["ts"]] += 1
            kinds[obj["ts"]][obj["kind"]] += 1
    block = SMALL.window_start_ms + SMALL.block_at_ms + SMALL.liquidation_delay_ms + 1
    busiest, count = by_ts.most_common(1)[0]
    assert busiest == block
    # the published block: 22,558 fills of 437,723 accounts (5.2%); at least half that here
    assert count >= 0.025 * SMALL.accounts
    assert kinds[block]["liquidation"] > 0
    assert kinds[block]["adl"] > 0  # the fund was spent: deleveraged


def test_the_monitor_replays_it_and_sees_the_cascade(
    small: tuple[Path, Path], tmp_path: Path
) -> None:
    result = replay(small[0], load_instruments(small[1]), tmp_path, progress=False)
    assert result.summary["dead_letters"] == 0
    outputs = {
        name: (tmp_path / f"{name}.jsonl").read_text().splitlines()
        for name in ("liquidations", "bankruptcies", "adl_triggers")
    }
    assert len(outputs["liquidations"]) > 0
    assert len(outputs["bankruptcies"]) > 0
    stages = {json.loads(line)["stage"] for line in outputs["adl_triggers"]}
    assert "triggered" in stages


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--minutes", "3"], "--preset sets these itself: --minutes"),
        (["--bundled"], "--preset sets these itself: --bundled"),
        (["--accounts", "1"], "--accounts: at least 2"),
        (["--seed", "-1"], "--seed: a whole number >= 0"),
    ],
)
def test_the_preset_refuses_what_it_cannot_honour(extra, said, tmp_path, capsys):
    out = tmp_path / "never.jsonl"
    code = main(["simulate", "--preset", "hyperliquid-2025-10-10", "--out", str(out), *extra])
    assert code == 2
    assert said in capsys.readouterr().err
    assert not out.exists()  # refused before writing anything
