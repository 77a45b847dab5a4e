"""The built-in embed plugin: any Hugging Face encoder, run by ONNX Runtime at full speed.

The model is exported once to ONNX (``onnx_export``) and rewritten once for the device
(``quantize``): on CPU, unfused attention + int8 with outlier channels kept in fp32; on a
GPU, every fusion + fp16, fed through IO binding. Every rewritten graph is checked against
the fp32 export on built-in probe texts before it is used; ``precision: auto`` takes the
fast graph only when it meets the accuracy floor, else fp32. Texts are tokenised one chunk
ahead in a background thread and batched by token length, so little padding is computed.
Every cached graph is re-hashed against its manifest before it is used (``verified_cache``),
and the model key names the sha256 of the graph that runs, so the embedding store can never
serve vectors of another graph.

The graph is resolved, built and gated in ``onnx_graph`` and run in ``onnx_session``; this
module holds the plugin class (its configuration, identity and embedding loop), and the
names callers import from it (``resolve_model``, the accuracy floors) stay importable here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from causalrec_assets.plugin_api import EmbedPlugin, PluginConfig, PluginContext
from causalrec_plugins.embed import onnx_export
from causalrec_plugins.embed.batching import clean_texts, stream_batches
from causalrec_plugins.embed.onnx_graph import (
    _DEFAULT_ALIASES,
    DEFAULT_MODEL,
    FP32_FLOOR,
    MEAN_FLOOR,
    MIN_FLOOR,
    PROBE_COUNT,
    GraphResolverMixin,
    _Graph,
    resolve_model,
)
from causalrec_plugins.embed.onnx_session import SessionRunnerMixin, _Runtime
from causalrec_plugins.embed.verified_cache import key_of
from causalrec_resources import onnx_runtime
from causalrec_resources.settings import current_settings

__all__ = [
    "DEFAULT_MODEL",
    "FP32_FLOOR",
    "MEAN_FLOOR",
    "MIN_FLOOR",
    "PRECISIONS",
    "PROBE_COUNT",
    "PROGRESS_SECONDS",
    "OnnxEncoderEmbed",
    "resolve_model",
]

PRECISIONS = ("auto", "fp32", "int8", "fp16")
PROGRESS_SECONDS = 10.0

log = logging.getLogger("causalrec.embed.onnx_encoder")


class OnnxEncoderEmbed(GraphResolverMixin, SessionRunnerMixin, EmbedPlugin):
    """Sentence embeddings from a Hugging Face encoder exported to ONNX (default all-MiniLM-L6-v2)."""

    class Config(PluginConfig):
        model: str = Field(
            default=DEFAULT_MODEL,
            description="'all-MiniLM-L6-v2' (packaged, offline), a local Hugging Face model directory, "
            "or an .onnx file with tokenizer.json beside it (its output: pooled vectors, or token "
            "states that `pooling` then pools).",
        )
        pooling: str = Field(default="mean", description="How token vectors become one vector: mean | cls.")
        normalize: bool = Field(
            default=True,
            description="L2-normalise the vectors (the embed stage's contract expects unit rows).",
        )
        max_length: int = Field(default=256, description="Tokens kept per text (longer texts are truncated).")
        batch_size: int = Field(default=0, description="Texts per ONNX Runtime call; 0: 64 on CPU, 512 on GPU.")
        precision: str = Field(
            default="auto",
            description="auto | fp32 | int8 | fp16. auto: int8 on CPU, fp16 on GPU, each only when it meets "
            f"the accuracy floor against fp32 on built-in probe texts (mean cosine >= {MEAN_FLOOR}, "
            f"min >= {MIN_FLOOR}), else fp32.",
        )
        prefer_gpu: bool = Field(
            default=True, description="Use the CUDA execution provider when a GPU is really present."
        )
        tensorrt: bool = Field(
            default=False, description="Put the TensorRT execution provider before CUDA where it is installed."
        )
        opset: int = Field(default=17, description="ONNX opset of the export.")
        threads: int = Field(default=0, description="Intra-op threads; 0: the cores this process may really use.")

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        self._rt: _Runtime | None = None
        self._graph: _Graph | None = None
        self._key: str | None = None

    # ------------------------------------------------------------ identity

    def _check_config(self) -> None:
        cfg = self.config
        if cfg.precision not in PRECISIONS:
            raise ValueError(f"embed precision must be one of {PRECISIONS}, not {cfg.precision!r}")
        if cfg.pooling not in onnx_export.POOLINGS:
            raise ValueError(f"embed pooling must be one of {onnx_export.POOLINGS}, not {cfg.pooling!r}")
        if cfg.max_length < 2:
            raise ValueError(f"embed max_length must be at least 2, not {cfg.max_length}")

    def _max_length(self, kind: str, path: Path) -> int:
        """Config max_length, capped by the model's position table when the config says it."""
        limit = self.config.max_length
        if kind == "hf":
            config = json.loads((path / "config.json").read_text())
            limit = min(limit, int(config.get("max_position_embeddings", limit)))
        return max(2, limit)

    def _providers(self) -> list[str]:
        return onnx_runtime.choose_providers(self.config.prefer_gpu, self.config.tensorrt)

    def device(self) -> str:
        """'cuda' where a GPU is really usable and wanted, else 'cpu'."""
        return "cuda" if onnx_runtime.gpu_provider(self._providers()) else "cpu"

    def model_key(self) -> str:
        """Changes when the vectors for the same text could: the sha256 of the verified graph
        that computes them (vectors of another graph are never reused), tokenizer, truncation,
        pooling, normalisation, precision, device and library versions. Resolving the graph
        exports it the first time (then it is cached); the graph and the key are resolved once
        per instance, in the cache of the first context seen, else ``CAUSALREC_CACHE``."""
        if self._key is None:
            cfg = self.config
            graph = self._resolve(current_settings().cache_dir, log)
            parts = {
                "graph": graph.cached.sha256,
                "tokenizer": graph.tokenizer_sha256,
                "max_length": graph.max_length,
                "pooling": cfg.pooling,
                "normalize": cfg.normalize,
                "precision": [cfg.precision, graph.precision],
                "device": graph.device,
                "versions": onnx_export.library_versions(),
            }
            kind, path = resolve_model(cfg.model)
            slug = Path(cfg.model).stem if kind == "onnx" else path.name
            if cfg.model in _DEFAULT_ALIASES:
                slug = DEFAULT_MODEL
            self._key = f"{slug}-{key_of(parts)[:16]}"
        return self._key

    # ------------------------------------------------------------ embed

    def iter_embed(self, texts: Sequence[object], context: PluginContext) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(rows, vectors)`` over ``texts`` (None counts as ""), logging progress
        (done / total, texts/s, tokens/s, ETA) every ``PROGRESS_SECONDS``."""
        rt = self._ensure_loaded(context)
        size = self.config.batch_size or (512 if rt.device == "cuda" else 64)
        total, done, tokens = len(texts), 0, 0
        self.last_tokens = 0
        started = last = time.perf_counter()
        for batch in stream_batches(rt.tokenizer, texts, size, rt.pad_id):
            vectors = self._run(rt, batch)
            rt.dim = vectors.shape[1]
            done, tokens = done + len(batch.rows), tokens + batch.tokens
            self.last_tokens = tokens
            yield batch.rows, vectors
            now = time.perf_counter()
            if now - last >= PROGRESS_SECONDS and done < total:
                last, rate = now, done / (now - started)
                context.log.info(
                    "embedded %d/%d texts (%.1f%%), %.0f texts/s, %.0f tokens/s, ETA %.0f s",
                    done,
                    total,
                    100 * done / total,
                    rate,
                    tokens / (now - started),
                    (total - done) / max(rate, 1e-9),
                )

    def embed(self, texts: Sequence[str], context: PluginContext) -> np.ndarray:
        """(len(texts), dim) float32, unit rows, in input order."""
        rt = self._ensure_loaded(context)
        texts = clean_texts(texts)
        if not texts:
            if rt.dim is None:  # dimension not known yet: ask the model
                rt.dim = self.embed([""], context).shape[1]
            return np.zeros((0, rt.dim), dtype=np.float32)
        out: np.ndarray | None = None
        for rows, vectors in self.iter_embed(texts, context):
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out

    def describe_runtime(self) -> dict[str, Any]:
        """Facts for the materialization's metadata: what actually ran the model, and how well."""
        facts: dict[str, Any] = {
            "model": self.config.model,
            "pooling": self.config.pooling,
            "max_length": self.config.max_length,
            "precision_requested": self.config.precision,
        }
        rt = self._rt
        if rt is not None:
            facts |= {
                "precision": rt.precision,
                "provider": onnx_runtime.session_providers(rt.session)[0],
                "providers": onnx_runtime.session_providers(rt.session),
                "dim": rt.dim,
                "onnx_path": str(rt.onnx_path),
                "onnx_sha256": rt.onnx_sha256,
                "intra_op_threads": rt.session.get_session_options().intra_op_num_threads,
                "probe_mean_cosine_to_fp32": round(float(rt.gate.get("mean_cosine", 1.0)), 5),
                "probe_min_cosine_to_fp32": round(float(rt.gate.get("min_cosine", 1.0)), 5),
            }
        return facts
