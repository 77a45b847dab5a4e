"""Item texts in, embedding tables out; user profiles from what users engaged with."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
from scipy.sparse import csr_matrix

from causalrec_toolkit.tables import attribute_columns
from causalrec_toolkit.variables import binarise_threshold

__all__ = [
    "EmbedStats",
    "Embedder",
    "count_missing_text",
    "embed_incremental",
    "embedding_frame",
    "embedding_frame_from",
    "item_texts",
    "shard_of",
    "text_hash",
    "user_profiles",
]


class Embedder(Protocol):
    """What ``embed_incremental`` needs of an encoder (every embed plugin has it)."""

    last_tokens: int

    def model_key(self) -> str: ...

    def embed(self, texts: Sequence[str], context: Any) -> np.ndarray: ...

    def iter_embed(self, texts: Sequence[str], context: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


def item_texts(items: pl.DataFrame) -> list[str]:
    """The text to embed for each item. Items without text (no ``text`` column, null or blank)
    fall back to their attributes ("price_tier: budget; color: red"), and to the item id when
    they have none, so every item gets a vector that says what is known about it."""
    attrs = attribute_columns(items)
    texts = items["text"].cast(pl.String).to_list() if "text" in items.columns else [None] * items.height
    rows = items.select(attrs).rows() if attrs else [()] * items.height
    out = []
    for item_id, text, values in zip(items["item_id"].to_list(), texts, rows, strict=True):
        if text is not None and text.strip():
            out.append(text)
            continue
        described = "; ".join(f"{a}: {v}" for a, v in zip(attrs, values, strict=True) if v is not None)
        out.append(described or f"item {item_id}")
    return out


def count_missing_text(items: pl.DataFrame) -> int:
    if "text" not in items.columns:
        return items.height
    return int(
        items.select((pl.col("text").is_null() | (pl.col("text").cast(pl.String).str.strip_chars() == "")).sum()).item()
    )


def text_hash(text: str, model_key: str) -> str:
    return hashlib.sha256(f"{model_key}\x00{text}".encode()).hexdigest()[:24]


def embedding_frame(item_ids: pl.Series, texts: list[str], vectors: np.ndarray, model_key: str) -> pl.DataFrame:
    """``item_id, text_hash, model_key, embedding`` (embedding: a fixed-size float32 array)."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    return pl.DataFrame(
        {
            "item_id": item_ids,
            "text_hash": [text_hash(t, model_key) for t in texts],
            "model_key": [model_key] * len(texts),
            "embedding": pl.Series("embedding", vectors.astype(np.float32), dtype=pl.Array(pl.Float32, dim)),
        }
    )


