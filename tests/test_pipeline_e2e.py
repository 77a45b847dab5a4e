"""The whole pipeline through Dagster's own CLI on the built-in simulator, checked against
the simulator's truth; then the popularity reference ranker on the same world."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from causalrec_assets.publish import PUBLISH_ASSET
from causalrec_toolkit.evaluation import uplift_capture
from causalrec_toolkit.rankers import unseen_pairs

DAGSTER = str(Path(sys.executable).with_name("dagster"))

EXPECTED_COLUMNS = {
    "recommendations": ["user_id", "item_id", "rank", "score"],
    "test_scores": ["user_id", "item_id", "score"],
    "treatment_effects": ["treatment", "outcome", "estimand", "estimator", "estimate", "ci_low", "ci_high"],
}
STAGE_ASSETS = [
    "users", "items", "interactions", "validation_report", "item_embeddings", "user_embeddings",
    "causal_graph", "bayesian_network", "treatment_effects", "recommendations", "test_scores", "evaluation",
    "policy_value", "explanations",
]  # fmt: skip


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dagster asset materialize -m causalrec_assets --select '*'`` with default settings, in
    one process (the multi-process executor is what ``make run`` uses; the dask test runs a
    distributed engine)."""
    root = tmp_path_factory.mktemp("cli")
    home, storage = root / "home", root / "storage"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CAUSALREC_STORAGE": str(storage)}
    env.pop("CAUSALREC_DATA", None)
    in_process = '{"execution": {"config": {"in_process": {}}}}'  # one process: the imports are paid once
    proc = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "causalrec_assets", "--select", "*", "--config-json", in_process],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "RUN_SUCCESS" in proc.stderr + proc.stdout
    (root / "cli.log").write_text(proc.stderr + proc.stdout)
    return storage


def test_every_stage_asset_is_stored_as_designed(cli_run: Path):
    for asset in STAGE_ASSETS:
        suffix = ".json" if asset == "causal_graph" else ".parquet"
        assert (cli_run / f"{asset}{suffix}").exists(), asset
    for asset, columns in EXPECTED_COLUMNS.items():
        assert pl.read_parquet(cli_run / f"{asset}.parquet").columns == columns
    recs = pl.read_parquet(cli_run / "recommendations.parquet")
    assert recs.group_by("user_id").agg(pl.col("rank").sort())["rank"].to_list()[0] == list(range(1, 11))
    interactions = pl.read_parquet(cli_run / "interactions.parquet")
    assert (
        pl.read_parquet(cli_run / "test_scores.parquet").height == interactions.filter(pl.col("split") == "test").height
    )


def test_headline_ate_recovers_the_truth(cli_run: Path):
    truth = json.loads((cli_run / "ground_truth.json").read_text())
    effects = pl.read_parquet(cli_run / "treatment_effects.parquet").filter(pl.col("estimand") == "ATE")
    headline = effects["estimate"][0]
    naive = effects.filter(pl.col("estimator") == "naive")["estimate"][0]
    assert abs(naive - truth["ate"]) > 0.05, "the simulated log should be confounded"
    assert abs(headline - truth["ate"]) < 0.02, (headline, truth["ate"])
    assert effects["ci_low"][0] <= headline <= effects["ci_high"][0]


def test_graph_has_the_effect_and_every_true_confounder(cli_run: Path):
    graph = json.loads((cli_run / "causal_graph.json").read_text())
    truth = json.loads((cli_run / "ground_truth.json").read_text())
    edges = {tuple(e) for e in graph["edges"]}
    assert ("exposure", "outcome") in edges
    for confounder in truth["confounders"]:
        assert (confounder, "exposure") in edges, confounder
        assert (confounder, "outcome") in edges, confounder


def test_every_check_passes_on_the_simulator_refutations_included(cli_run: Path):
    """The simulator's assumptions hold (every confounder observed, exposure randomized in the
    test slice), so every data check and every refutation of the effect must pass."""
    log = (cli_run.parent / "cli.log").read_text()
    failed = re.findall(r"Asset check '(\w+)' on '(\w+)' did not pass", log)
    passed = set(re.findall(r"Asset check '(\w+)' on 'treatment_effects' passed", log))
    assert not failed, failed
    assert {"placebo_treatment", "random_common_cause", "random_halves", "randomized_slice"} <= passed


def _capture(storage: Path) -> float:
    users = pl.read_parquet(storage / "users.parquet")
    items = pl.read_parquet(storage / "items.parquet")
    interactions = pl.read_parquet(storage / "interactions.parquet")
    return uplift_capture(
        pl.read_parquet(storage / "recommendations.parquet"),
        pl.read_parquet(storage / "true_uplift.parquet"),
        unseen_pairs(users, items, interactions),
    )


def test_recommendations_capture_the_true_uplift_and_popularity_does_not(cli_run: Path, monkeypatch):
    causal = _capture(cli_run)
    assert causal >= 0.8, causal

    from causalrec_assets import defs

    monkeypatch.setenv("CAUSALREC_STORAGE", str(cli_run))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        run_config={"ops": {"ranking": {"config": {"plugin": "popularity"}}}},
        # the publishing step too: without it the new ranking stays staged, unpublished
        asset_selection=[dg.AssetKey(k) for k in ("recommendations", "test_scores", "explanations", PUBLISH_ASSET)],
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    popularity = _capture(cli_run)
    assert popularity < causal - 0.15, (popularity, causal)


def test_the_summary_reports_sensitivity_and_the_value_of_each_policys_lists(cli_run: Path, monkeypatch):
    """``make run``'s summary: the headline's sensitivity sentence (read from the instance) and
    the doubly robust value of the lists beside the simulator's truth; the uplift ranking's lists
    add more than popularity's."""
    from causalrec_assets.summary import summarise

    monkeypatch.setenv("DAGSTER_HOME", str(cli_run.parent / "home"))
    text = summarise(cli_run)
    assert "sensitivity (robustness" in text and "The randomized slice shows no confounding" in text, text
    assert "value of each policy's top-5 lists" in text and " true " in text, text
    values = pl.read_parquet(cli_run / "policy_value.parquet").filter(pl.col("estimator") == "dr")
    uplift = dict(values.filter(pl.col("measure") == "uplift").select("policy", "value").iter_rows())
    assert uplift["ranking"] > uplift["popularity"] + 0.03, uplift
