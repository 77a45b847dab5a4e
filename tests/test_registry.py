"""The plugin registry's error paths, through real entry-point discovery, and its API version rule.

A fake distribution (``fakeplugins``) is "installed" into a temporary folder on ``sys.path``:
its ``entry_points.txt`` registers good and broken ``causalrec.ranking`` plugins, and
``importlib.metadata`` finds it exactly as it would a wheel installed in site-packages.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from causalrec_assets import registry as registry_module
from causalrec_assets.plugin_api import PLUGIN_API_VERSION
from causalrec_assets.registry import PluginError, PluginRegistry, get_registry, is_compatible
from causalrec_assets.stage_config import plugin_from_config, stage_config_class
from causalrec_assets.stages.ranking.protocol import RankingPlugin
from causalrec_plugins.ranking.causal_rank import CausalRanking
from causalrec_plugins.ranking.popularity import PopularityRanking

FAKE_MODULES = ("fakeplugins_good", "fakeplugins_boom", "fakeplugins_bad")

GOOD = '''
    """A third party's ranking plugin."""
    from pydantic import Field

    from causalrec_assets.plugin_api import PluginConfig, RankingPlugin


    class GoodConfig(PluginConfig):
        depth: int = Field(default=3, description="How deep to look.")


    class GoodRanking(RankingPlugin):
        """Ranks by nothing in particular."""

        Config = GoodConfig

        def rank(self, inputs, context):
            raise NotImplementedError
