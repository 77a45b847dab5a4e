"""The house rules a new maintainer relies on: the framework never imports a built-in plugin,
each stage has its package, and the lineage reads as the six stages in a row."""

from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg
import pytest

import causalrec_assets
from causalrec_assets.pipeline import OPTIONAL
from causalrec_assets.plugin_api import STAGES
from causalrec_assets.publish import PUBLISH_ASSET

FRAMEWORK = Path(causalrec_assets.__file__).parent


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
