"""Export a Hugging Face encoder once to ONNX, pooling and normalisation inside the graph.

Putting pooling and L2 normalisation in the graph means the runtime needs neither torch nor
transformers: ONNX Runtime in, unit vectors out. The export is cached under a key derived
from the *content* of the model's files, the export recipe and the exporter's library
versions, beside a manifest that is checked on every load (``verified_cache``), so a pipeline
run pays the torch import and the trace only the first time, and never runs a graph that is
not the one it exported.
"""

from __future__ import annotations

import logging
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from causalrec_plugins.embed.verified_cache import Cached, cached_build, key_of, memo_sha256

# Bump when the wrapper or the export call changes, so old cached graphs are not reused.
EXPORT_FORMAT = 2
POOLINGS = ("mean", "cls")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
# Model-directory files whose content can change the graph or the tokens fed to it.
SOURCE_SUFFIXES = (*WEIGHT_SUFFIXES, ".json", ".txt", ".model")
OUTPUT_NAME = "sentence_embedding"
# Libraries whose version can change an exported or rewritten graph: part of every cache key.
LIBRARIES = ("torch", "transformers", "onnx", "onnxruntime-gpu", "onnxruntime")

log = logging.getLogger("causalrec.embed.onnx_export")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the cached graphs (for keys and manifests)."""
    return {d: _version(d) for d in LIBRARIES}


def memo_file(cache_dir: Path) -> Path:
    """Where source-file hashes are remembered (by stat identity) between runs."""
    return Path(cache_dir) / "onnx" / "source-sha256.json"


def model_identity(model_dir: Path, memo: Path | None = None) -> dict[str, str]:
    """sha256 of every file of a model directory that can change the export (weights, config,
    tokenizer): its content, not its path or dates, names the model."""
    model_dir = Path(model_dir).resolve()
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    return {
        p.name: memo_sha256(p, memo)
        for p in sorted(model_dir.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name.endswith(SOURCE_SUFFIXES)
    }


def export_identity(
    model_dir: Path, pooling: str = "mean", normalize: bool = True, opset: int = 17, memo: Path | None = None
) -> dict[str, Any]:
    """Everything the exported graph depends on, and the key derived from it. Imports no torch."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    payload = {
        "model": model_identity(model_dir, memo),
        "recipe": {"pooling": pooling, "normalize": bool(normalize), "opset": int(opset), "format": EXPORT_FORMAT},
        "versions": library_versions(),
    }
    return {"key": key_of(payload), **payload}


def export_key(model_dir: Path, pooling: str = "mean", normalize: bool = True, opset: int = 17) -> str:
    """The content-derived cache key of an export (see ``export_identity``)."""
    return str(export_identity(model_dir, pooling, normalize, opset)["key"])


def _wrapper(model, pooling: str, normalize: bool):
    """A torch module: token ids and mask in, pooled (optionally unit) sentence vector out."""
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.model(**kwargs).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:  # mean over real tokens only
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return pooled

    return PooledEncoder().eval()


def _takes_token_types(model) -> bool:
    import inspect

    return "token_type_ids" in inspect.signature(model.forward).parameters and bool(
        getattr(model.config, "type_vocab_size", 0)
    )


def _export(model_dir: Path, target: Path, pooling: str, normalize: bool, opset: int) -> None:
    import torch
    from transformers import AutoModel

    # Eager attention traces to plain MatMul/Softmax; the transformers mask code keeps the
    # padding mask when it sees a tracer, so padded batches stay correct.
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager", local_files_only=True)
    model.eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if _takes_token_types(model) else [])
    # Example batch with a padded row, so the traced graph keeps the padding path.
    ids = torch.randint(1, max(2, min(int(model.config.vocab_size), 1000)), (2, 8), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    args = (ids, mask, torch.zeros_like(ids))[: len(names)]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings and the legacy-exporter notice
        torch.onnx.export(
            _wrapper(model, pooling, normalize),
            args,
            str(target),
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def export_cached(
    model_dir: Path,
    cache_dir: Path,
    pooling: str = "mean",
    normalize: bool = True,
    opset: int = 17,
    logger: Any = None,
) -> Cached:
    """The verified cached export of ``model_dir`` (exported first when absent or refused).

    The legacy TorchScript exporter (``dynamo=False``) is used: it works offline in torch 2.13
    without onnxscript."""
    model_dir = Path(model_dir).resolve()
    identity = export_identity(model_dir, pooling, normalize, opset, memo_file(cache_dir))
    target = Path(cache_dir) / "onnx" / f"{identity['key']}.onnx"

    def build(tmp: Path) -> dict[str, Any]:
        started = time.perf_counter()
        _export(model_dir, tmp, pooling, normalize, opset)
        log.info("exported %s to %s in %.1f s", model_dir, target, time.perf_counter() - started)
        return {"source": str(model_dir)}

    return cached_build(target, identity, build, logger)


def export_encoder(
    model_dir: Path, cache_dir: Path, pooling: str = "mean", normalize: bool = True, opset: int = 17
) -> Path:
    """Path of the verified cached export of ``model_dir`` (see ``export_cached``)."""
    return export_cached(model_dir, cache_dir, pooling, normalize, opset).path
