"""Plugin API versions and deprecations, and the ``new-plugin`` scaffold."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from causalrec_assets import plugin_api
from causalrec_assets.cli import main
from causalrec_assets.pipeline import stage_ops
from causalrec_assets.plugin_api import (
    PLUGIN_API_VERSION,
    Deprecation,
    PluginAPIDeprecationWarning,
    deprecated,
    parse_api_version,
)
from causalrec_assets.registry import PluginInfo, api_incompatibility, check_plugin, deprecation_notes
from causalrec_assets.scaffold import ScaffoldError, check_request, new_plugin
from causalrec_assets.testing import check_conformance
from causalrec_plugins.ranking.popularity import PopularityRanking

REPO = Path(__file__).resolve().parents[1]
RUFF = str(Path(sys.executable).with_name("ruff"))

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
