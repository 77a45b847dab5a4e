"""Write-audit-publish with real runs of Dagster's CLI on one storage: two runs started together
end with one consistent snapshot and the second is refused with the holder named; a run
killed with SIGKILL during the embed step changes no published byte, leaves no step process
writing, is marked failed, and a re-run succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import psutil
import pytest

from causalrec_assets.publish import PUBLISH_ASSET
from tests.conftest import published_files, write_canonical

REPO = Path(__file__).resolve().parents[1]
INGEST = "users,items,interactions,ground_truth,true_uplift"
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _env(data: Path, storage: Path, home: Path, executor: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CAUSALREC_STORAGE": str(storage),
        "CAUSALREC_DATA": str(data),
        "CAUSALREC_EXECUTOR": executor,
        "CAUSALREC_STORAGE_WAIT": "0",
    }


def _start(env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    """``dagster asset materialize --select '*'``, its output to ``log`` (else a pipe)."""
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 (the child holds it)
    return subprocess.Popen(
        [DAGSTER, "asset", "materialize", "-m", "causalrec_assets", "--select", "*"],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def race(tmp_path_factory: pytest.TempPathFactory, small_world):
    """Two runs started together on a fresh storage: (data, storage, home, [(returncode, output)])."""
    root = tmp_path_factory.mktemp("publish-runs")
    data = write_canonical(root / "data", small_world, fmt="parquet")
    storage, home = root / "storage", root / "home"
    _env(data, storage, home, "in_process")
    with dg.DagsterInstance.from_config(str(home)):  # create its database once, not racing in both runs
        pass
    logs = [root / f"run-{k}.log" for k in range(2)]
    procs = [_start(_env(data, storage, home, "in_process"), log) for log in logs]
    outcomes = [(p.wait(timeout=900), log.read_text()) for p, log in zip(procs, logs, strict=True)]
    return data, storage, home, outcomes


def test_two_runs_started_together_publish_one_consistent_snapshot(race):
    _, storage, _, outcomes = race
    codes = sorted(code for code, _ in outcomes)
    assert codes[0] == 0 and codes[1] != 0, [out[-3000:] for _, out in outcomes]
    refused = next(out for code, out in outcomes if code != 0)
    assert "is in use by run" in refused and "gives up" in refused, refused[-3000:]
    users = set(pl.read_parquet(storage / "users.parquet")["user_id"])
    recommended = set(pl.read_parquet(storage / "recommendations.parquet")["user_id"])
    assert recommended and recommended <= users
    assert (storage / "causal_graph.json").is_file()


def test_a_run_killed_during_embed_changes_nothing_and_a_rerun_succeeds(race, monkeypatch):
    data, storage, home, _ = race
    before = published_files(storage)
    assert "recommendations.parquet" in before and "item_embeddings.parquet" in before

    killed = _start(_env(data, storage, home, "multiprocess"))
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 600
    for line in killed.stdout:  # type: ignore[union-attr]
        children = psutil.Process(killed.pid).children(recursive=True) or children
        if 'step "item_embeddings"' in line and "Started execution" in line:
            break
        assert time.monotonic() < deadline, "the embed step never started"
    time.sleep(1.0)  # well inside the step
    children = psutil.Process(killed.pid).children(recursive=True) or children
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"step processes still running after their run was killed: {alive}"
    assert published_files(storage) == before

    # A re-run (the ingest step and publishing: enough to need the storage) takes the dead lease over.
    rerun = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "causalrec_assets", "--select", f"{INGEST},{PUBLISH_ASSET}"],
        cwd=REPO, env=_env(data, storage, home, "in_process"), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "taken over" in rerun.stdout + rerun.stderr
    after = published_files(storage)
    assert after.keys() == before.keys()
    assert after["recommendations.parquet"] == before["recommendations.parquet"]  # carried forward

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        statuses = sorted(r.status.value for r in instance.get_runs())
    assert "STARTED" not in statuses and statuses.count("SUCCESS") == 2, statuses
