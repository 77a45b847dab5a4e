"""Export a Hugging Face encoder once to ONNX, pooling and normalisation inside the graph.

Putting pooling and L2 normalisation in the graph means the runtime needs neither torch nor
transformers: ONNX Runtime in, unit vectors out. The export is cached under a key that
changes whenever the graph could (model files, pooling, opset, exporter versions), so a
pipeline run pays the torch import and the trace only the first time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from importlib import metadata
from pathlib import Path

# Bump when the wrapper or the export call changes, so old cached graphs are not reused.
EXPORT_FORMAT = 1
POOLINGS = ("mean", "cls")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
OUTPUT_NAME = "sentence_embedding"
# Libraries whose version can change an exported or rewritten graph: part of every cache key.
LIBRARIES = ("torch", "transformers", "onnx", "onnxruntime-gpu", "onnxruntime")

log = logging.getLogger("causalrec.embed.onnx_export")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def model_identity(model_dir: Path) -> dict[str, object]:
    """What identifies a model directory's weights without reading them (size + mtime)."""
    model_dir = Path(model_dir).resolve()
    config = model_dir / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    weights = {
        p.name: [p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(model_dir.iterdir())
        if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)
    }
    return {
        "path": str(model_dir),
        "config": hashlib.sha256(config.read_bytes()).hexdigest(),
        "weights": weights,
    }


def export_key(model_dir: Path, pooling: str = "mean", normalize: bool = True, opset: int = 17) -> str:
    """Short hash of everything the exported graph depends on. Cheap: imports no torch."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    payload = {
        "model": model_identity(model_dir),
        "pooling": pooling,
        "normalize": bool(normalize),
        "opset": int(opset),
        "format": EXPORT_FORMAT,
        "versions": {d: _version(d) for d in LIBRARIES},
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def export_path(
    model_dir: Path, cache_dir: Path, pooling: str = "mean", normalize: bool = True, opset: int = 17
) -> Path:
    """Where the cached export for these settings lives (whether or not it exists yet)."""
    return Path(cache_dir) / "onnx" / f"{export_key(model_dir, pooling, normalize, opset)}.onnx"


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


def export_encoder(
    model_dir: Path, cache_dir: Path, pooling: str = "mean", normalize: bool = True, opset: int = 17
) -> Path:
    """Return the cached ONNX export of ``model_dir``, exporting it first if the key is new.

    The legacy TorchScript exporter (``dynamo=False``) is used: it works offline in torch 2.13
    without onnxscript. The file is written to a temporary name and moved into place, so a
    crash or a concurrent run never leaves a half-written graph under the final name.
    """
    model_dir = Path(model_dir).resolve()
    target = export_path(model_dir, cache_dir, pooling, normalize, opset)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.onnx")
    started = time.perf_counter()
    try:
        _export(model_dir, tmp, pooling, normalize, opset)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to %s in %.1f s", model_dir, target, time.perf_counter() - started)
    return target


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the cached graphs (for keys and metadata)."""
    return {d: _version(d) for d in LIBRARIES}


def file_identity(path: Path) -> str:
    """A ready .onnx file's identity (path, size, mtime): cheap, changes when the file does."""
    stat = Path(path).stat()
    return hashlib.sha256(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def variant_path(cache_dir: Path, base_key: str, device: str, precision: str, recipe: int) -> Path:
    """Where a rewritten graph (fusions, int8, fp16) of a base graph lives in the cache."""
    versions = hashlib.sha256(json.dumps(library_versions(), sort_keys=True).encode()).hexdigest()[:8]
    return Path(cache_dir) / "onnx" / f"{base_key}-{device}-{precision}-r{recipe}-{versions}.onnx"


def atomic_build(target: Path, build) -> Path:
    """Call ``build(tmp_path)`` and move the result to ``target``; never leaves half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.onnx")
    try:
        build(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
