"""The plugin kit in process: the conformance kit on every built-in plugin and on plugins that
break their contract, the versioning and deprecation rules, the scaffold, the CLI, typed run
config, and the broken-plugin warnings in a Dagster run's log.

The kit's end-to-end path (packages written in a temporary folder, pip-installed, run in a
full materialization) is in test_plugin_kit_external.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import SHARED_DATA
from pydantic import Field

from causalrec_assets import plugin_api
from causalrec_assets.cli import build_run_config, list_plugins, main
from causalrec_assets.pipeline import stage_ops
from causalrec_assets.plugin_api import (
    PLUGIN_API_VERSION,
    Deprecation,
    PluginAPIDeprecationWarning,
    PluginConfig,
    deprecated,
    parse_api_version,
)
from causalrec_assets.registry import (
    PluginInfo,
    PluginRegistry,
    api_incompatibility,
    check_plugin,
    deprecation_notes,
    get_registry,
    warn_broken,
)
from causalrec_assets.scaffold import ScaffoldError, check_request, new_plugin
from causalrec_assets.stages.effects.protocol import EffectsPlugin
from causalrec_assets.stages.embed.protocol import EmbedPlugin
from causalrec_assets.stages.ingest.protocol import IngestPlugin
from causalrec_assets.stages.ranking.protocol import RankingOutput
from causalrec_assets.stages.structure.protocol import StructurePlugin
from causalrec_assets.stages.validate.protocol import ValidatePlugin, ValidationOutcome
from causalrec_assets.testing import CHECKS, ConformanceError, assert_conformance, check_conformance, small_world
from causalrec_plugins.ranking.popularity import PopularityRanking

REPO = Path(__file__).resolve().parents[1]
RUFF = str(Path(sys.executable).with_name("ruff"))

# ------------------------------------------------------------- built-in plugins

BUILTIN_CONFIG = {
    ("ingest", "movielens"): {"path": str(SHARED_DATA / "ml-100k")},
    ("ingest", "coat"): {"path": str(SHARED_DATA / "coat")},
}
BUILTINS = sorted(
    (stage, name)
    for stage, infos in get_registry().infos.items()
    for name, info in infos.items()
    if info.distribution == "dagster-causalrec"
)


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


# --------------------------------------------------- versioning, deprecation


def test_api_version_parsing_and_incompatibility_messages() -> None:
    assert parse_api_version("1.2.3") == (1, 2)
    with pytest.raises(ValueError, match=r"api_version '1' is not MAJOR.MINOR"):
        parse_api_version("1")
    assert api_incompatibility("1.0", "1.3") is None
    major = api_incompatibility("2.1", "1.3") or ""
    assert "major version 2 differs from this causalrec's 1" in major and "built for plugin API 1.x" in major
    minor = api_incompatibility("1.4", "1.3") or ""
    assert "needs plugin API 1.4, newer than this causalrec's 1.3; upgrade causalrec" in minor
    assert "not MAJOR.MINOR" in (api_incompatibility(None, "1.3") or "")


def test_deprecated_framework_function_warns_with_the_path_forward() -> None:
    @deprecated(since="1.1", removed_in="2.0", instead="use new_helper()")
    def old_helper(x: int) -> int:
        return x + 1

    with pytest.warns(PluginAPIDeprecationWarning) as caught:
        assert old_helper(1) == 2
    message = str(caught[0].message)
    assert "old_helper() is deprecated since plugin API 1.1 and goes in 2.0; use new_helper()" in message
    assert caught[0].filename == __file__  # points at the caller, not at the wrapper
    assert issubclass(PluginAPIDeprecationWarning, FutureWarning)  # shown by default


class LegacyHookRanking(PopularityRanking):
    def score_items(self, inputs):  # pretend 1.1 deprecated this hook
        return None


def test_registry_notes_plugins_that_use_a_deprecated_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    note = Deprecation("RankingPlugin.score_items", "1.1", "2.0", "implement rank()", "ranking", "score_items")
    monkeypatch.setattr(plugin_api, "DEPRECATIONS", [note])
    assert check_plugin("ranking", LegacyHookRanking) is None  # still usable
    notes = deprecation_notes("ranking", LegacyHookRanking)
    assert notes == (
        "deprecated: RankingPlugin.score_items is deprecated since plugin API 1.1 and goes in 2.0; implement rank()",
    )
    assert deprecation_notes("ranking", PopularityRanking) == ()
    info = PluginInfo("ranking", "legacy", "m:C", "legacy-dist", "0.3", LegacyHookRanking, "1.0", notes=notes)
    assert info.status.startswith("ok (deprecated: RankingPlugin.score_items is deprecated since plugin API 1.1")
    report = check_conformance(LegacyHookRanking, checks=["protocol"])
    assert report.ok and "deprecated: RankingPlugin.score_items" in report.results[0].detail


def test_changelog_has_a_plugin_api_section_for_the_current_version() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert "## Plugin API" in changelog
    assert f"### {PLUGIN_API_VERSION}" in changelog


# ------------------------------------------------------------------ scaffold


@pytest.mark.parametrize(
    ("stage", "name", "message"),
    [
        ("rank", "x_ranker", "unknown stage 'rank'"),
        ("ranking", "My-Ranker", "lower case letters, digits and underscores"),
        ("ranking", "class", "lower case letters"),
        ("ranking", "plugin", "reserved"),
        ("ranking", "popularity", r"already has a plugin named 'popularity' \(from dagster-causalrec\)"),
        ("ingest", "assets", "a module named causalrec_assets is already importable"),
    ],
)
def test_new_plugin_refuses_bad_requests(stage: str, name: str, message: str) -> None:
    with pytest.raises(ScaffoldError, match=message):
        check_request(stage, name)


def test_new_plugin_writes_an_installable_package(tmp_path: Path) -> None:
    target = new_plugin("ranking", "uplift_ranking", tmp_path / "pkg")
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/causalrec_uplift_ranking/__init__.py",
        "src/causalrec_uplift_ranking/plugin.py",
        "tests/test_causalrec_uplift_ranking.py",
    ]
    pyproject = (target / "pyproject.toml").read_text()
    assert '[project.entry-points."causalrec.ranking"]' in pyproject
    assert 'uplift_ranking = "causalrec_uplift_ranking.plugin:UpliftRanking"' in pyproject
    # the framework's own distribution with a range, never the unrelated "causalrec" on the index
    assert re.search(r'dependencies = \["dagster-causalrec>=\d+\.\d+,<\d+"', pyproject), pyproject
    assert "example.invalid" not in (target / "README.md").read_text()
    plugin = (target / "src/causalrec_uplift_ranking/plugin.py").read_text()
    assert f'api_version = "{PLUGIN_API_VERSION}"' in plugin and "class UpliftRanking(RankingPlugin):" in plugin
    assert "$" not in plugin  # every placeholder filled
    with pytest.raises(ScaffoldError, match="exists and is not empty"):
        new_plugin("ranking", "uplift_ranking", target)


def test_generated_packages_are_ruff_clean(tmp_path: Path) -> None:
    for stage in plugin_api.STAGES:
        assert main(["new-plugin", "--stage", stage, f"lint_{stage}", "-d", str(tmp_path / stage)]) == 0
    lint = subprocess.run([RUFF, "check", "--no-cache", str(tmp_path)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run([RUFF, "format", "--check", "--no-cache", str(tmp_path)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout


def test_validate_readme_names_every_op_of_the_stage(tmp_path: Path) -> None:
    readme = (new_plugin("validate", "strict_checks", tmp_path / "v") / "README.md").read_text()
    assert "users_users_contract" in readme and "validation_report" in readme


def test_stage_ops_match_the_definitions() -> None:
    from causalrec_assets import defs

    job = defs.resolve_implicit_global_asset_job_def()
    found: dict[str, set[str]] = {}
    for node in job.graph.node_defs:
        field = node.config_schema.as_field() if node.config_schema is not None else None
        fields = getattr(field.config_type, "fields", {}) if field is not None else {}
        if "plugin" in fields:
            stage = fields["plugin"].description.split()[1]  # "The <stage> plugin to run ..."
            found.setdefault(stage, set()).add(node.name)
    assert found == {stage: set(ops) for stage, ops in stage_ops().items()}


# ------------------------------------------------------------------------ CLI


def broken_registry() -> PluginRegistry:
    infos = {stage: dict(found) for stage, found in get_registry().infos.items()}
    infos["embed"]["acme_boom"] = PluginInfo(
        "embed", "acme_boom", "acme.boom:Embedder", "acme-plugins", "0.2",
        error="failed to import acme.boom:Embedder:\nRuntimeError: no GPU driver",
    )  # fmt: skip
    infos["ranking"]["acme_future"] = PluginInfo(
        "ranking", "acme_future", "acme.rank:Ranker", "acme-plugins", "0.2", api_version="2.0",
        error="Ranker targets plugin API 2.0, incompatible with this causalrec's plugin API 1.0",
    )  # fmt: skip
    return PluginRegistry(infos)


def test_plugins_listing_gives_one_line_per_plugin_with_its_status() -> None:
    text = list_plugins(broken_registry())
    lines = text.splitlines()
    assert lines[0].startswith(f"causalrec plugin API {PLUGIN_API_VERSION}")
    boom = [line for line in lines if "acme_boom" in line]
    assert len(boom) == 1
    assert boom[0].split()[:4] == ["acme_boom", "acme-plugins", "0.2", "?"]
    assert "broken: failed to import acme.boom:Embedder: RuntimeError: no GPU driver" in boom[0]
    future = next(line for line in lines if "acme_future" in line)
    assert future.split()[:4] == ["acme_future", "acme-plugins", "0.2", "2.0"] and "broken: Ranker targets" in future
    popularity = next(line for line in lines if line.split()[:1] == ["popularity"])
    version = get_registry().infos["ranking"]["popularity"].version
    assert popularity.split()[1:] == ["dagster-causalrec", version, PLUGIN_API_VERSION, "ok"]
    stages = [line for line in lines if line.endswith(":") or "(none installed)" in line]
    assert [s.split(":")[0] for s in stages] == list(plugin_api.STAGES)


def test_plugins_command_json_and_strict(capsys: pytest.CaptureFixture[str]) -> None:
    broken = bool(get_registry().broken())
    assert main(["plugins", "--json", "--strict"]) == (1 if broken else 0)
    listed = json.loads(capsys.readouterr().out)
    assert {(p["stage"], p["name"]) for p in listed if p["distribution"] == "dagster-causalrec"} == set(BUILTINS)
    assert all(p["api_version"] == PLUGIN_API_VERSION for p in listed if p["ok"])
    assert all(p["error"] for p in listed if not p["ok"])


def test_run_config_command_selects_plugins_for_every_op(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run-config", "ranking=popularity", "validate=great_expectations", "--param", "ranking.k=4"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["ops"]["ranking"] == {"config": {"plugin": "popularity", "popularity": {"k": 4}}}
    assert set(config["ops"]) == {"ranking", *stage_ops()["validate"]}
    assert main(["run-config", "ranking=popularity", "--param", "ranking.k=ten"]) == 2
    assert "k Input should be a valid integer" in capsys.readouterr().err
    assert main(["run-config", "ranking=nope"]) == 2
    err = capsys.readouterr().err
    assert "no ranking plugin named 'nope' (installed: causal, " in err and "popularity" in err
    assert build_run_config(["ingest=auto"]) == {"ops": {"ingest": {"config": {"plugin": "auto"}}}}


def test_check_command_runs_the_kit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "ranking", "popularity", "--config", '{"k": 3}']) == 0
    out = capsys.readouterr().out
    assert "conformance of ranking plugin PopularityRanking (seed 0): 8 passed, 0 failed" in out


# ------------------------------------------------------------ typed run config


def test_a_bad_parameter_fails_before_any_work(storage: Path) -> None:
    from causalrec_assets import defs

    job = defs.resolve_implicit_global_asset_job_def()
    bad = {"ops": {"ranking": {"config": {"plugin": "popularity", "popularity": {"k": "ten"}}}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match=r"ranking:config:popularity:k.*\"ten\".*Int"):
        job.execute_in_process(run_config=bad, instance=dg.DagsterInstance.ephemeral())
    assert not storage.exists() or not any(storage.iterdir())  # not even ingest ran


def test_plugin_parameters_reach_the_launchpad_schema() -> None:
    from causalrec_assets import defs

    job = defs.resolve_implicit_global_asset_job_def()
    ranking = next(n for n in job.graph.node_defs if n.name == "ranking")
    popularity = ranking.config_schema.as_field().config_type.fields["popularity"].config_type
    section = popularity.inner_type.fields["k"]  # a non-default plugin's section: Noneable, null until given
    assert section.default_value == 10 and section.description == "Recommendations per user."


# ------------------------------------------------- broken plugins in the run log


def test_broken_plugins_are_warned_once_per_run_in_the_dagster_log() -> None:
    registry = broken_registry()

    @dg.asset
    def twice(context) -> None:
        warn_broken(context.log, registry=registry)
        warn_broken(context.log, registry=registry)  # a second stage in the same run and process
        warn_broken(context.log, "ranking", registry=registry)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([twice], instance=instance)
    messages = [r.user_message for r in instance.all_logs(result.run_id) if r.level == 30]
    assert len([m for m in messages if "embed.acme_boom" in m]) == 1
    assert len([m for m in messages if "ranking.acme_future" in m]) == 1
    boom = next(m for m in messages if "acme_boom" in m)
    assert boom == (
        "causalrec plugin embed.acme_boom (acme-plugins 0.2) is broken and was skipped: "
        "failed to import acme.boom:Embedder: RuntimeError: no GPU driver"
    )
    again = dg.materialize([twice], instance=instance)  # a new run warns again
    assert len([r for r in instance.all_logs(again.run_id) if "acme_boom" in (r.user_message or "")]) == 1


def test_warn_broken_filters_by_stage() -> None:
    lines: list[str] = []

    class Collect:
        def warning(self, line: str) -> None:
            lines.append(line)

    assert len(warn_broken(Collect(), "embed", registry=broken_registry())) == 1
    assert lines and all("embed.acme_boom" in line for line in lines)
    assert warn_broken(Collect(), "effects", registry=broken_registry()) == []
