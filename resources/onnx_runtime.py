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

from causalrec_resources.settings import current_settings

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"

log = logging.getLogger("causalrec.onnx_runtime")


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by a cgroup quota (containers: ``docker --cpus``), None when unlimited."""
    try:  # cgroup v2
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may really run on: its CPU affinity (cpusets), capped by a cgroup
    CPU quota; not the host's count, which oversubscribes containers badly."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, int(limit + 0.5))
    return max(1, cores)


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


def choose_providers(prefer_gpu: bool = True, tensorrt: bool = False) -> list[str]:
    """CUDA then CPU where the CUDA provider is compiled in and a GPU is present, else CPU only;
    TensorRT first when asked for and compiled in."""
    available = ort.get_available_providers()
    if prefer_gpu and CUDA in available and cuda_device_present():
        return ([TENSORRT] if tensorrt and TENSORRT in available else []) + [CUDA, CPU]
    return [CPU]


def gpu_provider(providers: list[str]) -> bool:
    return CUDA in providers or TENSORRT in providers


def _provider_options(providers: list[str]) -> list[tuple[str, dict]] | list[str]:
    """CUDA: exhaustive cuDNN search, arena grown only as needed; TensorRT: fp16 and an engine cache."""
    out: list = []
    for name in providers:
        if name == CUDA:
            out.append((CUDA, {"cudnn_conv_algo_search": "EXHAUSTIVE", "arena_extend_strategy": "kSameAsRequested"}))
        elif name == TENSORRT:
            cache = current_settings().cache_dir
            out.append(
                (
                    TENSORRT,
                    {
                        "trt_fp16_enable": True,
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache / "tensorrt"),
                    },
                )
            )
        else:
            out.append(name)
    return out


def make_session(
    model_path: str | Path,
    providers: list[str] | None = None,
    intra_op_threads: int | None = None,
    spinning: bool = True,
) -> ort.InferenceSession:
    """An optimised session; intra-op threads default to the cores we may use (not oversubscribed).

    ``spinning=False`` stops idle worker threads from busy-waiting between ops: a little slower
    alone, much kinder to a machine shared with other work."""
    providers = list(providers) if providers else choose_providers()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or available_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if CUDA in providers and hasattr(ort, "preload_dlls"):
        try:  # CUDA/cuDNN from the nvidia-* wheels, when that is where they live
            ort.preload_dlls()
        except Exception as exc:  # best effort: the session reports what it really uses
            log.debug("onnxruntime.preload_dlls failed: %s", exc)
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=_provider_options(providers))
    used = session_providers(session)
    if gpu_provider(providers) and not gpu_provider(used):
        log.warning("asked for %s but the session runs on %s", providers, used)
    return session


def session_providers(session: ort.InferenceSession) -> list[str]:
    """What the session actually runs on (not merely what the build offers)."""
    return list(session.get_providers())


class OnnxRuntimeResource(dg.ConfigurableResource):
    """Shared ONNX Runtime settings for assets and plugins."""

    prefer_gpu: bool = True
    intra_op_threads: int = 0  # 0 = every core this process may use
    tensorrt: bool = False  # put TensorRT before CUDA where it is compiled in

    def providers(self) -> list[str]:
        return choose_providers(self.prefer_gpu, self.tensorrt)

    def make_session(self, model_path: str | Path) -> ort.InferenceSession:
        return make_session(model_path, self.providers(), self.intra_op_threads or None)
