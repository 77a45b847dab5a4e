"""ONNX Runtime sessions: CUDA where a GPU is really usable, CPU otherwise.

onnxruntime-gpu lists CUDAExecutionProvider as *available* even on machines without a GPU,
and asking for it there prints a loud error before falling back. So we detect a device
first, and report what a session really uses (``session.get_providers()``).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import logging
import os
from pathlib import Path

import dagster as dg
import onnxruntime as ort

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

log = logging.getLogger("causalrec.onnx_runtime")


def available_cores() -> int:
    """Cores this process may really run on (affinity / cgroup cpusets), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _nvml_device_count() -> int | None:
    """GPUs seen by NVML, or None when NVML is absent. NVML makes no CUDA context: fork-safe."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return 0
    try:
        count = ctypes.c_uint(0)
        return int(count.value) if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else 0
    finally:
        nvml.nvmlShutdown()


@functools.lru_cache(maxsize=1)
def cuda_device_present() -> bool:
    """True when a CUDA driver loads and at least one device is visible to this process.

    Avoids cuInit on purpose: initialising CUDA in a parent process breaks forked workers.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = _nvml_device_count()
    if count is not None:
        return count > 0
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/dxg")


def choose_providers(prefer_gpu: bool = True) -> list[str]:
    """CUDA then CPU where the CUDA provider is compiled in and a GPU is present, else CPU only."""
    if prefer_gpu and CUDA in ort.get_available_providers() and cuda_device_present():
        return [CUDA, CPU]
    return [CPU]


def make_session(
    model_path: str | Path,
    providers: list[str] | None = None,
    intra_op_threads: int | None = None,
) -> ort.InferenceSession:
    """An optimised session; intra-op threads default to the cores we may use (not oversubscribed)."""
    providers = list(providers) if providers else choose_providers()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or available_cores()
    if CUDA in providers and hasattr(ort, "preload_dlls"):
        try:  # CUDA/cuDNN from the nvidia-* wheels, when that is where they live
            ort.preload_dlls()
        except Exception as exc:  # best effort: the session reports what it really uses
            log.debug("onnxruntime.preload_dlls failed: %s", exc)
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    used = session_providers(session)
    if CUDA in providers and CUDA not in used:
        log.warning("asked for %s but the session runs on %s", providers, used)
    return session


def session_providers(session: ort.InferenceSession) -> list[str]:
    """What the session actually runs on (not merely what the build offers)."""
    return list(session.get_providers())


class OnnxRuntimeResource(dg.ConfigurableResource):
    """Shared ONNX Runtime settings for assets and plugins."""

    prefer_gpu: bool = True
    intra_op_threads: int = 0  # 0 = every core this process may use

    def providers(self) -> list[str]:
        return choose_providers(self.prefer_gpu)

    def make_session(self, model_path: str | Path) -> ort.InferenceSession:
        return make_session(model_path, self.providers(), self.intra_op_threads or None)
