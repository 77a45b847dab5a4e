"""Materialization metadata that reads at a glance: rounded numbers, the ATE with its interval and
the truth where it is known, the plugin that made an asset, column schemas, evaluation references."""

import math

import dagster as dg
import numpy as np
import polars as pl
import pytest

from causalrec_assets import metadata as md
from causalrec_assets.stages.effects.assets import known_true_ate
from causalrec_toolkit.evaluation import evaluate, evaluation_report, fits_ranking, ranking_target


def test_rounded_keeps_four_significant_digits_everywhere() -> None:
    assert md.rounded(0.10171234567891234) == 0.1017
    assert md.rounded(12345.678) == 12350.0 and md.rounded(1.23456789e-5) == 1.235e-5
    assert md.rounded(np.float32(0.333333)) == 0.3333 and isinstance(md.rounded(np.float64(2.0)), float)
    assert md.rounded({"a": [0.123456, 7], "b": "text", "c": True}) == {"a": [0.1235, 7], "b": "text", "c": True}
    assert math.isnan(md.rounded(float("nan"))) and md.rounded(float("inf")) == float("inf")
    assert md.number(0.0903466) == "0.09035" and md.number(None) == "n/a"


def test_the_ate_is_one_value_with_its_interval_and_the_truth_when_known() -> None:
    plain = md.effect_metadata(0.101712, 0.090346, 0.113123)
    assert plain["ate"] == "0.1017 [0.09035, 0.1131]"
    assert (plain["headline_ate"], plain["headline_ci_low"], plain["headline_ci_high"]) == (0.1017, 0.09035, 0.1131)
    assert "true_ate" not in plain and "ci_covers_truth" not in plain
    covered = md.effect_metadata(0.101712, 0.090346, 0.113123, true_ate=0.0951234)
    assert covered["true_ate"] == 0.09512 and covered["ci_covers_truth"] is True and covered["error"] == 0.006589
    missed = md.effect_metadata(0.101712, 0.090346, 0.113123, true_ate=0.2)
    assert missed["ci_covers_truth"] is False
    assert md.effect_metadata(0.1, None, None, true_ate=0.1)["ci_covers_truth"] is False


def test_a_table_asset_has_its_column_schema_and_a_rounded_preview() -> None:
    frame = pl.DataFrame({"user_id": ["u1", "u2"], "score": [0.123456789, None], "vec": [[1.0, 2.0], [3.0, 4.0]]})
    meta = md.table_metadata(frame, preview=1)
    assert meta["dagster/row_count"] == 2
    schema = meta["dagster/column_schema"].schema
    expected = [("user_id", "String"), ("score", "Float64"), ("vec", "List(Float64)")]
    assert [(c.name, c.type) for c in schema.columns] == expected
    assert isinstance(meta["preview"], dg.TableMetadataValue)
    assert meta["preview"].records[0].data == {"user_id": "u1", "score": 0.1235, "vec": "[1.0, 2.0]"}
    assert "preview" not in md.table_metadata(frame, preview=0)


def test_a_scanned_log_has_the_metadata_of_the_same_log_in_memory(tmp_path) -> None:
    log = pl.DataFrame(
        {"user_id": [1, 1, 2, 3], "item_id": [1, 2, 1, 3], "exposure": [1, 0, 1, 1], "split": ["train"] * 3 + ["test"]}
    )
    log.write_parquet(tmp_path / "log.parquet")
    scanned = md.interaction_metadata(pl.scan_parquet(tmp_path / "log.parquet"))
    eager = md.interaction_metadata(log)
    assert scanned == eager
    figures = ("dagster/row_count", "rows_train", "rows_test", "exposure_rate")
    assert [eager[f] for f in figures] == [4, 3, 1, 0.75]


def test_plugin_metadata_names_the_distribution_and_version() -> None:
    meta = md.plugin_metadata("ranking", "popularity")
    assert meta["plugin"] == "popularity" and meta["plugin_version"] not in ("", "unknown")
    assert meta["plugin_distribution"] not in ("", "unknown")
    assert md.plugin_metadata("ranking", "nosuch")["plugin_version"] == "unknown"


class _Truth(dg.Config):
    truth: bool = True


@dg.multi_asset(
    outs={"users": dg.AssetOut(), "ground_truth": dg.AssetOut(is_required=False)}, can_subset=False, name="ingest"
)
def _ingest(config: _Truth):
    yield dg.Output(1, "users")
    if config.truth:
        yield dg.Output({"ate": 0.0951234}, "ground_truth", metadata={"true_ate": 0.0951234})


@dg.asset(name="causal_variables")
def _variables(users: int) -> int:
    return users


@dg.asset
def probe(context: dg.AssetExecutionContext, causal_variables: int) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"truth": str(known_true_ate(context))})


def test_the_true_ate_comes_from_the_ground_truth_of_the_same_ingest_only() -> None:
    instance = dg.DagsterInstance.ephemeral()

    def truth_after(with_truth: bool) -> str:
        result = dg.materialize(
            [_ingest, _variables, probe],
            instance=instance,
            resources={"io_manager": dg.InMemoryIOManager()},
            run_config={"ops": {"ingest": {"config": {"truth": with_truth}}}},
        )
        return result.asset_materializations_for_node("probe")[0].metadata["truth"].value

    assert truth_after(True) == "0.0951234"
    assert truth_after(False) == "None"  # the simulated world's truth of the earlier run is not this data's


SLICE = pl.DataFrame(
    {
        "user_id": [f"u{i % 20}" for i in range(400)],
        "item_id": [f"i{i}" for i in range(400)],
        "exposure": [i % 2 for i in range(400)],
        "outcome": [int((i * 7919) % 13 < 4 + 3 * (i % 2)) for i in range(400)],
        "split": ["test"] * 200 + ["train"] * 200,
    }
)


def test_evaluation_sets_each_metric_beside_random_and_the_oracle() -> None:
    scores = SLICE.filter(pl.col("split") == "test").select("user_id", "item_id", pl.col("outcome").alias("score"))
    metrics = evaluate(SLICE, scores)
    report = evaluation_report(SLICE, scores, metrics)
    rows = {r["metric"]: r for r in report.iter_rows(named=True)}
    assert set(rows) == set(metrics["metric"])
    assert rows["auc"]["oracle"] == pytest.approx(1.0) and 0.35 < rows["auc"]["random"] < 0.65
    assert rows["qini"]["oracle"] > rows["qini"]["value"] > rows["qini"]["random"] - 0.05
    assert rows["test_rows"]["random"] is None and rows["test_rows"]["fits_ranking"] is None
    assert ranking_target(SLICE) == "uplift" and rows["qini"]["fits_ranking"] and not rows["auc"]["fits_ranking"]
    ratings = SLICE.with_columns(pl.lit(1).alias("exposure"))
    assert ranking_target(ratings) == "relevance" and fits_ranking("ndcg@5", "relevance")
