"""The ingest rules for legal but unusual data (README, "Data contract"), and the checks that
refuse bad input before any step works: each as a plain function, on small frames."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from causalrec_assets.contracts import (
    DataContractError,
    cap_texts,
    check_reserved_columns,
    one_row_per_pair,
    parse_timestamps,
)
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.stage_config import RunConfigError, check_run_config
from causalrec_plugins.ingest.readers import find_table
from causalrec_plugins.ingest.simulator import SimulatorConfig
from causalrec_plugins.ranking.relevance_rank import RelevanceParams
from causalrec_plugins.validate.gx_suites import GreatExpectationsValidate


class Log:
    """Collects what a step would log."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(("info", msg % args))

    def warning(self, msg: str, *args: Any) -> None:
        self.lines.append(("warning", msg % args))

    def error(self, msg: str, *args: Any) -> None:
        self.lines.append(("error", msg % args))


def test_repeated_pairs_keep_the_latest_row_with_a_warning() -> None:
    log = Log()
    log_rows = pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u1"],
            "item_id": ["i1", "i1", "i1", "i1"],
            "exposure": [1, 1, 0, 0],
            "outcome": [1, 0, 0, 1],
            "timestamp": [datetime(2026, 1, 3), datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 5)],
            "split": ["train", "train", "train", "test"],
        }
    )
    kept = one_row_per_pair(log_rows, log)
    # u1/i1/train: the 2026-01-03 row wins over the earlier one, though it comes first in the file
    assert kept.select("user_id", "split", "outcome").rows() == [
        ("u1", "train", 1),
        ("u2", "train", 0),
        ("u1", "test", 1),
    ]
    [(level, text)] = log.lines
    assert level == "warning" and "2 row(s) repeat one of 1" in text and "1 with contradictory" in text
    assert "'outcome': [1, 0]" in text


def test_repeated_pairs_without_timestamps_keep_the_last_in_file_order() -> None:
    frame = pl.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 5, 5], "exposure": [1, 1, 1], "outcome": [3, 4, 5]})
    assert one_row_per_pair(frame, Log())["outcome"].to_list() == [4, 5]
    unique = frame.tail(2)
    log = Log()
    assert one_row_per_pair(unique, log) is unique and not log.lines


def test_iso_timestamps_become_datetimes_with_a_note() -> None:
    log = Log()
    frame = pl.DataFrame({"timestamp": ["2026-01-01T10:00:00", "2026-01-02 11:30:00", None]})
    parsed = parse_timestamps(frame, log)
    assert parsed.schema["timestamp"] == pl.Datetime("us")
    assert parsed["timestamp"].to_list()[:2] == [datetime(2026, 1, 1, 10), datetime(2026, 1, 2, 11, 30)]
    assert log.lines == [("info", "interactions.timestamp: 3 ISO-8601 text value(s) parsed as datetimes (UTC)")]
    aware = pl.DataFrame({"timestamp": ["2026-01-01T10:00:00+02:00"]})
    assert parse_timestamps(aware, log)["timestamp"].to_list() == [datetime(2026, 1, 1, 8)]


def test_unreadable_timestamps_are_refused_with_count_and_sample() -> None:
    frame = pl.DataFrame({"timestamp": ["2026-01-01", "yesterday", "soon"]})
    with pytest.raises(DataContractError, match=r"interactions.timestamp: 2 of 3 row\(s\).*\['yesterday', 'soon'\]"):
        parse_timestamps(frame, Log())


def test_too_wide_integer_timestamps_become_floats_for_the_range_check() -> None:
    frame = pl.DataFrame({"timestamp": pl.Series([10**20, 5], dtype=pl.Int128)})
    assert parse_timestamps(frame, Log()).schema["timestamp"] == pl.Float64


def test_long_texts_are_cut_with_a_warning() -> None:
    log = Log()
    items = pl.DataFrame({"item_id": ["a", "b", "c"], "text": ["x" * 50, "short", "y" * 12]})
    capped = cap_texts(items, 10, log)
    assert capped["text"].to_list() == ["x" * 10, "short", "y" * 10]
    [(level, text)] = log.lines
    assert level == "warning" and "2 text(s) longer than 10" in text and "longest 50" in text and "['a', 'c']" in text


@pytest.mark.parametrize(("table", "column"), [("users", "exposure"), ("users", "text"), ("items", "split")])
def test_attributes_named_like_reserved_columns_are_refused(table: str, column: str) -> None:
    frames = {"users": pl.DataFrame({"user_id": [1]}), "items": pl.DataFrame({"item_id": [1], "text": ["t"]})}
    frames[table] = frames[table].with_columns(pl.lit(0).alias(column))
    with pytest.raises(DataContractError, match=rf"{table}\.{column}: reserved"):
        check_reserved_columns(frames["users"], frames["items"])


