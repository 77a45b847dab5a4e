"""Running the chosen ONNX graph: one ONNX Runtime session per plugin instance, fed batch by
batch (through IO binding on a GPU), its outputs pooled and normalised into vectors.

Split out of ``onnx_encoder`` so that loading and running sessions is apart from building and
choosing the graph (``onnx_graph``) and from the plugin's configuration and identity.
``SessionRunnerMixin`` expects its host class to provide ``config``, ``_providers()``,
``_resolve()`` and an ``_rt`` attribute (None until loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from causalrec_assets.plugin_api import PluginContext
from causalrec_plugins.embed.batching import Batch
from causalrec_resources import onnx_runtime


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


class SessionRunnerMixin:
    """The session-running half of ``OnnxEncoderEmbed`` (see the module docstring)."""

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
