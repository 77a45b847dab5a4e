"""The embed stage's conformance checks: ``embed()`` gives one finite float32 unit row per text,
whatever the order or batch, and ``model_key()`` a non-empty key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from causalrec_assets.stages.conformance import Kit
from causalrec_assets.stages.kit_frames import fail
from causalrec_toolkit.embeddings import item_texts

STAGE = "embed"

ODD_TEXTS = ["", "   ", "word " * 4000, "😀 naïve café – 東京 Ελλάδα", "\x00\t\n\r", "12345"]
"""Empty, blank, very long, non-ASCII and control-character texts: each must still get a vector."""


@dataclass
class Embedded:
    """The regular run: the vectors of the world's item texts, the model key, and the instance."""

    vectors: Any
    key: Any
    plugin: Any


def texts(kit: Kit) -> list[str]:
    return item_texts(kit.world.items)


def run(kit: Kit) -> Embedded:
    plugin = kit.make()
    vectors = kit.call("embed()", lambda: plugin.embed(texts(kit), kit.context()))
    return Embedded(vectors, kit.call("model_key()", plugin.model_key), plugin)


def same(a: Embedded, b: Embedded) -> str | None:
    if a.key != b.key:
        return f"model_key() {a.key!r} vs {b.key!r}"
    if np.shape(a.vectors) != np.shape(b.vectors) or not np.allclose(a.vectors, b.vectors, atol=1e-6, rtol=0):
        return "the vectors"
    return None


def regular(kit: Kit) -> tuple[np.ndarray, Any]:
    """The regular run's vectors, checked to be an array, and the plugin instance."""
    out = kit.main_or_fail()
    if not isinstance(out.vectors, np.ndarray):
        fail(f"embed() must return a numpy array, got {type(out.vectors).__name__}")
    return out.vectors, out.plugin


def embed(kit: Kit, plugin: Any, batch: Sequence[str], what: str) -> np.ndarray:
    return np.asarray(kit.call(what, lambda: plugin.embed(batch, kit.context())))


def check_unit_rows(vectors: np.ndarray, what: str) -> None:
    """Fail unless every row is finite with unit L2 norm."""
    if not np.isfinite(vectors).all():
        fail(f"{what}: {int((~np.isfinite(vectors)).any(axis=1).sum())} row(s) hold NaN or inf")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    off = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
    if off.size:
        fail(f"{what}: rows must have unit L2 norm; row {int(off[0])} has norm {norms[off[0]]:.4f}")


def check_output_schema(kit: Kit) -> str:
    vectors, plugin = regular(kit)
    n = len(texts(kit))
    if vectors.ndim != 2 or vectors.shape[0] != n or vectors.shape[1] < 1:
        fail(f"embed() of {n} texts must have shape ({n}, dim), got {vectors.shape}")
    key = kit.main.key
    if not (isinstance(key, str) and key):
        fail(f"model_key() must return a non-empty str, got {key!r}")
    runtime = kit.call("describe_runtime()", plugin.describe_runtime)
    if not isinstance(runtime, Mapping):
        fail(f"describe_runtime() must return a dict, got {type(runtime).__name__}")
    return f"dim {vectors.shape[1]}"


def check_dtypes(kit: Kit) -> str:
    vectors, _ = regular(kit)
    if vectors.dtype != np.float32:
        fail(f"embed() must return float32, got {vectors.dtype}")
    return ""


def check_row_invariants(kit: Kit) -> str:
    vectors, plugin = regular(kit)
    check_unit_rows(vectors, "embed()")
    given = texts(kit)
    again = embed(kit, plugin, given[::-1], "embed() of the texts reversed")
    if again.shape != vectors.shape or not np.allclose(again[::-1], vectors, atol=1e-4, rtol=0):
        fail("a text's vector depends on the other texts in the call (reversed order gave other vectors)")
    some = embed(kit, plugin, given[:2] + given[:1], "embed() of three texts")
    if some.shape != (3, vectors.shape[1]) or not np.allclose(some, vectors[[0, 1, 0]], atol=1e-4, rtol=0):
        fail("a text's vector depends on the batch it is in (a subset gave other vectors)")
    return "unit rows, independent of order and batch"


def check_empty_input(kit: Kit) -> str:
    vectors, plugin = regular(kit)
    empty = kit.call("embed([])", lambda: plugin.embed([], kit.context()))
    if not isinstance(empty, np.ndarray) or empty.shape != (0, vectors.shape[1]):
        fail(f"embed([]) must return an array of shape (0, {vectors.shape[1]}), got {np.shape(empty)}")
    if empty.dtype != np.float32:
        fail(f"embed([]) must be float32, got {empty.dtype}")
    return ""


def check_malformed_input(kit: Kit) -> str:
    vectors, plugin = regular(kit)
    what = "embed() of empty, long and unusual texts"
    odd = embed(kit, plugin, ODD_TEXTS, what)
    if odd.shape != (len(ODD_TEXTS), vectors.shape[1]):
        fail(f"embed() of {len(ODD_TEXTS)} unusual texts returned shape {odd.shape}")
    check_unit_rows(odd, what)
    return ""
