"""Offline replay: a JSONL file of events through the engine into output files.

Deterministic: the same events and settings give byte-identical outputs (no clock,
no set-ordering, no wall time in the files). Bad lines go to ``dead_letters.jsonl``
with the line number and the reason; the replay goes on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from streams import wire
from streams.engine.adl import RankedEntry
from streams.engine.config import EngineConfig
from streams.engine.decode import MAX_MESSAGE_BYTES, decode_line
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError, EventFailed
from streams.engine.events import Event, Fill, FillKind
from streams.engine.fixed import to_float, to_str
from streams.engine.instruments import Instrument
from streams.engine.inverse import account_of
from streams.engine.signals import Signal
from streams.replay.score import score_warnings, summarize

QUEUE_SNAPSHOT_SIZE = 25  # entries per side kept of the queue at the first trigger

OUTPUTS = (
    "accounts",
    "liquidations",
    "bankruptcies",
    "fund_projection",
    "adl_triggers",
    "rank_alerts",
    "dead_letters",
)
_DUMP = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SORT_KEYS


@dataclass(slots=True)
class ReplayResult:
    summary: dict[str, Any]
    elapsed_seconds: float
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def events_per_second(self) -> float:
        lines = self.summary["lines"]
        return lines / self.elapsed_seconds if self.elapsed_seconds > 0 else float("inf")


class _Outputs:
    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, IO[bytes]] = {
            name: (out_dir / f"{name}.jsonl").open("wb") for name in OUTPUTS
        }
        self.counts: Counter[str] = Counter()

    def write(self, name: str, payload: dict[str, Any]) -> None:
        self.files[name].write(orjson.dumps(payload, option=_DUMP))
        self.counts[name] += 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()


log = logging.getLogger("adl_monitor.replay")
CHUNK_BYTES = 1 << 16


def bounded_lines(source: IO[bytes], max_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[bytes]:
    """The file's lines, each held to ``max_bytes + 1`` bytes: a longer line is yielded
    cut there (the decoder refuses it by its size) and the rest skipped unread into
    memory, so a 50 MB line costs 1 MB, not 50."""
    while line := source.readline(max_bytes + 1):
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := source.readline(CHUNK_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield line


def _apply_line(
    engine: Engine, raw: bytes, symbols: frozenset[str], line: int
) -> tuple[Event, list[Signal]] | AdlMonitorError:
    """The line's event and signals, or why it is a dead letter (every exception is
    contained: one that is not bad input is a bug, logged with its traceback)."""
    try:
        event = decode_line(raw, symbols)
        return event, engine.apply(event)
    except AdlMonitorError as exc:
        return exc
    except Exception as exc:  # see EventFailed
        log.exception("line %d: applying the event failed: dead-lettered", line)
        return EventFailed(exc)


def _progress(total_bytes: int, enabled: bool | None) -> Any:
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total_bytes, unit="B", unit_scale=True, desc="replay", file=sys.stderr)


def replay(
    events_path: str | Path,
    instruments: dict[str, Instrument],
    out_dir: str | Path,
    config: EngineConfig | None = None,
    progress: bool | None = None,
) -> ReplayResult:
    events_path, out_dir = Path(events_path), Path(out_dir)
    engine = Engine(instruments, config)
    symbols = frozenset(instruments)
    outputs = _Outputs(out_dir)
    bar = _progress(events_path.stat().st_size, progress)
    first_trigger_ts: int | None = None
    adl_fills: list[tuple[int, str]] = []
    stages: list[tuple[int, str, str]] = []
    timeline: dict[str, Any] = {"first_trigger": None}  # -> timeline.json, for the report
    lines = 0
    started = time.perf_counter()
    try:
        with events_path.open("rb") as source:
            for lines, raw in enumerate(bounded_lines(source), start=1):
                if bar is not None:
                    bar.update(len(raw))
                if not raw.strip():
                    continue
                applied = _apply_line(engine, raw, symbols, lines)
                if isinstance(applied, AdlMonitorError):
                    outputs.write(
                        "dead_letters",
                        {
                            "line": lines,
                            "error": str(applied),
                            "field": getattr(applied, "field", None),
                            "input": raw.decode("utf-8", "replace").strip()[:1000],
                        },
                    )
                    continue
                event, signals = applied
                if isinstance(event, Fill) and event.kind is FillKind.ADL:
                    adl_fills.append((event.ts_ms, event.symbol))
                for signal in signals:
                    name, payload = wire.render(signal)
                    if name == "adl_triggers":
                        stages.append((payload["ts"], payload["symbol"], payload["stage"]))
                        if payload["stage"] == "triggered" and first_trigger_ts is None:
                            first_trigger_ts = payload["ts"]
                            timeline["first_trigger"] = _queue_snapshot(engine, payload)
                    outputs.write(name, payload)
        for signal in engine.finish():
            outputs.write(*wire.render(signal))
        health: Counter[str] = Counter()
        for row in wire.final_accounts(engine):
            outputs.write("accounts", row)
            health[row["state"]] += 1
    finally:
        if bar is not None:
            bar.close()
        outputs.close()
    elapsed = time.perf_counter() - started
    summary = _summary(engine, outputs.counts, health, lines, first_trigger_ts)
    episodes = score_warnings(adl_fills, stages)
    summary["adl_warning"] = summarize(episodes)
    timeline["adl_episodes"] = [
        {"ts": e.ts_ms, "symbol": e.symbol, "warned": e.warned,
         "warning_seconds": e.warning_seconds}
        for e in episodes
    ]  # fmt: skip
    timeline["final_lights"] = {
        sym: {side: list(engine.side_summary(sym, side).positions_by_light) for side in SIDES}
        for sym in sorted(engine.symbols)
        if sym in engine.marks
    }
    (out_dir / "timeline.json").write_bytes(
        orjson.dumps(timeline, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    (out_dir / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    return ReplayResult(summary, elapsed, outputs.counts)


SIDES = ("long", "short")


def _queue_snapshot(engine: Engine, trigger: dict[str, Any]) -> dict[str, Any]:
    """The symbol's ADL queues (head of each side) when it first triggered."""
    sym = trigger["symbol"]
    return {
        "ts": trigger["ts"],
        "symbol": sym,
        "sides": {
            side: [_entry(e) for e in engine.venue_queue(sym, side, limit=QUEUE_SNAPSHOT_SIZE)]
            for side in SIDES
        },
    }


