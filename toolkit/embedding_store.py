"""A content-addressed store of embeddings: ``text_hash -> vector``, one folder per model key.

Re-materializing the embed stage looks every text's hash up here and embeds only what is
missing. Vectors can never cross model keys: each key has its own folder, and the hash
itself covers the key (``embeddings.text_hash``). Every run appends shard files, each with a
sidecar ``<shard>.json`` (its sha256, size, rows and model key) written before the shard is
renamed into place, so parallel partitions and crashed runs never leave half a file that is
trusted. A shard is hashed when it is read: one whose bytes or key differ from its sidecar is
refused with a warning and removed, so its vectors are recomputed. Lookups stream one shard
at a time, so memory stays bounded; many small shards are compacted into one.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from causalrec_toolkit.files import atomic_path, atomic_write_text, file_record, record_problem

__all__ = [
    "COMPACT_AFTER",
    "EmbeddingStore",
    "ROWS_PER_SHARD",
]

log = logging.getLogger("causalrec.embedding_store")

ROWS_PER_SHARD = 100_000  # bounds both a shard's size and the memory of one lookup step
COMPACT_AFTER = 32  # shards per key before they are merged


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)[:120]


def _problem(meta: object, data: bytes, model_key: str) -> str | None:
    """What is wrong with a shard's bytes against its sidecar, or None."""
    if not isinstance(meta, dict):
        return "no readable sidecar"
    if meta.get("model_key") != model_key:
        return f"written for model key {meta.get('model_key')!r}"
    return record_problem("the shard", file_record(data), meta)


class EmbeddingStore:
    """Vectors of one model key under ``root/embeddings/<model_key>/``."""

    def __init__(self, root: Path, model_key: str, logger: Any = None) -> None:
        self.model_key = model_key
        self.log = logger or log  # a Dagster run's logger, so refusals show in the UI
        self.folder = Path(root) / "embeddings" / _safe(model_key)

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.parquet")) if self.folder.is_dir() else []

    def _read(self, shard: Path) -> pl.DataFrame | None:
        """The shard's rows if its bytes are what its sidecar recorded for this model key; else
        None, after a warning (and removing it, so the recomputed vectors replace it)."""
        sidecar = shard.with_suffix(".json")
        try:
            meta = json.loads(sidecar.read_text())
            data = shard.read_bytes()  # read once: hashed, then parsed from memory
        except FileNotFoundError:
            if not shard.exists():  # compacted away meanwhile: not damage
                return None
            meta, data = None, b""
        except (OSError, ValueError):
            meta, data = None, b""
        problem = _problem(meta, data, self.model_key)
        if problem is None:
            try:
                frame = pl.read_parquet(io.BytesIO(data), columns=["text_hash", "embedding"])
                if frame.height != meta["rows"]:
                    problem = f"{frame.height} rows, the sidecar says {meta['rows']}"
            except Exception as exc:  # noqa: BLE001  (a foreign file that hashes right)
                problem = f"unreadable: {exc}"
        if problem is None:
            return frame
        self.log.warning("refusing embedding shard %s: %s; its vectors will be recomputed", shard, problem)
        shard.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return None

    def lookup(self, hashes: pl.Series) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions in hashes, vectors)`` for the hashes the store holds, shard by shard.
        A shard that fails verification is skipped: the worst case is recomputation."""
        wanted = pl.DataFrame({"text_hash": hashes.cast(pl.String)}).with_row_index("pos")
        found = np.zeros(len(hashes), dtype=bool)
        for shard in self.shards():
            stored = self._read(shard)
            if stored is None:
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
        """Shard to a temporary name, then its sidecar into place, then the shard: a shard
        visible under its name always has its sidecar."""
        shard = self.folder / f"{uuid.uuid4().hex}.parquet"
        with atomic_path(shard) as tmp:
            pq.write_table(table, tmp)
            meta = file_record(tmp.read_bytes()) | {"rows": table.num_rows, "model_key": self.model_key}
            atomic_write_text(shard.with_suffix(".json"), json.dumps(meta))

    def compact(self) -> None:
        """Merge the shards into ROWS_PER_SHARD-row files, dropping duplicate hashes. One process at
        a time (a lock file); a run that finds the lock held just skips compaction."""
        with open(self.folder / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return
            old = self.shards()
            frames = [f for f in map(self._read, old) if f is not None]
            if not frames:
                return
            merged = pl.concat(frames, how="vertical").unique("text_hash", keep="first")
            for start in range(0, merged.height, ROWS_PER_SHARD):
                self._write(merged.slice(start, ROWS_PER_SHARD).to_arrow())
            for shard in old:  # the shard first: a shard never stands without its sidecar
                shard.unlink(missing_ok=True)
                shard.with_suffix(".json").unlink(missing_ok=True)
            log.info("compacted %d embedding shards of %s", len(old), self.model_key)
