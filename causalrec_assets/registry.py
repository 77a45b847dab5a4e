"""Discovers stage plugins from entry points and checks each one before it is used.

A broken plugin (fails to import, wrong protocol, incompatible API version) is recorded with
its reason and reported by name; the other plugins keep working.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points

from causalrec_assets.plugin_api import PLUGIN_API_VERSION, STAGE_BASES, STAGES, Plugin, PluginConfig

log = logging.getLogger("causalrec.registry")

ENTRY_POINT_PREFIX = "causalrec."

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

    @property
    def ok(self) -> bool:
        return self.error is None


def is_compatible(declared: str, current: str = PLUGIN_API_VERSION) -> bool:
    """Semver rule: same major version, and a minor version the framework already provides."""
    try:
        d_major, d_minor = (int(x) for x in str(declared).split(".")[:2])
        c_major, c_minor = (int(x) for x in current.split(".")[:2])
    except ValueError:
        return False
    return d_major == c_major and d_minor <= c_minor


def check_plugin(stage: str, obj: object) -> str | None:
    """Return why ``obj`` is not a usable plugin for ``stage``, or None when it is."""
    base = STAGE_BASES[stage]
    if not inspect.isclass(obj):
        return f"entry point does not name a class (got {type(obj).__name__})"
    if not issubclass(obj, base):
        return f"{obj.__qualname__} does not implement the {stage} protocol (subclass {base.__name__})"
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        return f"{obj.__qualname__} lacks required method(s): {', '.join(missing)}"
    declared = getattr(obj, "api_version", None)
    if not is_compatible(str(declared)):
        return (
            f"{obj.__qualname__} targets plugin API {declared}, incompatible with this causalrec's "
            f"plugin API {PLUGIN_API_VERSION}"
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
        return PluginInfo(**base, error=f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
    reason = check_plugin(stage, obj)
    api = str(getattr(obj, "api_version", None))
    if reason:
        return PluginInfo(**base, api_version=api, error=reason)
    return PluginInfo(**base, plugin=obj, api_version=api)


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
                    log.warning("causalrec plugin %s.%s is broken: %s", stage, ep.name, info.error)
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


def get_registry(refresh: bool = False) -> PluginRegistry:
    """The process-wide registry, discovered once."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = PluginRegistry.discover()
    return _REGISTRY