'''

BOOM = """
    raise RuntimeError("boom at import time")
"""

BAD = """
    from causalrec_assets.plugin_api import RankingPlugin


    class NoRank(RankingPlugin):
        pass


    class NotAPlugin:
        def rank(self, inputs, context):
            return None


    class FutureRanking(RankingPlugin):
        api_version = "2.0"

        def rank(self, inputs, context):
            return None


    class BadConfigRanking(RankingPlugin):
        Config = dict

        def rank(self, inputs, context):
            return None


    class ForgetfulRanking(RankingPlugin):
        def fit(self, inputs):  # the stage calls fit(inputs, context)
            return None


    NOT_A_CLASS = 42
"""

ENTRY_POINTS = """\
[causalrec.ranking]
fake_good = fakeplugins_good:GoodRanking
fake_boom = fakeplugins_boom:BoomRanking
fake_abstract = fakeplugins_bad:NoRank
fake_foreign = fakeplugins_bad:NotAPlugin
fake_future = fakeplugins_bad:FutureRanking
fake_bad_config = fakeplugins_bad:BadConfigRanking
fake_bad_signature = fakeplugins_bad:ForgetfulRanking
fake_not_class = fakeplugins_bad:NOT_A_CLASS
fake_missing_attr = fakeplugins_good:DoesNotExist

[causalrec.structure]
fake_wrong_stage = fakeplugins_good:GoodRanking
"""


@pytest.fixture(scope="module")
def fake_registry(tmp_path_factory: pytest.TempPathFactory) -> PluginRegistry:
    """A registry discovered with the fake distribution installed next to the built-in plugins."""
    get_registry()  # the process-wide registry stays the built-in one
    root: Path = tmp_path_factory.mktemp("site")
    dist_info = root / "fakeplugins-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugins\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    for name, source in zip(FAKE_MODULES, (GOOD, BOOM, BAD), strict=True):
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        registry = PluginRegistry.discover()
    # Discovered once; the fake distribution leaves sys.path and sys.modules straight away.
    for name in FAKE_MODULES:
        sys.modules.pop(name, None)
    return registry


def error_of(registry: PluginRegistry, name: str, stage: str = "ranking") -> str:
    info = registry.infos[stage][name]
    assert not info.ok, f"{stage}.{name} should be broken"
    assert info.plugin is None
    return info.error or ""


# ------------------------------------------------------------------ discovery


def test_good_third_party_plugin_is_discovered(fake_registry: PluginRegistry) -> None:
    info = fake_registry.infos["ranking"]["fake_good"]
    assert info.ok, info.error
    assert info.distribution == "fakeplugins"
    assert info.version == "0.1"
    assert info.target == "fakeplugins_good:GoodRanking"
    assert info.api_version == PLUGIN_API_VERSION
    cls = fake_registry.get("ranking", "fake_good")
    assert issubclass(cls, RankingPlugin)
    assert cls.__name__ == "GoodRanking"
    assert fake_registry.available("ranking")["fake_good"] is cls


def test_plugin_that_raises_on_import(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_boom")
    assert "failed to import fakeplugins_boom:BoomRanking" in error
    assert "RuntimeError" in error and "boom at import time" in error


def test_entry_point_naming_a_missing_attribute(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_missing_attr")
    assert "failed to import fakeplugins_good:DoesNotExist" in error
    assert "AttributeError" in error


def test_class_lacking_the_required_method(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_abstract")
    assert "NoRank" in error
    assert "lacks required method(s): fit (or rank)" in error


def test_class_not_subclassing_the_stage_base(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_foreign")
    assert "NotAPlugin does not implement the ranking protocol" in error
    assert "RankingPlugin" in error


def test_plugin_registered_under_the_wrong_stage(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_wrong_stage", stage="structure")
    assert "GoodRanking does not implement the structure protocol" in error
    assert "StructurePlugin" in error


def test_incompatible_api_version_names_both_versions(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_future")
    assert "FutureRanking" in error
    assert "2.0" in error
    assert PLUGIN_API_VERSION in error
    assert "incompatible" in error
    assert fake_registry.infos["ranking"]["fake_future"].api_version == "2.0"


def test_config_not_a_plugin_config(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_bad_config")
    assert "BadConfigRanking.Config must subclass" in error


def test_a_hook_overridden_with_the_wrong_signature_is_named_at_registration(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_bad_signature")
    assert "ForgetfulRanking.fit(self, inputs) cannot be called as RankingPlugin.fit(self, inputs" in error
    assert "context" in error


def test_entry_point_not_naming_a_class(fake_registry: PluginRegistry) -> None:
    error = error_of(fake_registry, "fake_not_class")
    assert "does not name a class (got int)" in error


def test_built_in_plugins_stay_ok_alongside_broken_ones(fake_registry: PluginRegistry) -> None:
    ranking = fake_registry.available("ranking")
    assert ranking["causal"] is CausalRanking
    assert ranking["popularity"] is PopularityRanking
    assert set(ranking) == {"causal", "popularity", "uplift", "relevance", "fake_good"}
    for stage, name in [
        ("ingest", "simulator"),
        ("ingest", "canonical"),
        ("structure", "hill_climb"),
        ("effects", "backdoor"),
        ("validate", "great_expectations"),
        ("embed", "onnx_minilm"),
    ]:
        assert fake_registry.infos[stage][name].ok, fake_registry.infos[stage][name].error
        assert fake_registry.infos[stage][name].distribution == "dagster-causalrec"
    broken = {(i.stage, i.name) for i in fake_registry.broken()}
    assert broken == {
        ("ranking", "fake_boom"),
        ("ranking", "fake_abstract"),
        ("ranking", "fake_foreign"),
        ("ranking", "fake_future"),
        ("ranking", "fake_bad_config"),
        ("ranking", "fake_bad_signature"),
        ("ranking", "fake_not_class"),
        ("ranking", "fake_missing_attr"),
        ("structure", "fake_wrong_stage"),
    }


def test_get_broken_plugin_raises_with_reason(fake_registry: PluginRegistry) -> None:
    with pytest.raises(PluginError, match=r"ranking plugin 'fake_abstract' is broken: .*lacks required method"):
        fake_registry.get("ranking", "fake_abstract")
    with pytest.raises(PluginError, match=r"'fake_boom' is broken: failed to import .*boom at import time"):
        fake_registry.get("ranking", "fake_boom")


def test_get_unknown_plugin_lists_the_installed_ones(fake_registry: PluginRegistry) -> None:
    with pytest.raises(PluginError) as excinfo:
        fake_registry.get("ranking", "nope")
    message = str(excinfo.value)
    assert "no ranking plugin named 'nope'" in message
    for name in ("causal", "popularity", "fake_good", "fake_boom"):
        assert name in message


def test_discovery_without_the_fake_distribution_is_clean() -> None:
    registry = PluginRegistry.discover()
    assert registry.broken() == []
    assert set(registry.available("ranking")) == {"causal", "popularity", "uplift", "relevance"}


# ---------------------------------------------------------------- versioning


@pytest.mark.parametrize(
    ("declared", "current", "ok"),
    [
        ("1.0", "1.0", True),
        ("1.0.3", "1.0", True),
        ("1.9", "1.0", False),
        ("0.9", "1.0", False),
        ("2.0", "1.0", False),
        ("abc", "1.0", False),
        ("1", "1.0", False),
        ("None", "1.0", False),
        ("1.0", "1.2", True),
        ("1.2", "1.2", True),
        ("1.3", "1.2", False),
    ],
)
def test_is_compatible_semver_rule(declared: str, current: str, ok: bool) -> None:
    assert is_compatible(declared, current) is ok


def test_framework_api_version_is_compatible_with_itself() -> None:
    assert is_compatible(PLUGIN_API_VERSION)


# --------------------------------------------------- stage config of a third party


def test_stage_config_offers_third_party_plugins_and_skips_broken_ones(
    fake_registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", fake_registry)
    config_cls = stage_config_class("ranking")
    fields = config_cls.model_fields
    assert set(fields) == {"plugin", "causal", "popularity", "uplift", "relevance", "fake_good"}
    assert "Ranks by nothing in particular." in (fields["fake_good"].description or "")

    plugin = plugin_from_config("ranking", config_cls(plugin="fake_good", fake_good={"depth": 7}))
    assert type(plugin).__name__ == "GoodRanking"
    assert plugin.config.depth == 7

    with pytest.raises(PluginError, match="'fake_future' is broken: .*2.0"):
        plugin_from_config("ranking", config_cls(plugin="fake_future"))


def test_importing_a_plugin_module_first_does_not_break_it() -> None:
    """Regression: a fresh process whose first causalrec import is a plugin module must not
    record that plugin as broken (half-initialised) in the registry."""
    import subprocess

    code = (
        "import causalrec_plugins.ingest.simulator\n"
        "from causalrec_assets.registry import get_registry\n"
        "broken = [(i.stage, i.name, i.error) for i in get_registry().broken()]\n"
        "assert not broken, broken\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
