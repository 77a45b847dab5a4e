"""A stage's config class: one section per plugin, picking the plugin by name or by its section,
through Dagster run config and the launchpad."""

from __future__ import annotations

import dagster as dg
import pytest
from pydantic import ValidationError

from causalrec_assets import registry as registry_module
from causalrec_assets.plugin_api import PLUGIN_API_VERSION
from causalrec_assets.registry import PluginInfo, PluginRegistry, get_registry
from causalrec_assets.stage_config import plugin_from_config, stage_config_class
from causalrec_plugins.ranking.causal_rank import CausalRanking
from causalrec_plugins.ranking.popularity import PopularityRanking

# Built at import, as the stage modules do.
RankingStageConfig = stage_config_class("ranking")


def test_stage_config_class_has_plugin_field_and_a_section_per_plugin() -> None:
    config_cls = stage_config_class("ranking")
    assert issubclass(config_cls, dg.Config)
    fields = config_cls.model_fields
    assert fields["plugin"].default == "causal"
    assert "popularity" in (fields["plugin"].description or "")
    for name, plugin in get_registry().available("ranking").items():
        # the default plugin's section holds its defaults; the others are null until given
        assert fields[name].annotation == (plugin.Config if name == "causal" else plugin.Config | None)
    assert set(fields) == {"plugin", "causal", "popularity", "uplift", "relevance"}


def test_plugin_from_config_picks_the_named_plugin_with_its_parameters() -> None:
    config_cls = stage_config_class("ranking")
    default = plugin_from_config("ranking", config_cls())
    assert isinstance(default, CausalRanking)
    assert default.config == CausalRanking.Config()

    chosen = plugin_from_config("ranking", config_cls(plugin="popularity", popularity={"k": 3}))
    assert isinstance(chosen, PopularityRanking)
    assert chosen.config.k == 3

    with pytest.raises(ValidationError, match="Input should be 'causal', 'popularity'"):
        config_cls(plugin="nope")  # refused with the config, before any work


def test_stage_config_through_a_dagster_run_config() -> None:
    picked = {}

    def pick(config) -> None:
        picked["plugin"] = plugin_from_config("ranking", config)

    # This module uses postponed annotations; Dagster needs the Config class itself.
    pick.__annotations__ = {"config": RankingStageConfig, "return": None}
    for shape in ({"plugin": "popularity", "popularity": {"k": 4}}, {"popularity": {"k": 4}}):
        result = dg.materialize([dg.asset(pick)], run_config={"ops": {"pick": {"config": shape}}})
        assert result.success
        assert isinstance(picked["plugin"], PopularityRanking), shape
        assert picked["plugin"].config.k == 4
    result = dg.materialize([dg.asset(pick)], run_config={"ops": {"pick": {"config": {"plugin": "popularity"}}}})
    assert picked["plugin"].config == PopularityRanking.Config()


def test_a_section_alone_picks_its_plugin_and_two_plugins_are_refused() -> None:
    config_cls = stage_config_class("ranking")
    assert config_cls(popularity={"k": 2}).plugin == "popularity"
    assert config_cls(plugin="causal", causal={"k": 2}).plugin == "causal"
    # a named plugin wins over sections Dagster filled in from a Component's defaults
    assert config_cls(plugin="uplift", popularity={"k": 2}, uplift={"k": 4}).plugin == "uplift"
    with pytest.raises(ValidationError, match="'popularity', 'uplift' and names no plugin"):
        config_cls(popularity={"k": 2}, uplift={"k": 2})


def test_the_launchpads_default_config_shows_each_stages_default_plugin_only() -> None:
    from causalrec_assets.definitions import defs

    # The launchpad pre-fills the defaults of the job's run config schema, the config a run that
    # gives none gets, and leaves out what defaults to null: the other plugins' sections.
    defaults = dg.validate_run_config(defs.resolve_job_def("causalrec"), {})
    ops = {
        op: {"config": {key: value for key, value in section["config"].items() if value is not None}}
        for op, section in defaults["ops"].items()
        if isinstance(section.get("config"), dict)
    }
    assert set(ops["ranking"]["config"]) == {"plugin", "causal"}
    assert set(ops["ingest"]["config"]) == {"plugin", "auto"}
    assert set(ops["treatment_effects"]["config"]) == {"plugin", "backdoor", "refutation"}


def test_plugin_named_plugin_does_not_take_the_stage_down(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = get_registry()
    clash = PluginInfo(
        stage="ranking",
        name="plugin",
        target="elsewhere:Ranker",
        distribution="elsewhere",
        version="1.0",
        plugin=PopularityRanking,
        api_version=PLUGIN_API_VERSION,
    )
    infos = {stage: dict(found) for stage, found in builtin.infos.items()}
    infos["ranking"]["plugin"] = clash
    monkeypatch.setattr(registry_module, "_REGISTRY", PluginRegistry(infos))
    config_cls = stage_config_class("ranking")
    assert isinstance(plugin_from_config("ranking", config_cls()), CausalRanking)


def test_a_misspelt_plugin_fails_config_validation_before_any_step() -> None:
    from causalrec_assets import defs

    job = defs.resolve_implicit_global_asset_job_def()
    with pytest.raises(dg.DagsterInvalidConfigError, match="nosuch"):
        job.execute_in_process(
            run_config={"ops": {"ranking": {"config": {"plugin": "nosuch"}}}}, instance=dg.DagsterInstance.ephemeral()
        )
