"""Worker snapshots without a broker: what is written reads back as the same state, in
chunks; what was not signed with the key, was cut short or is of another engine is not
loaded."""

from __future__ import annotations

import os
import pickle
import zlib
from pathlib import Path

import orjson
import pytest

from streams.cli import bundled
from streams.engine.decode import decode_line
from streams.engine.engine import Engine
from streams.engine.errors import AdlMonitorError
from streams.engine.instruments import load_instruments
from streams.pipeline import snapshots
from streams.pipeline.settings import Settings
from streams.pipeline.snapshots import Snapshot, SnapshotRefused
from tests.helpers import signals_of

KEY = "k" * 32
INSTRUMENTS = load_instruments(bundled("instruments.toml"))
LINES = Path(bundled("cascade.jsonl")).read_bytes().splitlines()


def engine_after(lines: list[bytes]) -> tuple[Engine, list[bytes]]:
    """An engine over ``lines``, and the signals it gave, serialised."""
    engine = Engine(INSTRUMENTS)
    return engine, signals_of(engine, lines)


@pytest.fixture(scope="module")
def halfway() -> Snapshot:
    engine, _ = engine_after(LINES[:6000])
    return Snapshot(engine, 5990, engine.last_ts_ms, {"t.fills:0": (120, [121, 125])})


def written(snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    monkeypatch.setattr(snapshots, "CHUNK_BYTES", 64 * 1024)  # several chunks
    return snapshots.encode(snapshot, KEY, os.urandom(16))


def test_a_snapshot_reads_back_as_the_state_it_was(
    halfway: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = written(halfway, monkeypatch)
    assert len(records) > 3  # chunks, then the header
    assert records[-1][0] == snapshots.HEADER_KEY
    got = snapshots.decode(records, KEY)
    assert got is not None
    assert (got.seq, got.applied_ts, got.resume) == (
        5990, halfway.applied_ts, {"t.fills:0": (120, [121, 125])}
    )  # fmt: skip
    # the same state: the rest of the cascade gives the same signals from both
    _, expected = engine_after(LINES)
    _, first_part = engine_after(LINES[:6000])
    rest = []
    for line in LINES[6000:]:
        try:
            rest += [repr(s).encode() for s in got.engine.apply(decode_line(line, INSTRUMENTS))]
        except AdlMonitorError:
            continue
    assert len(rest) > 1000
    assert first_part + rest == expected


def test_the_last_complete_snapshot_is_the_one_read(
    halfway: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = written(Snapshot(Engine(INSTRUMENTS), 10, 0, {}), monkeypatch)
    newer = written(halfway, monkeypatch)

    def seq_read(records: list[tuple[bytes | None, bytes | None]]) -> int | None:
        got = snapshots.decode(records, KEY)
        return None if got is None else got.seq

    assert seq_read([*older, *newer]) == 5990
    # a header whose chunks did not all come before it (cut short): the one before
    assert seq_read([*older, *newer[1:]]) == 10
    assert seq_read([]) is None
    # keys and values another writer left: not a header of ours, skipped
    noise = [(b"header", b"not json"), (None, b"x"), (b"header", b'{"id": "zz"}')]
    assert seq_read([*older, *noise]) == 10


def test_a_snapshot_not_signed_with_the_key_is_refused(
    halfway: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = written(halfway, monkeypatch)
    with pytest.raises(SnapshotRefused, match="signature"):
        snapshots.decode(records, "another key")
    # a writer without the key puts its own pickle in the chunks (unpickling runs code)
    forged = pickle.dumps(Engine(INSTRUMENTS))
    snapshot_id = records[0][1][:16]
    body = snapshot_id + zlib.compress(forged)
    header = orjson.loads(records[-1][1]) | {"chunks": 1}
    with pytest.raises(SnapshotRefused, match="signature"):
        snapshots.decode([(b"chunk:0", body), (b"header", orjson.dumps(header))], KEY)
    # or moves the resume points of a signed one
    header = orjson.loads(records[-1][1])
    header["resume"] = {"t.fills:0": [0, []]}
    with pytest.raises(SnapshotRefused, match="signature"):
        snapshots.decode([*records[:-1], (b"header", orjson.dumps(header))], KEY)


def test_a_snapshot_of_another_engine_is_refused(
    halfway: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = written(halfway, monkeypatch)
    monkeypatch.setattr(snapshots, "engine_digest", lambda: "another engine's source")
    with pytest.raises(SnapshotRefused, match="another version"):
        snapshots.decode(records, KEY)


def test_the_snapshot_key_comes_from_env_or_a_file(tmp_path: Path) -> None:
    assert Settings.from_env({}).snapshot_key == ""
    assert Settings.from_env({"ADL_SNAPSHOT_KEY": "abc"}).snapshot_key == "abc"
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    settings = Settings.from_env(
        {"ADL_SNAPSHOT_KEY_FILE": str(key_file), "ADL_SNAPSHOT_INTERVAL_S": "5"}
    )
    assert (settings.snapshot_key, settings.snapshot_interval_s) == ("from-a-file", 5)


def test_a_state_holding_large_arrays_reads_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pickle protocol 5 hands a large array's data to the writer as a buffer, not bytes
    (an engine at the preset's scale holds columns of 100k+ rows)."""
    import numpy as np

    engine, _ = engine_after(LINES[:50])
    column = np.arange(300_000, dtype=np.int64) * 7  # 2.4 MB: several pickle frames
    engine.extra_column = column  # type: ignore[attr-defined]
    records = written(Snapshot(engine, 50, engine.last_ts_ms), monkeypatch)
    got = snapshots.decode(records, KEY)
    assert got is not None
    assert np.array_equal(got.engine.extra_column, column)  # type: ignore[attr-defined]


COLLECTOR_SEEN: list[bool] = []


class _CollectorProbe:
    """Says, when unpickled, whether the cyclic collector was on."""

    def __setstate__(self, state: object) -> None:
        import gc

        COLLECTOR_SEEN.append(gc.isenabled())

    def __getstate__(self) -> object:
        return {"probe": True}


def test_a_snapshot_is_unpickled_with_the_collector_paused_then_on_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unpickling makes millions of long-lived objects at the preset's scale: the full
    collections their growth triggers took 60% of it (25.8 s vs 10.3 s)."""
    import gc

    engine, _ = engine_after(LINES[:50])
    engine.probe = _CollectorProbe()  # type: ignore[attr-defined]
    records = written(Snapshot(engine, 50, engine.last_ts_ms), monkeypatch)
    COLLECTOR_SEEN.clear()
    assert gc.isenabled()
    assert snapshots.decode(records, KEY) is not None
    assert COLLECTOR_SEEN == [False]
    assert gc.isenabled()
