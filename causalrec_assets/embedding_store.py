"""A content-addressed store of embeddings: ``text_hash -> vector``, one folder per model key.

Re-materializing the embed stage looks every text's hash up here and embeds only what is
missing. Vectors can never cross model keys: each key has its own folder, and the hash
itself covers the key (``embeddings.text_hash``). Every run appends shard files (written
atomically, so parallel partitions and crashed runs never leave half a file); lookups stream
one shard at a time, so memory stays bounded; many small shards are compacted into one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("causalrec.embedding_store")

ROWS_PER_SHARD = 100_000  # bounds both a shard's size and the memory of one lookup step
COMPACT_AFTER = 32  # shards per key before they are merged


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)[:120]


class EmbeddingStore:
    """Vectors of one model key under ``root/embeddings/<model_key>/``."""

    def __init__(self, root: Path, model_key: str) -> None:
        self.model_key = model_key
        self.folder = Path(root) / "embeddings" / _safe(model_key)

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.parquet")) if self.folder.is_dir() else []

    def lookup(self, hashes: pl.Series) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions in hashes, vectors)`` for the hashes the store holds, shard by shard.
        An unreadable shard is skipped with a warning: the worst case is recomputation."""
        wanted = pl.DataFrame({"text_hash": hashes.cast(pl.String)}).with_row_index("pos")
        found = np.zeros(len(hashes), dtype=bool)
        for shard in self.shards():
            try:
                stored = pl.read_parquet(shard, columns=["text_hash", "embedding"])
            except Exception as exc:  # truncated or foreign file
                log.warning("ignoring unreadable embedding shard %s: %s", shard, exc)
                continue
            hit = wanted.filter(pl.Series(~found)).join(stored, on="text_hash", how="inner")
            if hit.is_empty():
                continue
            hit = hit.unique("pos", keep="first")
            positions = hit["pos"].to_numpy().astype(np.int64)
            found[positions] = True
            yield positions, hit["embedding"].to_numpy()

    def append(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Write new vectors as shard files of at most ROWS_PER_SHARD rows."""
        if not hashes:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        dim = vectors.shape[1]
        for start in range(0, len(hashes), ROWS_PER_SHARD):
            part = np.ascontiguousarray(vectors[start : start + ROWS_PER_SHARD], dtype=np.float32)
            table = pa.table(
                {
                    "text_hash": pa.array(hashes[start : start + ROWS_PER_SHARD], type=pa.string()),
                    "embedding": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), dim),
                }
            )
            self._write(table)
        if len(self.shards()) > COMPACT_AFTER:
            self.compact()

    def _write(self, table: pa.Table) -> None:
        name = f"{uuid.uuid4().hex}.parquet"
        tmp = self.folder / f".{name}.tmp"
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.folder / name)
        finally:
            tmp.unlink(missing_ok=True)

    def compact(self) -> None:
        """Merge the shards into ROWS_PER_SHARD-row files, dropping duplicate hashes. One process at
        a time (a lock file); a run that finds the lock held just skips compaction."""
        with open(self.folder / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return
            old = self.shards()
            merged = (
                pl.concat([pl.read_parquet(s) for s in old], how="vertical").unique("text_hash", keep="first")
                if old
                else None
            )
            if merged is None:
                return
            for start in range(0, merged.height, ROWS_PER_SHARD):
                self._write(merged.slice(start, ROWS_PER_SHARD).to_arrow())
            for shard in old:
                shard.unlink(missing_ok=True)
            log.info("compacted %d embedding shards of %s", len(old), self.model_key)
