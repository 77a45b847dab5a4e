"""The ``causalrec`` CLI (plugins, run-config, check), typed run config, and broken plugins' warnings
in a Dagster run's log."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from plugin_helpers import BUILTINS

from causalrec_assets import plugin_api
from causalrec_assets.cli import build_run_config, list_plugins, main
from causalrec_assets.pipeline import stage_ops
from causalrec_assets.plugin_api import PLUGIN_API_VERSION
from causalrec_assets.registry import PluginInfo, PluginRegistry, get_registry, warn_broken

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
