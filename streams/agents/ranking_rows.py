"""Changelog rows of the rankings a shard summarised and the desk has not lit yet, so a
crash does not lose their rank alerts: a restarted partition lights them when the desk's
boundaries come (``Summarizer.restore``).

A ranking is one row per side and chunk: a side of a large symbol holds ~100k positions
per partition at the Hyperliquid scale, far over a Kafka message's 1 MB, so a chunk
holds at most ``CHUNK_ENTRIES`` positions and ``CHUNK_NAME_BYTES`` of account names
(names are at most 256 characters: ``engine.decode``). A row is plain bytes, read by
offsets (nothing in it is ever executed or unpickled): ``HEADER`` (a version, the
ranking's time and mark price, which chunk of how many, how many sides, the chunk's
positions, its names' bytes), then, zlib-compressed (level 1), four little-endian
8-byte columns (sizes, scores, opening numbers, score buckets) and the names joined by
newlines (names hold no control characters). That is all a kept ranking is read for:
lighting it (``QueueTable.light_at`` reads accounts, openings and the scores its alerts
carry, ``reaches_from_cuts`` buckets and sizes); its entry prices are not kept (NaN
when read back: only a live ranking's head shows them). A ranking some
of whose rows never reached the changelog (a crash while they were sent) is recognised
by the counts and dropped: its mark was not committed, it is applied and summarised
again. (An ``.npz`` per row, first tried, cost 141 us a row and 3.3 KB of zip headers:
14% of stage A on the bundled cascade.)

Rows are written at every lit mark of every symbol, for every position, and deleted a
moment later: at 200,000 accounts they were ~10 MB/s through the broker with five
uncompressed columns (version 1, still read: a changelog written before an upgrade).
Version 2 (one column fewer, compressed) is several times smaller where names repeat
their shape (``bench_shards.py`` prints the bytes). Reading one never inflates past the
size its header states.

Key: ``{partition}:{symbol}:{ranked_at_ms}:{side}:{chunk}``. Rows are deleted
(tombstones) when the ranking is lit or dropped."""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterable, Iterator, MutableMapping
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from streams.engine.queue import SideRanking
from streams.engine.summary import SummarisedRanking

log = logging.getLogger("adl_monitor.agents.ranking_rows")
CHUNK_ENTRIES = 5_000
CHUNK_NAME_BYTES = 512 * 1024
NO_SIDE = "none"  # the side of the one row of a ranking with no side
VERSION = 2
# version, ranked_at_ms, mark_price, chunk, chunks, sides, positions, names' bytes
HEADER = struct.Struct("<8q")
COLUMNS = (("sizes", "<i8"), ("scores", "<f8"), ("opened", "<i8"), ("buckets", "<i8"))
# version 1 (uncompressed, with scores and entry prices): read, no longer written
COLUMNS_V1 = (("sizes", "<i8"), ("scores", "<f8"), ("opened", "<i8"), ("entries", "<f8"),
              ("buckets", "<i8"))  # fmt: skip
COLUMNS_OF = {1: COLUMNS_V1, VERSION: COLUMNS}
COMPRESS_LEVEL = 1  # zlib's fastest: most of the size goes at level 1 already
Row = tuple[bytes, bytes]


def _chunk_edges(accounts: npt.NDArray[np.str_]) -> list[int]:
    """Where each chunk of a side starts, and its end: at most ``CHUNK_ENTRIES``
    positions and ``CHUNK_NAME_BYTES`` of names a chunk, a name counted at 4 bytes a
    character (UTF-8's most) plus its newline: known from the ranking alone, so the
    keys to delete are found without encoding the names again. O(chunks) in Python."""
    n = len(accounts)
    if n == 0:
        return [0, 0]
    cum = np.cumsum(4 * np.char.str_len(accounts).astype(np.int64) + 1)
    edges = [0]
    while edges[-1] < n:
        a = edges[-1]
        before = int(cum[a - 1]) if a else 0
        fits = int(np.searchsorted(cum, before + CHUNK_NAME_BYTES, side="right"))
        edges.append(min(a + CHUNK_ENTRIES, max(fits, a + 1), n))
    return edges


def _key(partition: int, sym: str, ranking: SummarisedRanking, side: str, chunk: int) -> bytes:
    return f"{partition}:{sym}:{ranking.ranked_at_ms}:{side}:{chunk}".encode()


def ranking_rows(partition: int, sym: str, ranking: SummarisedRanking) -> list[Row]:
    """The rows that keep ``ranking`` (key, value)."""
    if not ranking.sides:  # nothing ranked at that mark: one row says so
        header = HEADER.pack(VERSION, ranking.ranked_at_ms, 0, 0, 1, 0, 0, 0)
        return [(_key(partition, sym, ranking, NO_SIDE, 0), header + zlib.compress(b""))]
    rows = []
    for side, (queue, buckets) in sorted(ranking.sides.items()):
        accounts = queue.accounts
        names = accounts.tolist()
        edges = _chunk_edges(accounts)
        chunks = len(edges) - 1
        columns = (queue.sizes, queue.scores, queue.opened, buckets)
        for c, (a, b) in enumerate(pairwise(edges)):
            text = "\n".join(names[a:b]).encode()
            header = HEADER.pack(
                VERSION,
                ranking.ranked_at_ms,
                queue.mark_price,
                c,
                chunks,
                len(ranking.sides),
                b - a,
                len(text),
            )
            body = b"".join(
                [
                    *(
                        np.ascontiguousarray(col[a:b], dtype=dtype).tobytes()
                        for col, (_, dtype) in zip(columns, COLUMNS, strict=True)
                    ),
                    text,
                ]
            )
            value = header + zlib.compress(body, COMPRESS_LEVEL)
            rows.append((_key(partition, sym, ranking, side, c), value))
    return rows


