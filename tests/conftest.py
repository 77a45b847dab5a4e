"""Shared fixtures: an isolated storage folder per test, and small simulated datasets."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _offline_and_cached(tmp_path_factory: pytest.TempPathFactory):
    """No hub downloads; the ONNX export cache is shared by the whole session."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("CAUSALREC_CACHE", str(tmp_path_factory.mktemp("causalrec-cache")))
    yield


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "storage"
    monkeypatch.setenv("CAUSALREC_STORAGE", str(root))
    return root


def write_canonical(directory: Path, data, fmt: str = "csv") -> Path:
    """Write a Dataset's three tables as a canonical dataset directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("users", "items", "interactions"):
        frame: pl.DataFrame = getattr(data, name)
        if fmt == "csv":
            frame.write_csv(directory / f"{name}.csv")
        else:
            frame.write_parquet(directory / f"{name}.parquet")
    return directory


@pytest.fixture(scope="session")
def small_world():
    return simulate(SimulatorConfig(seed=3, n_users=300, n_items=96, n_topics=4, pairs_per_user=30))


def materialize_all(run_config: dict | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Every asset and check, through Dagster, in process, on an ephemeral instance."""
    from causalrec_assets import defs

    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=run_config or {}, instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error
    )


def published_files(storage: Path) -> dict[str, str]:
    """sha256 of every file a reader of ``<storage>/...`` sees (links followed, causalrec's own
    ``.causalrec`` folder of staging areas and snapshots aside)."""
    seen = {}
    for folder, dirs, files in os.walk(storage, followlinks=True):
        dirs[:] = [d for d in dirs if d != ".causalrec"]
        for name in files:
            path = Path(folder) / name
            seen[str(path.relative_to(storage))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(seen.items()))


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    """Everything a person would read about why a run failed: step errors, failed checks."""
    texts = []
    for event in result.all_events:
        # a step's failure, or one before any step (a resource that refused its settings)
        err = getattr(event.event_specific_data, "error", None)
        if event.is_step_failure or event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE:
            while err is not None:
                texts.append(err.message)
                err = err.cause
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            if evaluation.passed:
                continue
            texts.append(str(evaluation.description))
            texts += [str(v.value) for v in evaluation.metadata.values()]
    return "\n".join(texts)
