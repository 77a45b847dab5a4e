"""The conformance kit in process: every built-in plugin passes it, and it catches plugins that break
their contract.

The kit's end-to-end path (packages written in a temporary folder, pip-installed, run in a
full materialization) is in test_plugin_kit_external.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import SHARED_DATA
from plugin_helpers import BUILTINS
from pydantic import Field

from causalrec_assets import plugin_api
from causalrec_assets.plugin_api import PLUGIN_API_VERSION, PluginConfig
from causalrec_assets.registry import get_registry
from causalrec_assets.stages.effects.protocol import EffectsPlugin
from causalrec_assets.stages.embed.protocol import EmbedPlugin
from causalrec_assets.stages.ingest.protocol import IngestPlugin
from causalrec_assets.stages.ranking.protocol import RankingOutput
from causalrec_assets.stages.structure.protocol import StructurePlugin
from causalrec_assets.stages.validate.protocol import ValidatePlugin, ValidationOutcome
from causalrec_assets.testing import CHECKS, ConformanceError, assert_conformance, check_conformance, small_world
from causalrec_plugins.ranking.popularity import PopularityRanking

# ------------------------------------------------------------- built-in plugins

BUILTIN_CONFIG = {
    ("ingest", "movielens"): {"path": str(SHARED_DATA / "ml-100k")},
    ("ingest", "coat"): {"path": str(SHARED_DATA / "coat")},
}


@pytest.mark.parametrize(("stage", "name"), BUILTINS, ids=[f"{s}.{n}" for s, n in BUILTINS])
def test_every_builtin_plugin_passes_the_conformance_kit(stage: str, name: str) -> None:
    config = BUILTIN_CONFIG.get((stage, name))
    if config and "path" in config and not Path(config["path"]).is_dir():
        pytest.skip(f"{config['path']} is not here")
    report = assert_conformance(get_registry().get(stage, name), config)
    assert [r.name for r in report.results] == list(CHECKS)
    assert all(r.status in ("passed", "skipped") for r in report.results)


def test_every_stage_has_a_working_built_in() -> None:
    assert {s for s, _ in BUILTINS} == set(plugin_api.STAGES)
    assert all(get_registry().infos[s][n].ok for s, n in BUILTINS)


# ------------------------------------------------------ the kit finds defects


def failed(report, check: str) -> str:
    result = next(r for r in report.results if r.name == check)
    assert result.status == "failed", f"{check} should fail:\n{report.describe()}"
    return result.detail


class SeenItemsRanking(PopularityRanking):
    """Recommends what users already have: the classic leak."""

    def rank(self, inputs, context):
        out = super().rank(inputs, context)
        seen = inputs.interactions.filter(pl.col("split") == "train").select("user_id", "item_id")
        recs = (
            seen.with_columns(pl.lit(1.0).alias("score"))
            .with_columns(pl.int_range(1, pl.len() + 1).over("user_id").cast(pl.Int32).alias("rank"))
            .filter(pl.col("rank") <= self.config.k)
            .select("user_id", "item_id", "rank", "score")
        )
        return RankingOutput(recommendations=recs, test_scores=out.test_scores)


class UnseededRanking(PopularityRanking):
    """Random tie-breaking from an unseeded generator."""

    def rank(self, inputs, context):
        out = super().rank(inputs, context)
        noise = np.random.default_rng().random(out.test_scores.height)
        return RankingOutput(out.recommendations, out.test_scores.with_columns(pl.Series("score", noise)))


class NoRankColumnRanking(PopularityRanking):
    def rank(self, inputs, context):
        out = super().rank(inputs, context)
        return RankingOutput(out.recommendations.drop("rank"), out.test_scores)


class RaisingRanking(PopularityRanking):
    def rank(self, inputs, context):
        raise ValueError("no model fitted")


def test_kit_catches_recommending_seen_items() -> None:
    report = check_conformance(SeenItemsRanking)
    assert "in the user's training log" in failed(report, "row_invariants")
    assert not report.ok


def test_kit_catches_nondeterminism() -> None:
    report = check_conformance(UnseededRanking, checks=["determinism", "output_schema"])
    assert "two runs with the same config and seed differ: test_scores" in failed(report, "determinism")
    assert report.results[1].status == "passed"


def test_kit_catches_a_missing_column_and_says_which_columns() -> None:
    report = check_conformance(NoRankColumnRanking, checks=["output_schema"])
    detail = failed(report, "output_schema")
    assert "must have columns ['user_id', 'item_id', 'rank', 'score']" in detail
    assert "got ['user_id', 'item_id', 'score']" in detail


def test_kit_reports_where_the_plugin_raised() -> None:
    with pytest.raises(ConformanceError) as excinfo:
        assert_conformance(RaisingRanking)
    message = str(excinfo.value)
    assert "conformance of ranking plugin RaisingRanking" in message
    assert "FAILED  output_schema: on the regular input, rank() raised ValueError: no model fitted" in message
    assert "test_plugin_kit.py" in message and "in rank)" in message
    assert "ok      protocol" in message and "ok      config" in message


class LooseEmbed(EmbedPlugin):
    """float64 and not normalised; each vector depends on the text's position in the call."""

    def model_key(self) -> str:
        return "loose"

    def embed(self, texts, context):
        return np.array([[len(t), i + 1.0] for i, t in enumerate(texts)], dtype=np.float64).reshape(len(texts), 2)


