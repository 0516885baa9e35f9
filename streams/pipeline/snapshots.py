"""The worker's state as a snapshot: a start reads the last one and the input after it,
not the whole input history (a restart after months of fills took as long as replaying
them, and the inputs had to be kept forever).

A snapshot is the engine pickled, with the input sequence it was taken at, the event
time last applied, and per input partition where to read again: the first offset not
yet applied, and the offsets after it already applied (canonical order is by event
time: a partition's later offset may be applied before an earlier one still buffered).
Pickled, not rebuilt from account rows: the restarted worker must recompute the very
outputs an uninterrupted one writes, bytes included, and a state rebuilt from rows
re-evaluates every account at the latest marks (its rankings' float scores then differ
in the last bits from the run's).

It is written in the transaction that commits the outputs of every event it holds,
after the progress record (committed together or not at all), in chunks below the
broker's message size, to a compacted topic: the chunks first, then a header naming
them. Unpickling runs code, so a snapshot is signed (HMAC-SHA256 with the operator's
key, ``ADL_SNAPSHOT_KEY[_FILE]``) and one whose signature does not verify is refused: a
client able to write to the topic but without the key cannot run code in the worker.
It carries a digest of the engine's source: a snapshot of another version of the
engine is not loaded (the worker replays the history instead, if it is still there).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from streams.engine.engine import Engine
from streams.pipeline.memory import collector_paused

HEADER_KEY = b"header"
CHUNK_BYTES = 512 * 1024  # below the broker's default message limit (~1 MB)
_ID_BYTES = 16  # a snapshot's id, at the head of each of its chunks


@dataclass(slots=True)
class Snapshot:
    engine: Engine
    seq: int  # input events applied
    applied_ts: int  # event time of the last event applied
    # "topic:partition" -> (first offset not applied, offsets after it already applied)
    resume: dict[str, tuple[int, list[int]]] = field(default_factory=dict)


@cache
def engine_digest() -> str:
    """sha256 of the engine's source files: a snapshot is loaded only by the same engine."""
    root = Path(__file__).resolve().parent.parent / "engine"
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _signature(key: str, header: Mapping[str, Any], payload_sha256: str) -> str:
    fields = {k: v for k, v in header.items() if k != "mac"}
    message = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS) + payload_sha256.encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def encode(snapshot: Snapshot, key: str, snapshot_id: bytes) -> list[tuple[bytes, bytes]]:
    """(message key, value) pairs to write in order: the chunks, then the header."""
    records: list[tuple[bytes, bytes]] = []
    write_records(snapshot, key, snapshot_id, lambda k, v: records.append((k, v)))
    return records


def write_records(
    snapshot: Snapshot, key: str, snapshot_id: bytes, emit: Callable[[bytes, bytes], None]
) -> None:
    """``emit`` each (message key, value) to write, in order: the chunks as the pickle is
    made and compressed (the whole pickle is never held: ~650 MB at the preset's scale),
    then the header with their count and signature."""
    if len(snapshot_id) != _ID_BYTES:
        raise ValueError(f"a snapshot id is {_ID_BYTES} bytes, got {len(snapshot_id)}")
    out = _ChunkWriter(snapshot_id, emit)
    pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(snapshot.engine)
    out.close()
    header: dict[str, Any] = {
        "id": snapshot_id.hex(),
        "chunks": out.chunks,
        "seq": snapshot.seq,
        "applied_ts": snapshot.applied_ts,
        "resume": {where: [first, done] for where, (first, done) in snapshot.resume.items()},
        "engine": engine_digest(),
    }
    header["mac"] = _signature(key, header, out.payload_sha256.hexdigest())
    emit(HEADER_KEY, orjson.dumps(header))


class _ChunkWriter:
    """A file for the pickler: compresses what it is given (zlib level 1) and emits the
    compressed stream in ``CHUNK_BYTES`` chunks, each behind the snapshot's id."""

    def __init__(self, snapshot_id: bytes, emit: Callable[[bytes, bytes], None]) -> None:
        self.snapshot_id = snapshot_id
        self.emit = emit
        self.chunks = 0
        self.payload_sha256 = hashlib.sha256()
        self._zlib = zlib.compressobj(1)
        self._pending = bytearray()

    def write(self, data: bytes | pickle.PickleBuffer) -> int:
        # bytes, or (protocol 5, a large array's data) a PickleBuffer: any buffer
        view = memoryview(data)
        self._pending += self._zlib.compress(view)
        while len(self._pending) >= CHUNK_BYTES:
            self._emit(bytes(self._pending[:CHUNK_BYTES]))
            del self._pending[:CHUNK_BYTES]
        return view.nbytes

    def close(self) -> None:
        self._pending += self._zlib.flush()
        if self._pending or not self.chunks:  # an empty payload is one empty chunk
            self._emit(bytes(self._pending))
        self._pending = bytearray()

    def _emit(self, chunk: bytes) -> None:
        self.payload_sha256.update(chunk)
        self.emit(b"chunk:%d" % self.chunks, self.snapshot_id + chunk)
        self.chunks += 1


class SnapshotRefused(Exception):
    """A snapshot was found and not loaded: the reason, for the log."""


def decode(records: Iterable[tuple[bytes | None, bytes | None]], key: str) -> Snapshot | None:
    """The last complete snapshot among the topic's ``records`` (in offset order), checked
    and unpickled; ``None`` if there is none. Raises ``SnapshotRefused`` if the last one
    does not verify (signature, engine version) or does not decode."""
    chunks: dict[int, bytes] = {}
    last: tuple[dict[str, Any], bytes] | None = None
    for message_key, value in _records(records):
        if message_key.startswith(b"chunk:"):
            index = int(message_key[6:])
            chunks[index] = value
        elif message_key == HEADER_KEY:
            try:
                header = orjson.loads(value)
                snapshot_id = bytes.fromhex(header["id"])
                parts = [chunks.get(k, b"") for k in range(int(header["chunks"]))]
            except (ValueError, KeyError, TypeError):  # not a header this module wrote
                continue
            if all(p[:_ID_BYTES] == snapshot_id for p in parts):  # all written before it
                last = header, b"".join(p[_ID_BYTES:] for p in parts)
    if last is None:
        return None
    header, payload = last
    if not hmac.compare_digest(
        str(header.get("mac", "")), _signature(key, header, hashlib.sha256(payload).hexdigest())
    ):
        raise SnapshotRefused("its signature does not verify with ADL_SNAPSHOT_KEY")
    if header["engine"] != engine_digest():
        raise SnapshotRefused("written by another version of the engine")
    try:
        # signed with the operator's key above: not data from just any writer; the
        # collector paused: millions of objects that all live on (437k accounts: 10.3 s
        # instead of 25.8 s), then frozen: no full collection walks them again
        with collector_paused(freeze=True):
            engine = pickle.loads(zlib.decompress(payload))  # noqa: S301
        resume = {where: (int(first), [int(o) for o in done]) for where, (first, done) in
                  header["resume"].items()}  # fmt: skip
        snapshot = Snapshot(engine, int(header["seq"]), int(header["applied_ts"]), resume)
    except Exception as exc:  # signed, yet does not load: say why, replay the history
        raise SnapshotRefused(f"does not load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(engine, Engine):
        raise SnapshotRefused(f"holds a {type(engine).__name__}, not an engine")
    return snapshot


def _records(
    records: Iterable[tuple[bytes | None, bytes | None]],
) -> Iterator[tuple[bytes, bytes]]:
    for message_key, value in records:
        if message_key is not None and value is not None:
            yield message_key, value