def test_a_table_folder_linking_back_to_the_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text("user_id\n1\n")
    (tmp_path / "interactions").symlink_to(".", target_is_directory=True)
    with pytest.raises(DataContractError, match="interactions: folder .* resolves to"):
        find_table(tmp_path, "interactions")
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "items").symlink_to("..", target_is_directory=True)
    with pytest.raises(DataContractError, match="items: folder"):
        find_table(tmp_path / "up", "items")


def _validate(interactions: pl.DataFrame):
    users = pl.DataFrame({"user_id": ["u1", "u2"]})
    items = pl.DataFrame({"item_id": ["i1", "i2"]})
    tables = {"users": users, "items": items, "interactions": interactions}
    plugin = GreatExpectationsValidate(GreatExpectationsValidate.Config())
    return plugin.validate("interactions", interactions, tables, PluginContext(log=Log(), seed=0))


RATINGS = pl.DataFrame(
    {
        "user_id": ["u1", "u1", "u2", "u2"],
        "item_id": ["i1", "i2", "i1", "i2"],
        "exposure": [1, 1, 1, 1],
        "outcome": [4.0, 2.0, 5.0, 1.0],
        "timestamp": [datetime(2026, 1, d) for d in (1, 2, 3, 4)],
    }
)


def test_rating_data_with_exposure_one_everywhere_passes() -> None:
    outcome = _validate(RATINGS)
    assert outcome.success, outcome.describe()


def test_datetimes_after_2200_are_out_of_range() -> None:
    late = RATINGS.with_columns(RATINGS["timestamp"].scatter(1, datetime(2300, 1, 1)))
    text = _validate(late).describe()
    assert "interactions.timestamp: 1 bad row(s), e.g. ['2300-01-01T00:00:00']" in text and "out of range" in text


def test_only_test_rows_exposed_is_refused() -> None:
    split = RATINGS.with_columns(
        pl.Series("split", ["train", "train", "test", "test"]), pl.Series("exposure", [0, 0, 1, 1])
    )
    assert "no training row has exposure = 1" in _validate(split).describe()


def test_run_config_bounds_fail_before_any_step() -> None:
    from causalrec_assets import defs

    job = defs.resolve_implicit_global_asset_job_def()
    check_run_config(job, {"ops": {"ranking": {"config": {"causal": {"k": 5}}}}})
    bad = {"ops": {"ranking": {"config": {"causal": {"k": -3}}}, "ingest": {"config": {"simulator": {"n_users": 0}}}}}
    with pytest.raises(RunConfigError) as err:
        check_run_config(job, bad)
    assert "ops.ranking.config.causal.k: Input should be greater than or equal to 1 (got -3)" in str(err.value)
    assert "ops.ingest.config.simulator.n_users" in str(err.value)


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        (SimulatorConfig, "n_users", 1),
        (SimulatorConfig, "pairs_per_user", 0),
        (SimulatorConfig, "days", 0),
        (RelevanceParams, "validation_share", 1.0),
        (RelevanceParams, "mf_lr", 0.0),
        (RelevanceParams, "mf_epochs", 0),
    ],
)
def test_plugin_parameters_have_bounds(config: type, field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        config(**{field: value})


def test_the_ingest_step_applies_the_rules_with_logged_warnings(
    tmp_path: Path, small_world, storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Dagster: repeated pairs and a long text are legal, normalised and warned about."""
    import dagster as dg

    from causalrec_assets import defs
    from tests.conftest import write_canonical

    data = write_canonical(tmp_path / "data", small_world)
    inter = pl.read_csv(data / "interactions.csv")
    flipped = inter.head(3).with_columns((1 - pl.col("outcome")).alias("outcome"))
    pl.concat([inter, flipped]).write_csv(data / "interactions.csv")
    items = pl.read_csv(data / "items.csv")
    items.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("z" * 500)).otherwise(pl.col("text")).alias("text")
    ).write_csv(data / "items.csv")
    monkeypatch.setenv("CAUSALREC_DATA", str(data))
    monkeypatch.setenv("CAUSALREC_MAX_TEXT_CHARS", "100")

    instance = dg.DagsterInstance.ephemeral()
    keys = [dg.AssetKey(k) for k in ("users", "items", "interactions", "ground_truth", "true_uplift")]
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=keys)

    assert result.success
    logs = "\n".join(e.user_message for e in instance.all_logs(result.run_id))
    assert "interactions: 6 row(s) repeat one of 3 (user_id, item_id, split) pair(s), 3 with contradictory" in logs
    assert "items.text: 1 text(s) longer than 100 characters" in logs
    assert "ISO-8601 text value(s) parsed as datetimes" in logs
    stored = result.asset_value("interactions").lazy().collect()  # the canonical plugin scans the log
    assert stored.height == inter.height and stored.schema["timestamp"] == pl.Datetime("us")
    assert stored.join(flipped, on=["user_id", "item_id", "split", "outcome"]).height == 3  # the later rows won
    assert result.asset_value("items")["text"].str.len_chars().max() == 100