def ranking_keys(partition: int, sym: str, ranking: SummarisedRanking) -> list[bytes]:
    """The keys of ``ranking_rows`` (to delete them)."""
    if not ranking.sides:
        return [_key(partition, sym, ranking, NO_SIDE, 0)]
    return [
        _key(partition, sym, ranking, side, c)
        for side, (queue, _) in sorted(ranking.sides.items())
        for c in range(len(_chunk_edges(queue.accounts)) - 1)
    ]


def write_changes(
    table: MutableMapping[bytes, bytes],
    partition: int,
    changes: Iterable[tuple[str, SummarisedRanking, bool]],
) -> bool:
    """Follow ``Shard.ranking_changes`` in ``table`` (the changelog table, or any
    mapping): a kept ranking's rows written, a forgotten one's deleted. Returns whether
    any row was written (the caller delivers them before the summaries)."""
    written = False
    for sym, ranking, kept in changes:
        if kept:
            for key, value in ranking_rows(partition, sym, ranking):
                table[key] = value
            written = True
        else:
            for key in ranking_keys(partition, sym, ranking):
                if key in table:  # a Faust table's ``pop`` would read the key first
                    del table[key]
    return written


def _chunk(value: bytes) -> tuple[list[int], list[str], dict[str, npt.NDArray[np.generic]]]:
    """(header fields, names, columns) of one row; ``ValueError`` if it is not one. A
    version 2 row's body is inflated to the size its header states, never further."""
    if len(value) < HEADER.size:
        raise ValueError(f"a ranking row of {len(value)} bytes")
    meta = list(HEADER.unpack_from(value))
    version, _, _, _, _, sides, count, text_bytes = meta
    columns_of = COLUMNS_OF.get(version)
    if columns_of is None or count < 0 or text_bytes < 0:
        raise ValueError(f"a ranking row's header {meta}")
    size = 8 * len(columns_of) * count + text_bytes
    if version == 1:
        body = memoryview(value)[HEADER.size :].tobytes()
    else:
        inflate = zlib.decompressobj()
        try:
            body = inflate.decompress(memoryview(value)[HEADER.size :], size + 1)
        except zlib.error as e:
            raise ValueError(f"a ranking row's body does not inflate: {e}") from None
        if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
            raise ValueError("a ranking row's body is not one whole zlib stream")
    if len(body) != size:
        raise ValueError("a ranking row's length does not match its header")
    columns, at = {}, 0
    for name, dtype in columns_of:
        columns[name] = np.frombuffer(body, dtype=dtype, count=count, offset=at)
        at += 8 * count
    names = body[at:].decode().split("\n") if count else []
    if sides and len(names) != count:
        raise ValueError("a ranking row's names do not match its count")
    return meta, names, columns


def decode_rankings(partition: int, rows: Iterable[Row]) -> Iterator[tuple[str, SummarisedRanking]]:
    """The partition's whole rankings among ``rows`` (every partition's, as a process
    holds them), each once, oldest first per symbol; incomplete or unreadable ones left
    out (logged)."""
    chunks: dict[tuple[str, int], dict[str, dict[int, bytes]]] = {}
    for key, value in rows:
        try:
            p, rest = key.decode().split(":", 1)
            sym, at, side, chunk = rest.rsplit(":", 3)  # a symbol may hold a colon
            mine = int(p) == partition
            place = (sym, int(at)), side, int(chunk)
        except ValueError:
            log.warning("a kept ranking's row key %r is not ours: ignored", key[:80])
            continue
        if mine:
            chunks.setdefault(place[0], {}).setdefault(place[1], {})[place[2]] = value
    for (sym, ts), sides in sorted(chunks.items()):
        decoded = {}
        for side, parts in sorted(sides.items()):
            try:
                read = [_chunk(parts[c]) for c in sorted(parts)]
            except (ValueError, UnicodeDecodeError):
                log.warning("partition %d: a kept ranking's row of %s at %d is unreadable: "
                            "dropped", partition, sym, ts)  # fmt: skip
                break
            meta = read[0][0]
            if meta[5] == 0 and list(sides) == [NO_SIDE]:  # a ranking with no side
                continue
            if sorted(parts) != list(range(meta[4])) or meta[5] != len(sides):
                break  # a chunk or a side missing
            names = [name for _, chunk_names, _ in read for name in chunk_names]
            cols = {n: np.concatenate([c[n] for _, _, c in read]) for n, _ in COLUMNS}
            queue = SideRanking.of_accounts(  # entries not kept: lighting does not read them
                side,
                names,
                sizes=cols["sizes"].astype(np.int64),
                scores=cols["scores"].astype(np.float64),
                opened=cols["opened"].astype(np.int64),
                mark_price=meta[2],
            )
            decoded[side] = (queue, cols["buckets"].astype(np.int64))
        else:
            yield sym, SummarisedRanking(ts, decoded)