def _entry(e: RankedEntry) -> dict[str, Any]:
    return {"account": e.account, "qty": to_float(e.qty), "score": e.score, "light": e.light,
            "rank": e.rank}  # fmt: skip


def _summary(
    engine: Engine,
    counts: Counter[str],
    health: Counter[str],
    lines: int,
    first_trigger_ts: int | None,
) -> dict[str, Any]:
    funds = {}
    for fund in sorted(engine.fund_symbols):
        balance = engine.funds[fund].balance
        loss, _ = engine.loss_now(fund)
        funds[fund] = {
            "fund_balance": None if balance is None else to_str(balance),
            "projected_loss": to_str(loss),
            "symbols": engine.fund_symbols[fund],
        }
    return {
        "lines": lines,
        "events_applied": engine.stats.events,
        "duplicates_ignored": engine.stats.duplicates,
        "stale_marks_ignored": engine.stats.stale_marks,
        "dead_letters": counts["dead_letters"],
        "accounts": len({account_of(key) for key in engine.accounts}),  # not each wallet
        "open_positions": sum(len(s.positions) for s in engine.accounts.values()),
        "accounts_by_state": dict(sorted(health.items())),
        "outputs": {name: counts[name] for name in OUTPUTS},
        "first_adl_trigger_ts": first_trigger_ts,
        "last_event_ts": engine.last_ts_ms,
        "funds": funds,
    }
