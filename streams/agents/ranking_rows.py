"""Changelog rows of the rankings a shard summarised and the desk has not lit yet, so a
crash does not lose their rank alerts: a restarted partition lights them when the desk's
boundaries come (``Summarizer.restore``).

A ranking is one row per side and chunk: a side of a large symbol holds ~100k positions
per partition at the Hyperliquid scale, far over a Kafka message's 1 MB, so a chunk
holds at most ``CHUNK_ENTRIES`` positions and ``CHUNK_NAME_BYTES`` of account names
(names are at most 256 characters: ``engine.decode``). Each row is a numpy ``.npz``
(loaded with ``allow_pickle=False``: a changelog row never runs code) of the side's
columns; its first column says which chunk of how many it is and how many sides the
ranking has, so a ranking some of whose rows never reached the changelog (a crash while
they were sent) is recognised and dropped: its mark was not committed, it is applied
and summarised again.

Key: ``{partition}:{symbol}:{ranked_at_ms}:{side}:{chunk}``. Rows are deleted
(tombstones) when the ranking is lit or dropped."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterable, Iterator
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from streams.engine.queue import SideRanking
from streams.engine.summary import SummarisedRanking

log = logging.getLogger("adl_monitor.agents.ranking_rows")
CHUNK_ENTRIES = 5_000
CHUNK_NAME_BYTES = 512 * 1024
NO_SIDE = "none"  # the side of the one row of a ranking with no side
Row = tuple[bytes, bytes]


def _names(accounts: npt.NDArray[np.str_]) -> list[bytes]:
    return [a.encode() for a in accounts.tolist()]


def _chunk_edges(names: list[bytes]) -> list[int]:
    """Where each chunk of a side starts, and its end."""
    edges, size = [0], 0
    for k, name in enumerate(names):
        if k > edges[-1] and (
            k - edges[-1] >= CHUNK_ENTRIES or size + len(name) > CHUNK_NAME_BYTES
        ):
            edges.append(k)
            size = 0
        size += len(name) + 1
    edges.append(len(names))
    return edges


def _key(partition: int, sym: str, ranking: SummarisedRanking, side: str, chunk: int) -> bytes:
    return f"{partition}:{sym}:{ranking.ranked_at_ms}:{side}:{chunk}".encode()


def ranking_rows(partition: int, sym: str, ranking: SummarisedRanking) -> list[Row]:
    """The rows that keep ``ranking`` (key, value)."""
    if not ranking.sides:  # nothing ranked at that mark: one row says so
        out = io.BytesIO()
        np.savez(out, meta=np.array([ranking.ranked_at_ms, 0, 0, 1, 0], dtype=np.int64))
        return [(_key(partition, sym, ranking, NO_SIDE, 0), out.getvalue())]
    rows = []
    for side, (queue, buckets) in sorted(ranking.sides.items()):
        names = _names(queue.accounts)
        edges = _chunk_edges(names)
        chunks = len(edges) - 1
        for c, (a, b) in enumerate(pairwise(edges)):
            out = io.BytesIO()
            meta = [ranking.ranked_at_ms, queue.mark_price, c, chunks, len(ranking.sides)]
            np.savez(
                out,
                meta=np.array(meta, dtype=np.int64),
                names=np.frombuffer(b"\n".join(names[a:b]), dtype=np.uint8),
                sizes=queue.sizes[a:b],
                scores=queue.scores[a:b],
                opened=queue.opened[a:b],
                entries=queue.entries[a:b],
                buckets=buckets[a:b],
            )
            rows.append((_key(partition, sym, ranking, side, c), out.getvalue()))
    return rows


def ranking_keys(partition: int, sym: str, ranking: SummarisedRanking) -> list[bytes]:
    """The keys of ``ranking_rows`` (to delete them)."""
    if not ranking.sides:
        return [_key(partition, sym, ranking, NO_SIDE, 0)]
    return [
        _key(partition, sym, ranking, side, c)
        for side, (queue, _) in sorted(ranking.sides.items())
        for c in range(len(_chunk_edges(_names(queue.accounts))) - 1)
    ]


def _side(value: bytes) -> tuple[list[int], list[str], dict[str, npt.NDArray[np.generic]]]:
    with np.load(io.BytesIO(value), allow_pickle=False) as z:
        columns = {name: z[name] for name in z.files}
    meta = [int(v) for v in columns.pop("meta")]
    if len(meta) != 5:
        raise ValueError(f"a ranking row's meta has {len(meta)} fields, not 5")
    if meta[4] == 0:  # the row of a ranking with no side
        return meta, [], {}
    text = bytes(columns.pop("names")).decode()
    return meta, text.split("\n") if len(columns["sizes"]) else [], columns


def decode_rankings(partition: int, rows: Iterable[Row]) -> Iterator[tuple[str, SummarisedRanking]]:
    """The partition's whole rankings among ``rows`` (every partition's, as a process
    holds them), each once, oldest first per symbol; incomplete ones left out."""
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
        if list(sides) == [NO_SIDE]:
            yield sym, SummarisedRanking(ts, {})
            continue
        for side, parts in sorted(sides.items()):
            try:
                read = [_side(parts[c]) for c in sorted(parts)]
            except (ValueError, KeyError, IndexError, OSError, zipfile.BadZipFile):
                log.warning("partition %d: a kept ranking's row of %s at %d is unreadable: "
                            "dropped", partition, sym, ts)  # fmt: skip
                break
            meta = read[0][0]
            names = [name for _, chunk_names, _ in read for name in chunk_names]
            cols = {n: np.concatenate([c[n] for _, _, c in read]) for n in read[0][2]}
            if sorted(parts) != list(range(meta[3])) or len(names) != len(cols["sizes"]):
                break
            queue = SideRanking(
                side=side,
                accounts=np.array(names, dtype=np.str_),
                sizes=cols["sizes"].astype(np.int64),
                scores=cols["scores"].astype(np.float64),
                opened=cols["opened"].astype(np.int64),
                mark_price=meta[1],
                lights=np.zeros(len(names), dtype=np.int64),
                entries=cols["entries"].astype(np.float64),
            )
            decoded[side] = (queue, cols["buckets"].astype(np.int64))
            if meta[4] != len(sides):
                break
        else:
            yield sym, SummarisedRanking(ts, decoded)
