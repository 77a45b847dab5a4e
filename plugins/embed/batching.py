"""Texts to padded ONNX feeds: tokenised in a background thread, bucketed by token length.

Tokenisation runs one chunk ahead of inference (a bounded queue), so the runtime never waits
for it and memory stays bounded however many texts stream through. Within a chunk, texts are
sorted by token count and cut into batches, so each batch pads only to its own longest text.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    rows: np.ndarray  # positions of these texts in the caller's sequence
    feed: dict[str, np.ndarray]  # input_ids, attention_mask, token_type_ids (int64)
    tokens: int  # real (unpadded) tokens in the batch


def clean_texts(texts: Sequence[object]) -> list[str]:
    """None -> "", anything else -> str: no text crashes the tokenizer."""
    return ["" if t is None else str(t) for t in texts]


def pack(encodings: list, rows: np.ndarray, start: int, pad_id: int) -> Batch:
    """One batch, padded to its own longest text (``rows`` index ``encodings``)."""
    lengths = [len(encodings[i].ids) for i in rows]
    width = max(lengths)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, (i, n) in enumerate(zip(rows, lengths, strict=True)):
        ids[r, :n] = encodings[i].ids
        mask[r, :n] = 1
    # Single-sequence token types are all 0 (BERT-style tokenizers): no need to copy them.
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return Batch(rows=rows + start, feed=feed, tokens=int(sum(lengths)))


def chunk_batches(tokenizer, texts: list[str], start: int, batch_size: int, pad_id: int) -> list[Batch]:
    """Tokenise one chunk and cut it into length-sorted batches (longest first)."""
    encodings = tokenizer.encode_batch(texts)
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    order = np.argsort(-lengths, kind="stable")
    size = max(1, batch_size)
    return [pack(encodings, order[s : s + size], start, pad_id) for s in range(0, len(order), size)]


def stream_batches(
    tokenizer, texts: Sequence[object], batch_size: int, pad_id: int, chunk_size: int = 8192
) -> Iterator[Batch]:
    """Batches over ``texts`` in chunk order, produced by a background tokenising thread."""
    chunk_size = max(chunk_size, batch_size)
    if len(texts) <= chunk_size:  # small inputs: no thread to start
        yield from chunk_batches(tokenizer, clean_texts(texts), 0, batch_size, pad_id)
        return
    out: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for start in range(0, len(texts), chunk_size):
                if stop.is_set():
                    return
                chunk = clean_texts(texts[start : start + chunk_size])
                out.put(chunk_batches(tokenizer, chunk, start, batch_size, pad_id))
            out.put(done)
        except BaseException as exc:  # hand the error to the consumer
            out.put(exc)

    worker = threading.Thread(target=produce, name="causalrec-tokenize", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
