"""Run config that picks each stage's plugin and its typed parameters.

For every stage a Dagster ``Config`` class is built from the installed plugins: a ``plugin``
field naming the one to use, and one optional section per plugin holding that plugin's own
``Config``. The launchpad therefore shows every plugin's parameters with their types,
defaults and descriptions; a run with no config uses the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, create_model

from causalrec_assets.plugin_api import Plugin, PluginContext
from causalrec_assets.registry import RESERVED_NAMES, PluginError, get_registry, warn_broken

DEFAULT_PLUGINS: dict[str, str] = {
    "ingest": "auto",
    "validate": "great_expectations",
    "embed": "onnx_minilm",
    "structure": "hill_climb",
    "effects": "backdoor",
    "ranking": "causal",
}

BUILTIN_DATASETS = ("simulator",)


def stage_config_class(stage: str) -> type[dg.Config]:
    """A Config class for ``stage`` with a section per installed, working plugin."""
    plugins = get_registry().available(stage)
    default = DEFAULT_PLUGINS.get(stage, next(iter(plugins), ""))
    choices = ", ".join(sorted(plugins))
    fields: dict[str, Any] = {
        "plugin": (
            str,
            Field(default=default, description=f"The {stage} plugin to run (installed: {choices})."),
        )
    }
    for name, cls in sorted(plugins.items()):
        if name in RESERVED_NAMES:  # would overwrite the selector field
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        fields[name] = (
            cls.Config,
            Field(
                default_factory=cls.Config, description=f"Parameters of the {name!r} plugin. {doc[0] if doc else ''}"
            ),
        )
    title = "".join(part.capitalize() for part in stage.split("_")) + "StageConfig"
    return create_model(title, __base__=dg.Config, **fields)


def plugin_from_config(stage: str, config: dg.Config, log: Any = None) -> Plugin:
    """Instantiate the plugin the config names, with its section of the config."""
    registry = get_registry()
    if log is not None:
        warn_broken(log, stage, registry)
    name = config.plugin  # type: ignore[attr-defined]
    if stage == "ingest" and name == "auto":
        return auto_ingest_plugin(config)
    cls = registry.get(stage, name)
    params = getattr(config, name, None)
    return cls(params if params is not None else cls.Config())


def auto_ingest_plugin(config: dg.Config) -> Plugin:
    """``CAUSALREC_DATA`` picks the dataset: unset or a built-in name (``simulator``) runs the
    simulator; a directory is read by the plugin for its layout (canonical, MovieLens, Coat)."""
    from causalrec_plugins.ingest.layout import PLUGIN_FOR_LAYOUT, detect_layout

    registry = get_registry()
    data = os.environ.get("CAUSALREC_DATA", "").strip()
    if not data or data in BUILTIN_DATASETS:
        cls = registry.get("ingest", "simulator")
        return cls(getattr(config, "simulator", None) or cls.Config())
    path = Path(data).expanduser()
    layout = detect_layout(path)
    if layout is None:
        raise PluginError(
            f"CAUSALREC_DATA={data!r} is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}) nor a "
            "directory in a known layout (users/items/interactions as CSV or Parquet, MovieLens-100K, Coat)"
        )
    cls = registry.get("ingest", PLUGIN_FOR_LAYOUT[layout])
    return cls(cls.Config(path=str(path)))


def plugin_context(context: Any, seed: int = 0) -> PluginContext:
    """A PluginContext whose logger is the Dagster run's logger."""
    cache = Path(os.environ.get("CAUSALREC_CACHE", Path.home() / ".cache" / "causalrec")).expanduser()
    return PluginContext(log=context.log, seed=seed, cache_dir=cache)
