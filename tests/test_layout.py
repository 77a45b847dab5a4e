"""The house rules a new maintainer relies on: the framework never imports a built-in plugin,
plugins import the framework only through its plugin API and contracts and the toolkit only by
its public names, the toolkit never imports Dagster or the framework, each stage has its
package, and the lineage reads as the six stages in a row."""

from __future__ import annotations

import ast
import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

import causalrec_assets
import causalrec_plugins
import causalrec_toolkit
from causalrec_assets.pipeline import OPTIONAL
from causalrec_assets.plugin_api import STAGES
from causalrec_assets.publish import PUBLISH_ASSET

FRAMEWORK = Path(causalrec_assets.__file__).parent
PLUGINS = Path(causalrec_plugins.__file__).parent
TOOLKIT = Path(causalrec_toolkit.__file__).parent
PLUGIN_FACING = {"causalrec_assets.plugin_api", "causalrec_assets.contracts"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_framework_imports_no_builtin_plugin() -> None:
    offenders = {
        str(path.relative_to(FRAMEWORK)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "causalrec_plugins"
        )
        for path in sorted(FRAMEWORK.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_plugins_import_the_framework_only_through_its_plugin_api_and_the_toolkit_by_public_names() -> None:
    offenders: dict[str, list[str]] = {}
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                wrong = [
                    a.name for a in node.names if a.name.split(".")[0] in ("causalrec_assets", "causalrec_toolkit")
                ]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top = node.module.split(".")[0]
                if top == "causalrec_assets" and node.module not in PLUGIN_FACING:
                    wrong = [node.module]
                elif top == "causalrec_toolkit":
                    public = set(getattr(importlib.import_module(node.module), "__all__", ()))
                    wrong = [f"{node.module}.{a.name}" for a in node.names if a.name not in public]
                else:
                    wrong = []
            else:
                wrong = []
            if wrong:
                offenders.setdefault(str(path.relative_to(PLUGINS)), []).extend(wrong)
    assert offenders == {}


def test_every_toolkit_module_declares_its_public_names() -> None:
    missing = [p.name for p in sorted(TOOLKIT.glob("*.py")) if "__all__" not in p.read_text()]
    assert missing == []


def test_the_toolkit_imports_neither_dagster_nor_the_framework() -> None:
    modules = [f"causalrec_toolkit.{p.stem}" for p in sorted(TOOLKIT.glob("*.py")) if p.stem != "__init__"]
    probe = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "framework = {'dagster', 'causalrec_assets', 'causalrec_plugins', 'causalrec_resources'}\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & framework))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_its_package(stage: str) -> None:
    package = FRAMEWORK / "stages" / stage
    assert {p.name for p in package.glob("*.py")} >= {"__init__.py", "protocol.py", "assets.py", "checks.py"}


def test_no_asset_takes_more_than_six_inputs() -> None:
    from causalrec_assets import defs

    inputs = {a.node_def.name: len(a.keys_by_input_name) for a in defs.assets}  # type: ignore[union-attr]
    assert inputs["ranking"] >= 1 and max(inputs.values()) <= 6, inputs


def test_publishing_waits_on_the_sinks_and_every_stored_asset_is_upstream_of_one() -> None:
    """Publishing reads none of them: it only waits; on the sinks, so the UI's graph stays
    readable, and through them on every stored asset."""
    from causalrec_assets import defs

    graph = defs.resolve_asset_graph()
    publish = dg.AssetKey(PUBLISH_ASSET)
    direct = graph.get(publish).parent_keys
    assert 1 <= len(direct) <= 6, direct
    stored = {k for k in graph.get_all_asset_keys() if k != publish} - {dg.AssetKey(k) for k in OPTIONAL}
    ancestors = set()
    frontier = set(direct)
    while frontier:
        key = frontier.pop()
        ancestors.add(key)
        frontier |= set(graph.get(key).parent_keys) - ancestors
    assert stored <= ancestors, stored - ancestors


def test_a_moved_module_still_imports_by_its_old_path_as_the_same_module_with_a_warning() -> None:
    from causalrec_assets.plugin_api import PluginAPIDeprecationWarning

    sys.modules.pop("causalrec_assets.features", None)
    with pytest.warns(PluginAPIDeprecationWarning, match="moved to causalrec_toolkit.features"):
        old = importlib.import_module("causalrec_assets.features")
    new = importlib.import_module("causalrec_toolkit.features")
    assert old is new
    sys.modules.pop("causalrec_assets.features", None)
    with pytest.warns(PluginAPIDeprecationWarning):  # a pickle written before the move names the old path
        assert pickle.loads(b"ccausalrec_assets.features\nPairFeaturizer\n.") is new.PairFeaturizer
