"""Discovers stage plugins from entry points and checks each one before it is used.

A broken plugin (fails to import, wrong protocol, incompatible API version) is recorded with
its reason and reported by name; the other plugins keep working.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from causalrec_assets import plugin_api
from causalrec_assets.plugin_api import PLUGIN_API_VERSION, STAGE_BASES, STAGES, Plugin, PluginConfig, parse_api_version

log = logging.getLogger("causalrec.registry")

ENTRY_POINT_PREFIX = "causalrec."

# The built-in plugins ship with the framework, so they always target its plugin API version.
BUILTIN_DISTRIBUTION = "dagster-causalrec"  # on the index, "causalrec" is an unrelated project

# Plugin names that would collide with fields of the stage run config.
RESERVED_NAMES: frozenset[str] = frozenset({"plugin"})


class PluginError(LookupError):
    """A plugin asked for by name is unknown or broken."""


@dataclass(frozen=True)
class PluginInfo:
    stage: str
    name: str
    target: str  # "module:attr" of the entry point
    distribution: str
    version: str
    plugin: type[Plugin] | None = None
    api_version: str | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()  # usable, but worth knowing: deprecated API it relies on, an undeclared version

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        """``ok``, ``ok (<notes>)`` or ``broken: <reason>`` — always one line."""
        if not self.ok:
            return _one_line(f"broken: {self.error}")
        return _one_line(f"ok ({'; '.join(self.notes)})") if self.notes else "ok"

    def describe(self) -> str:
        """One line naming the plugin, where it comes from, and its status."""
        return f"causalrec plugin {self.stage}.{self.name} ({self.distribution} {self.version}): {self.status}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def api_incompatibility(declared: object, current: str = PLUGIN_API_VERSION) -> str | None:
    """Why a plugin written for plugin API ``declared`` cannot run on ``current``, or None.

    Semver rule: the same major version, and a minor version the framework already provides
    (a plugin for 1.3 may use what 1.3 added, so 1.2 cannot run it; 1.0 plugins run on 1.3)."""
    try:
        d_major, d_minor = parse_api_version(declared)
    except ValueError as exc:
        return f"{exc}"
    c_major, c_minor = parse_api_version(current)
    if d_major != c_major:
        return (
            f"plugin API major version {d_major} differs from this causalrec's {c_major}; "
            f"install a release of the plugin built for plugin API {c_major}.x"
        )
    if d_minor > c_minor:
        return f"it needs plugin API {declared}, newer than this causalrec's {current}; upgrade causalrec"
    return None


def is_compatible(declared: str, current: str = PLUGIN_API_VERSION) -> bool:
    """Semver rule: same major version, and a minor version the framework already provides."""
    return api_incompatibility(declared, current) is None


def _own_classes(stage: str, cls: type) -> list[type]:
    """The plugin's classes above the framework's stage base."""
    return [k for k in cls.__mro__ if k not in STAGE_BASES[stage].__mro__]


def deprecation_notes(stage: str, cls: type) -> tuple[str, ...]:
    """What the plugin class still defines that the plugin API has deprecated for its stage."""
    own = _own_classes(stage, cls)
    return tuple(
        f"deprecated: {d.message()}"
        for d in plugin_api.DEPRECATIONS
        if d.stage == stage and d.attribute and any(d.attribute in vars(k) for k in own)
    )


def declares_api_version(stage: str, cls: type) -> bool:
    """Whether the plugin states its API version (else it inherits the framework's current one,
    which says nothing about what it was written for)."""
    return any("api_version" in vars(k) for k in _own_classes(stage, cls))


def hook_signature_problem(stage: str, cls: type) -> str | None:
    """Why a hook the plugin overrides cannot be called the way the stage declares it (the
    stage calls it with every parameter of its declaration), or None: checked when the plugin
    is registered, as pluggy checks a hook implementation against its specification."""
    base = STAGE_BASES[stage]
    for own in _own_classes(stage, cls):
        for name in vars(own):
            declared = getattr(base, name, None)
            if name.startswith("_") or not callable(declared) or inspect.isclass(declared):
                continue
            try:
                want, got = inspect.signature(declared), inspect.signature(getattr(cls, name))
            except (TypeError, ValueError):  # a builtin without a signature: nothing to compare
                continue
            positional = [p for p in want.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            keywords = {p.name: None for p in want.parameters.values() if p.kind == p.KEYWORD_ONLY}
            try:
                got.bind(*[None] * len(positional), **keywords)
            except TypeError as err:
                return f"{cls.__qualname__}.{name}{got} cannot be called as {base.__name__}.{name}{want}: {err}"
    return None


def check_plugin(stage: str, obj: object) -> str | None:
    """Return why ``obj`` is not a usable plugin for ``stage``, or None when it is."""
    base = STAGE_BASES[stage]
    if not inspect.isclass(obj):
        return f"entry point does not name a class (got {type(obj).__name__})"
    if not issubclass(obj, base):
        return f"{obj.__qualname__} does not implement the {stage} protocol (subclass {base.__name__})"
    missing = sorted(getattr(obj, "__abstractmethods__", ())) + obj.missing_methods()
    if missing:
        return f"{obj.__qualname__} lacks required method(s): {', '.join(missing)}"
    mismatch = hook_signature_problem(stage, obj)
    if mismatch:
        return mismatch
    declared = getattr(obj, "api_version", None)
    why = api_incompatibility(declared)
    if why:
        return (
            f"{obj.__qualname__} targets plugin API {declared}, incompatible with this causalrec's "
            f"plugin API {PLUGIN_API_VERSION}: {why}"
        )
    config = getattr(obj, "Config", None)
    if not (inspect.isclass(config) and issubclass(config, PluginConfig)):
        return f"{obj.__qualname__}.Config must subclass causalrec_assets.plugin_api.PluginConfig"
    return None


def _load(stage: str, ep: EntryPoint) -> PluginInfo:
    dist = ep.dist.name if ep.dist is not None else "?"
    version = ep.dist.version if ep.dist is not None else "?"
    base = dict(stage=stage, name=ep.name, target=ep.value, distribution=dist, version=version)
    try:
        obj = ep.load()
    except Exception as exc:  # a third party's import error must not take the others down
        return PluginInfo(**base, error=_one_line(f"failed to import {ep.value}: {type(exc).__name__}: {exc}"))
    reason = check_plugin(stage, obj)
    api = str(getattr(obj, "api_version", None))
    if reason:
        return PluginInfo(**base, api_version=api, error=_one_line(reason))
    notes = deprecation_notes(stage, obj)
    if dist != BUILTIN_DISTRIBUTION and not declares_api_version(stage, obj):
        notes += (f"api_version not declared, assumed {PLUGIN_API_VERSION}",)
    return PluginInfo(**base, plugin=obj, api_version=api, notes=notes)


@dataclass
class PluginRegistry:
    """Every plugin found, good or broken, per stage."""

    infos: dict[str, dict[str, PluginInfo]] = field(default_factory=dict)

    @classmethod
    def discover(cls) -> PluginRegistry:
        infos: dict[str, dict[str, PluginInfo]] = {s: {} for s in STAGES}
        for stage in STAGES:
            for ep in entry_points(group=ENTRY_POINT_PREFIX + stage):
                info = _load(stage, ep)
                key = ep.name
                if ep.name in RESERVED_NAMES:
                    info = replace(info, plugin=None, error=f"the name {ep.name!r} is reserved by causalrec")
                elif ep.name in infos[stage]:
                    first = infos[stage][ep.name]
                    key = f"{ep.name}@{info.distribution}"
                    info = replace(
                        info,
                        plugin=None,
                        error=f"name {ep.name!r} is already registered by {first.distribution} ({first.target})",
                    )
                if not info.ok:
                    log.warning("%s", info.describe())
                infos[stage][key] = info
        return cls(infos)

    def available(self, stage: str) -> dict[str, type[Plugin]]:
        return {n: i.plugin for n, i in self.infos.get(stage, {}).items() if i.ok and i.plugin}

    def broken(self) -> list[PluginInfo]:
        return [i for stage in self.infos.values() for i in stage.values() if not i.ok]

    def get(self, stage: str, name: str) -> type[Plugin]:
        info = self.infos.get(stage, {}).get(name)
        if info is None:
            known = ", ".join(sorted(self.infos.get(stage, {}))) or "none"
            raise PluginError(f"no {stage} plugin named {name!r} (installed: {known})")
        if not info.ok:
            raise PluginError(f"{stage} plugin {name!r} is broken: {info.error}")
        return info.plugin  # type: ignore[return-value]


_REGISTRY: PluginRegistry | None = None

# (run id, stage, name) of broken plugins already reported in a run's log by this process.
_WARNED: set[tuple[str, str, str]] = set()


def warn_broken(log: Any, stage: str | None = None, registry: PluginRegistry | None = None) -> list[str]:
    """Warn in ``log`` (a Dagster run's logger) about every broken plugin, of ``stage`` or of all
    stages: one line per plugin per run (per process), naming the plugin and the reason.
    Returns the lines written."""
    registry = registry or get_registry()
    metadata = getattr(log, "metadata", None)
    run_id = str(metadata.get("run_id") or "") if isinstance(metadata, dict) else ""
    lines = []
    for info in registry.broken():
        if stage is not None and info.stage != stage:
            continue
        key = (run_id, info.stage, info.name)
        if run_id and key in _WARNED:
            continue
        _WARNED.add(key)
        line = _one_line(
            f"causalrec plugin {info.stage}.{info.name} ({info.distribution} {info.version}) is broken "
            f"and was skipped: {info.error}"
        )
        log.warning(line)
        lines.append(line)
    return lines


def get_registry(refresh: bool = False) -> PluginRegistry:
    """The process-wide registry, discovered once."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = PluginRegistry.discover()
    return _REGISTRY