def user_profiles(train: pl.DataFrame, item_embeddings: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Each user's normalised mean embedding over the items they engaged with: positive
    outcomes (the pipeline's one rule, ``binarise_threshold``) where there are any, else what
    they were exposed to, else everything logged. Users with no training rows are left out;
    the count of users with engagement is returned."""
    outcome = train["outcome"].cast(pl.Float64)
    positive = outcome >= binarise_threshold(outcome)
    weighted = train.select("user_id", "item_id").with_columns(
        (positive.cast(pl.Int8) * 4 + train["exposure"].cast(pl.Int8) * 2 + 1).alias("tier")
    )
    best = weighted.group_by("user_id").agg(pl.col("tier").max().alias("best"))
    chosen = weighted.join(best, on="user_id").filter(
        (pl.col("tier") == pl.col("best")) | ((pl.col("tier") >= 4) & (pl.col("best") >= 4))
    )
    dim = (
        item_embeddings.schema["embedding"].size if isinstance(item_embeddings.schema["embedding"], pl.Array) else None
    )
    rows = item_embeddings.select("item_id").with_row_index("_i")
    joined = chosen.join(rows, on="item_id")
    if joined.is_empty() or dim is None:
        return pl.DataFrame(
            {"user_id": [], "embedding": []},
            schema={"user_id": train.schema["user_id"], "embedding": item_embeddings.schema["embedding"]},
        ), 0
    users, inverse = np.unique(joined["user_id"].to_numpy(), return_inverse=True)
    # one sparse (users x items) product: memory in users x dim, not in (engaged pairs x dim)
    members = csr_matrix(
        (np.ones(joined.height), (inverse.ravel(), joined["_i"].to_numpy())), shape=(len(users), item_embeddings.height)
    )
    vectors = item_embeddings["embedding"].to_numpy().astype(np.float64).reshape(item_embeddings.height, dim)
    sums = np.asarray(members @ vectors)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    profiles = (sums / np.where(norms == 0, 1, norms)).astype(np.float32)
    engaged = int(best.filter(pl.col("best") >= 4).height)
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(users).cast(train.schema["user_id"]),
            "embedding": pl.Series("embedding", profiles, dtype=pl.Array(pl.Float32, dim)),
        }
    )
    return frame, engaged


# ---------------------------------------------------------------- incremental embedding


@dataclass
class EmbedStats:
    """What a (re-)materialization of the embeddings did, for its metadata."""

    items: int = 0
    unique_texts: int = 0
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0  # the plugin's one-time start (model load; export on a cold cache)
    embed_seconds: float = 0.0
    tokens: int = 0
    model_key: str = ""

    def metadata(self) -> dict[str, float | int | str]:
        """Throughput counts only embedding (``embed_seconds``); the one-time start is ``load_seconds``."""
        rate = self.computed / self.embed_seconds if self.embed_seconds > 0 else 0.0
        return {
            "texts_computed": self.computed,
            "texts_reused": self.reused,
            "duplicate_texts": self.items - self.unique_texts,
            "texts_per_second": rate,
            "tokens_per_second": self.tokens / self.embed_seconds if self.embed_seconds > 0 else 0.0,
            "load_seconds": self.load_seconds,
            "embed_seconds": self.embed_seconds,
            "seconds": self.seconds,
            "model_key": self.model_key,
        }


def shard_of(hashes: pl.Series, shards: int) -> pl.Series:
    """Which of ``shards`` partitions a text hash belongs to (stable, uniform)."""
    return hashes.str.slice(0, 8).str.to_integer(base=16) % shards


def embed_incremental(
    plugin: Embedder, item_ids: pl.Series, texts: list[str], context: Any, store_root: Path | None
) -> tuple[pl.DataFrame, EmbedStats]:
    """The embedding table for these items, computing only texts the store lacks for this model key.

    One (items x dim) float32 array is filled in place, from the store shard by shard and from
    the plugin batch by batch, and handed to Polars without a copy: memory stays near the size
    of the result, whatever the number of items."""
    from causalrec_toolkit.embedding_store import ROWS_PER_SHARD, EmbeddingStore

    started = time.perf_counter()
    key = plugin.model_key()
    stats = EmbedStats(items=len(texts), model_key=key)
    hashes = pl.Series("text_hash", [text_hash(t, key) for t in texts], dtype=pl.String)
    firsts = (
        pl.DataFrame({"text_hash": hashes}).with_row_index("pos").unique("text_hash", keep="first", maintain_order=True)
    )
    unique_hashes, unique_pos = firsts["text_hash"], firsts["pos"].to_numpy()
    stats.unique_texts = len(unique_hashes)
    store = EmbeddingStore(store_root, key, getattr(context, "log", None)) if store_root is not None else None
    out: np.ndarray | None = None
    have = np.zeros(len(unique_hashes), dtype=bool)

    def place(rows: np.ndarray, vectors: np.ndarray) -> None:
        nonlocal out
        if out is None:
            out = np.empty((len(unique_hashes), vectors.shape[1]), dtype=np.float32)
        out[rows] = vectors
        have[rows] = True

    if store is not None:
        for rows, vectors in store.lookup(unique_hashes):
            place(rows, vectors)
    missing = np.flatnonzero(~have)
    stats.reused, stats.computed = int(have.sum()), len(missing)
    if len(missing):
        load_started = time.perf_counter()
        plugin.embed([""], context)  # loads the model (exports it on a cold cache) outside the throughput
        embed_started = time.perf_counter()
        stats.load_seconds = embed_started - load_started
        todo = [texts[i] for i in unique_pos[missing]]
        for rows, vectors in plugin.iter_embed(todo, context):
            place(missing[rows], vectors)
        stats.embed_seconds = time.perf_counter() - embed_started
        stats.tokens = int(plugin.last_tokens or 0)
        if store is not None:
            new_hashes = unique_hashes.gather(missing).to_list()
            for s in range(0, len(missing), ROWS_PER_SHARD):
                store.append(new_hashes[s : s + ROWS_PER_SHARD], out[missing[s : s + ROWS_PER_SHARD]])
    if out is None:  # no items at all: ask the plugin for its width
        out = np.zeros((0, np.asarray(plugin.embed([""], context)).shape[1]), dtype=np.float32)
    if stats.unique_texts < len(texts):  # duplicates: spread the unique vectors to every item
        inverse = pl.DataFrame({"text_hash": hashes}).join(
            firsts.with_row_index("u"), on="text_hash", how="left", maintain_order="left"
        )["u"]
        out = out[inverse.to_numpy()]
    frame = embedding_frame_from(item_ids, hashes, key, out)
    stats.seconds = time.perf_counter() - started
    return frame, stats


def embedding_frame_from(item_ids: pl.Series, hashes: pl.Series, key: str, vectors: np.ndarray) -> pl.DataFrame:
    """Like ``embedding_frame``, from precomputed hashes; the vectors pass to Arrow without a copy."""
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    column = pl.from_arrow(pa.FixedSizeListArray.from_arrays(flat, dim)).alias("embedding")
    return pl.DataFrame(
        {
            "item_id": item_ids,
            "text_hash": hashes,
            "model_key": pl.Series([key], dtype=pl.String).extend_constant(key, len(hashes) - 1)
            if len(hashes)
            else pl.Series([], dtype=pl.String),
            "embedding": column,
        }
    )