def test_kit_catches_embedding_dtype_norm_and_batch_dependence() -> None:
    report = check_conformance(LooseEmbed)
    assert "must return float32, got float64" in failed(report, "dtypes")
    assert "unit L2 norm" in failed(report, "row_invariants")
    assert failed(report, "empty_input")  # (0, 2) float64 is not float32
    assert {r.name for r in report.results if r.status == "passed"} >= {"protocol", "config", "output_schema"}


class BatchDependentEmbed(EmbedPlugin):
    def model_key(self) -> str:
        return "batch"

    def embed(self, texts, context):
        out = np.ones((len(texts), 3), dtype=np.float32)
        out[:, 0] = np.arange(len(texts))
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_kit_catches_vectors_that_depend_on_the_batch() -> None:
    report = check_conformance(BatchDependentEmbed, checks=["row_invariants"])
    assert "depends on the other texts in the call" in failed(report, "row_invariants")


class CyclicStructure(StructurePlugin):
    def learn(self, data, knowledge, context):
        a, b = [c for c in data.columns if c not in ("exposure", "outcome")][:2]
        return [("exposure", "outcome"), (a, b), (b, a)]


class BackwardsStructure(StructurePlugin):
    def learn(self, data, knowledge, context):
        return [("outcome", "exposure")]


def test_kit_catches_cycles_and_edges_against_the_knowledge() -> None:
    assert "not acyclic" in failed(check_conformance(CyclicStructure, checks=["row_invariants"]), "row_invariants")
    detail = failed(check_conformance(BackwardsStructure, checks=["row_invariants"]), "row_invariants")
    assert "edges the knowledge forbids" in detail and "('outcome', 'exposure')" in detail


class OverconfidentEffects(EffectsPlugin):
    """Always reports an effect of 0.1, even where none can be identified."""

    def estimate(self, inputs, context):
        row = [inputs.treatment, inputs.outcome, "ATE", "guess", 0.1, 0.0, 0.2]
        return pl.DataFrame([row], schema=plugin_api.EFFECT_COLUMNS, orient="row")


def test_kit_catches_an_effect_estimated_from_nothing() -> None:
    report = check_conformance(OverconfidentEffects)
    assert "not identifiable, so the headline estimate must be NaN, got 0.1" in failed(report, "empty_input")
    assert "returned DataFrame instead of raising" in failed(report, "malformed_input")
    assert next(r for r in report.results if r.name == "row_invariants").status == "passed"


class LaxValidate(ValidatePlugin):
    """Passes everything."""

    def validate(self, table, frame, tables, context):
        ok = plugin_api.ExpectationOutcome("anything_goes", None, True)
        return ValidationOutcome(table=table, row_count=frame.height, results=[ok])


def test_kit_catches_a_validator_that_lets_defects_through() -> None:
    report = check_conformance(LaxValidate)
    detail = failed(report, "malformed_input")
    for defect in ("a missing required column", "a duplicated key", "a null key", "an exposure of 2"):
        assert defect in detail
    assert "an empty users table passed validation" in failed(report, "empty_input")


class DuplicateUserIngest(IngestPlugin):
    def load(self, context):
        world = small_world(context.seed)
        return plugin_api.Dataset(pl.concat([world.users, world.users.head(2)]), world.items, world.interactions)


def test_kit_catches_duplicate_keys_from_ingest() -> None:
    report = check_conformance(DuplicateUserIngest, checks=["row_invariants", "empty_input"])
    assert "users.user_id is not unique" in failed(report, "row_invariants")
    assert report.results[1].status == "skipped"  # reads no files


class SloppyConfig(PluginConfig):
    depth: int = Field(default=3)  # no description
    name: str = Field(description="Required, so a run without config fails.")


class SloppyRanking(PopularityRanking):
    Config = SloppyConfig  # type: ignore[assignment]


def test_kit_config_check_names_fields_without_default_or_description() -> None:
    report = check_conformance(SloppyRanking, {"name": "x"}, checks=["config"])
    assert "field(s) without a default: name" in failed(report, "config")


class UndocumentedConfig(PluginConfig):
    depth: int = 3


class UndocumentedRanking(PopularityRanking):
    Config = UndocumentedConfig  # type: ignore[assignment]


def test_kit_config_check_asks_for_descriptions() -> None:
    report = check_conformance(UndocumentedRanking, checks=["config"])
    assert "without a description: depth" in failed(report, "config")


class FutureRanking(PopularityRanking):
    api_version = "2.0"


def test_kit_protocol_check_refuses_an_incompatible_api_version() -> None:
    detail = failed(check_conformance(FutureRanking, checks=["protocol"]), "protocol")
    assert (
        f"FutureRanking targets plugin API 2.0, incompatible with this causalrec's plugin API {PLUGIN_API_VERSION}"
        in detail
    )


def test_unknown_check_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown conformance check 'speed'"):
        check_conformance(PopularityRanking, checks=["speed"])
