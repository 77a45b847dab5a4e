"""Helpers shared by tests that call plugins directly: a plugin context, the built-in plugins."""

from __future__ import annotations

from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.registry import get_registry


def ctx() -> PluginContext:
    return PluginContext()


BUILTINS = sorted(
    (stage, name)
    for stage, infos in get_registry().infos.items()
    for name, info in infos.items()
    if info.distribution == "dagster-causalrec"
)
