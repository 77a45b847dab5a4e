"""Run config that picks each stage's plugin and its typed parameters.

For every stage a Dagster ``Config`` class is built from the installed plugins: a ``plugin``
field naming the one to use, and one optional section per plugin holding that plugin's own
``Config``. The launchpad shows every plugin's parameters with their types and descriptions;
its default config holds the default plugin's section only (the others are ``null`` until
given), and a run with no config uses the defaults. Two shapes pick a plugin:
``{plugin: popularity, popularity: {k: 3}}``, or its section alone, ``{popularity: {k: 3}}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, overload

import dagster as dg
from pydantic import Field, ValidationError, create_model, model_validator

from causalrec_assets.plugin_api import Plugin, PluginContext
from causalrec_assets.registry import RESERVED_NAMES, get_registry, warn_broken
from causalrec_resources.settings import current_settings

SHARED_RESOURCES = ("onnx_runtime", "compute")  # Dagster resources handed to plugins in PluginContext.resources

DEFAULT_PLUGINS: dict[str, str] = {
    "ingest": "auto",
    "validate": "great_expectations",
    "embed": "onnx_minilm",
    "structure": "hill_climb",
    "effects": "backdoor",
    "ranking": "causal",
}


def stage_config_class(stage: str) -> type[dg.Config]:
    """A Config class for ``stage`` with a section per installed, working plugin.

    ``plugin`` is an enum of the installed names (broken ones included, so a run naming one
    fails in its step with the reason), so the launchpad and ``--config-json`` refuse a
    misspelt plugin before any step starts."""
    registry = get_registry()
    plugins = registry.available(stage)
    names = sorted({*plugins, *(info.name for info in registry.broken() if info.stage == stage)} - RESERVED_NAMES)
    default = DEFAULT_PLUGINS.get(stage, "")
    default = default if default in plugins else next(iter(sorted(plugins)), "")
    choices = ", ".join(sorted(plugins))
    kind: Any = Literal[tuple(names)] if names else str  # type: ignore[valid-type]
    fields: dict[str, Any] = {
        "plugin": (
            kind,
            Field(default=default, description=f"The {stage} plugin to run (installed: {choices})."),
        )
    }
    sections = []
    for name, cls in sorted(plugins.items()):
        if name in RESERVED_NAMES:  # would overwrite the selector field
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        text = f"Parameters of the {name!r} plugin. {doc[0] if doc else ''}"
        fields[name] = section_field(cls.Config, cls.Config() if name == default else None, text)
        sections.append(name)
    title = "".join(part.capitalize() for part in stage.split("_")) + "StageConfig"
    model = create_model(title, __base__=dg.Config, __validators__={"_picked": PICK_PLUGIN}, **fields)
    model.__causalrec_stage__ = stage  # type: ignore[attr-defined]
    model.__causalrec_sections__ = tuple(sections)  # type: ignore[attr-defined]
    return model


def section_field(config: type, default: Any, description: str) -> tuple[Any, Any]:
    """A plugin's section: its defaults for the stage's default plugin, else ``None`` (left out
    of the launchpad's default config instead of every parameter)."""
    if default is None:
        return config | None, Field(default=None, description=description)
    return config, Field(default=default, description=description)


def pick_plugin(cls: Any, data: Any) -> Any:
    """With ``plugin`` at its default, another plugin's section picks that plugin; sections of
    two such plugins are refused, naming them. A ``plugin`` other than the default wins (and
    Dagster fills in the sections of defaults, which are then not the user's choice)."""
    if not isinstance(data, Mapping):
        return data
    default = cls.model_fields["plugin"].default
    plugin = data.get("plugin") or default
    given = {s for s in getattr(cls, "__causalrec_sections__", ()) if data.get(s) is not None}
    extra = sorted(given - {plugin, default})
    if plugin != default or not extra:
        return data
    if len(extra) == 1:
        return {**data, "plugin": extra[0]}
    raise ValueError(f"config has sections for {', '.join(map(repr, extra))} and names no plugin: add plugin: NAME")


PICK_PLUGIN = model_validator(mode="before")(classmethod(pick_plugin))  # type: ignore[arg-type]


def config_class(node: Any) -> type[dg.Config] | None:
    """The pythonic ``Config`` class an op's ``config`` argument is annotated with, if any."""
    fn = getattr(getattr(node, "compute_fn", None), "decorated_fn", None)
    param = inspect.signature(fn).parameters.get("config") if fn is not None else None
    cls = param.annotation if param is not None else None
    return cls if isinstance(cls, type) and issubclass(cls, dg.Config) else None


def config_stage(node: Any) -> str | None:
    """The stage whose plugin an op's config picks (None: the op has no stage config)."""
    return getattr(config_class(node), "__causalrec_stage__", None)


def with_stage_defaults(node: Any, stage: str, choice: Any) -> Any:
    """The config schema of ``node`` with ``choice.plugin`` and its ``choice.params`` as defaults:
    what the launchpad shows and a run without config uses. A plugin that is not installed, or
    a parameter out of its bounds, fails here, when the definitions load."""
    cls = config_class(node)
    assert cls is not None, f"{node.name} has no stage config"
    plugin = get_registry().get(stage, choice.plugin)
    try:
        params = plugin.Config(**dict(choice.params))
    except ValidationError as err:
        raise ValueError(f"{stage} plugin {choice.plugin!r}: bad parameters: {err}") from None
    selector = cls.model_fields["plugin"]
    fields: dict[str, Any] = {
        "plugin": (selector.annotation, Field(default=choice.plugin, description=selector.description)),
        choice.plugin: section_field(type(params), params, f"Parameters of {choice.plugin!r}."),
    }
    return create_model(cls.__name__, __base__=cls, **fields).to_config_schema()


P = TypeVar("P", bound=Plugin)


@overload
def plugin_from_config(stage: type[P], config: dg.Config, log: Any = None) -> P: ...
@overload
def plugin_from_config(stage: str, config: dg.Config, log: Any = None) -> Plugin: ...
def plugin_from_config(stage: str | type[Plugin], config: dg.Config, log: Any = None) -> Plugin:
    """Instantiate the plugin the config names, with its section of the config.

    ``stage`` is the stage's name or its protocol class (then the result is typed as that
    protocol)."""
    name_of_stage = stage if isinstance(stage, str) else stage.stage
    registry = get_registry()
    if log is not None:
        warn_broken(log, name_of_stage, registry)
    name = config.plugin  # type: ignore[attr-defined]
    cls = registry.get(name_of_stage, name)
    params = getattr(config, name, None)
    return cls(params if params is not None else cls.Config())


def plugin_context(context: Any, seed: int = 0) -> PluginContext:
    """A PluginContext whose logger is the Dagster run's logger, with the shared resources the
    step was given (``onnx_runtime``: ONNX Runtime settings a plugin may follow)."""
    resources = {
        name: getattr(context.resources, name) for name in SHARED_RESOURCES if hasattr(context.resources, name)
    }
    return PluginContext(log=context.log, seed=seed, cache_dir=current_settings().cache_dir, resources=resources)


class RunConfigError(ValueError):
    """A run config value outside its bounds; the message names every offending field."""


def check_run_config(job_def: Any, run_config: Mapping[str, Any]) -> None:
    """Validate every step's pythonic config of this run now, with its bounds (``k >= 1``, sizes,
    fractions), so a bad value in a late stage fails the first step instead of the ranking one
    after every output was rewritten. Dagster's own schema checks types, not pydantic bounds."""
    ops = run_config.get("ops") or {}
    problems = []
    for node in job_def.graph.nodes:
        section = (ops.get(node.name) or {}).get("config")
        cls = config_class(node.definition)
        if not section or cls is None:
            continue
        try:
            cls(**section)
        except ValidationError as err:
            for e in err.errors():
                where = ".".join(str(p) for p in e["loc"])
                problems.append(f"ops.{node.name}.config.{where}: {e['msg']} (got {e.get('input')!r})")
    if problems:
        raise RunConfigError("run config refused before any step: " + "; ".join(problems))
