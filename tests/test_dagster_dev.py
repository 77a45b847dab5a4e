"""``dagster dev`` really serves the assets: the webserver answers GraphQL with every stage, and
two runs launched together on one storage go through Dagster's run queue one after the other
(the ``causalrec/storage`` tag limit), each publishing a whole snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tests.conftest import write_canonical
from tests.dagster_server import dagster_dev, wait_for

INGESTED = ("users", "items", "interactions", "ground_truth", "true_uplift")

QUERY = "{ assetNodes { assetKey { path } groupName repository { location { name } } } }"


def test_dagster_dev_serves_every_stage(tmp_path: Path):
    with dagster_dev(tmp_path, timeout=180) as server:
        nodes = server.graphql(QUERY)["assetNodes"]
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    expected = {
        "users": "ingest", "interactions": "ingest", "validation_report": "validate",
        "item_embeddings": "embed", "causal_graph": "structure", "bayesian_network": "structure",
        "treatment_effects": "effects", "recommendations": "ranking", "test_scores": "ranking",
    }  # fmt: skip
    for asset, group in expected.items():
        assert groups.get(asset) == group, (asset, groups.get(asset))
    assert {n["repository"]["location"]["name"] for n in nodes} == {"causalrec"}


# The causalrec job (tagged with its storage), its ingest step and publishing only: quick, and
# still runs that take the storage and publish a snapshot.
SELECTED = ", ".join(f'{{path: ["{k}"]}}' for k in (*INGESTED, "published_snapshot"))
LAUNCH = (
    "mutation { launchRun(executionParams: {"
    ' selector: {repositoryLocationName: "causalrec", repositoryName: "__repository__", jobName: "causalrec",'
    f" assetSelection: [{SELECTED}]}},"
    ' runConfigData: "{}"}) {'
    " __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }"
    " } }"
)
RUNS = "{ runsOrError { ... on Runs { results { runId status startTime endTime tags { key value } } } } }"


def test_two_launched_runs_queue_on_their_storage_tag(tmp_path: Path, small_world):
    data = write_canonical(tmp_path / "data", small_world, fmt="parquet")
    with dagster_dev(tmp_path, {"CAUSALREC_DATA": str(data)}, timeout=240) as server:
        launched = [server.graphql(LAUNCH)["launchRun"] for _ in range(2)]
        assert all(r["__typename"] == "LaunchRunSuccess" for r in launched), launched
        seen_queued_behind_a_running_one = False

        def finished() -> list[dict] | None:
            nonlocal seen_queued_behind_a_running_one
            runs = server.graphql(RUNS)["runsOrError"]["results"]
            statuses = {r["status"] for r in runs}
            seen_queued_behind_a_running_one |= "QUEUED" in statuses and bool(statuses & {"STARTING", "STARTED"})
            done = all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
            return runs if done and len(runs) == 2 else None

        runs = wait_for(finished, timeout=900, step=1.0, what="both runs to finish")
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"], (runs, server.log.read_text()[-3000:])
    assert seen_queued_behind_a_running_one
    first, second = sorted(runs, key=lambda r: r["startTime"])
    assert first["endTime"] <= second["startTime"]  # never both at once
    assert {"key": "causalrec/storage", "value": str(tmp_path / "storage")} in first["tags"]
    storage = tmp_path / "storage"
    manifest = json.loads((storage / ".causalrec" / "current" / "_snapshot.json").read_text())
    assert manifest["run_id"] == second["runId"] and manifest["previous"] == first["runId"]
    users = set(pl.read_parquet(storage / "users.parquet")["user_id"])
    assert users and set(pl.read_parquet(storage / "interactions.parquet")["user_id"]) <= users
