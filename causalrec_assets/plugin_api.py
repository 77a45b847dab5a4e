"""The plugin API: what every stage's plugins share (``Plugin``, ``PluginConfig``,
``PluginContext``, versioning and deprecation). Each stage's own protocol (its base class, what
it receives and returns, its hooks) is in ``causalrec_assets.stages.<stage>.protocol``; the
names are also exported here, as before 1.2.

A plugin is a class registered under the entry-point group ``causalrec.<stage>``. It
declares the plugin API version it was written for (``api_version``) and its typed
parameters (``Config``, a Dagster ``Config`` class, so the launchpad shows them). Like a
scikit-learn estimator it does no work in its constructor: it only keeps its config.
"""

from __future__ import annotations

import functools
import logging
import warnings
from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import dagster as dg

PLUGIN_API_VERSION = "1.7"

STAGES: tuple[str, ...] = ("ingest", "validate", "embed", "structure", "effects", "ranking")


class PluginConfig(dg.Config):
    """Base class of every plugin's typed parameters (empty: a plugin without parameters)."""


@dataclass
class PluginContext:
    """What the framework hands a plugin besides its inputs: a logger, a seed, a cache folder."""

    log: logging.Logger = field(default_factory=lambda: logging.getLogger("causalrec"))
    seed: int = 0
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "causalrec")
    resources: Mapping[str, Any] = field(default_factory=dict)


class Plugin(ABC):
    """Base of every stage plugin. Subclasses set ``Config`` and implement the stage method."""

    stage: ClassVar[str] = ""
    api_version: ClassVar[str] = PLUGIN_API_VERSION
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def missing_methods(cls) -> list[str]:
        """Hooks a stage requires one of, where no single one is abstract (e.g. ranking's
        ``fit`` or ``rank``): the names of those this class implements none of."""
        return []


# ---------------------------------------------------------------- versioning and deprecation
#
# PLUGIN_API_VERSION is MAJOR.MINOR. A plugin declares the version it was written for
# (``api_version``); the registry accepts it when the majors are equal and its minor is at most
# the framework's (minors only add). Whatever is removed or changed incompatibly waits for the
# next major, after at least one minor release in which it is deprecated: it keeps working, warns
# with PluginAPIDeprecationWarning, and ``causalrec plugins`` names the plugins still using it.
# CHANGELOG.md has a "Plugin API" section per version.


def parse_api_version(text: object) -> tuple[int, int]:
    """``"1.2"`` (or ``"1.2.3"``) -> ``(1, 2)``; anything else is a ValueError naming the value."""
    parts = str(text).strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"api_version {text!r} is not MAJOR.MINOR (e.g. {PLUGIN_API_VERSION!r})")
    return int(parts[0]), int(parts[1])


class PluginAPIDeprecationWarning(FutureWarning):
    """A part of the plugin API that a plugin uses is deprecated; it goes in the next major version.

    A FutureWarning, not a DeprecationWarning, so that it is shown by default: the person who
    sees it runs the pipeline, not the plugin's own code."""


@dataclass(frozen=True)
class Deprecation:
    """One deprecated part of the plugin API.

    ``attribute`` (with ``stage``) names a method or class attribute a plugin may define: the
    registry notes every plugin of that stage that still defines it. Framework functions that
    plugins call are marked with ``deprecated`` instead, and warn when called."""

    what: str
    since: str
    removed_in: str
    instead: str = ""
    stage: str = ""
    attribute: str = ""

    def message(self) -> str:
        text = f"{self.what} is deprecated since plugin API {self.since} and goes in {self.removed_in}"
        return f"{text}; {self.instead}" if self.instead else text


DEPRECATIONS: list[Deprecation] = []
"""Every deprecation of the current major version (plugin API 1.0 has none yet)."""

_F = TypeVar("_F", bound=Callable[..., Any])


def warn_deprecated(deprecation: Deprecation, stacklevel: int = 2) -> None:
    """Warn (PluginAPIDeprecationWarning) that ``deprecation.what`` is used."""
    warnings.warn(deprecation.message(), PluginAPIDeprecationWarning, stacklevel=stacklevel + 1)


def deprecated(since: str, removed_in: str, instead: str = "") -> Callable[[_F], _F]:
    """Mark a framework function or method that plugins call as deprecated: it keeps working and
    every call warns with PluginAPIDeprecationWarning (Python shows it once per call site)."""

    def mark(func: _F) -> _F:
        note = Deprecation(f"{func.__qualname__}()", since, removed_in, instead)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            warn_deprecated(note, stacklevel=2)
            return func(*args, **kwargs)

        wrapper.__deprecation__ = note  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return mark


# ---------------------------------------------------------------- the stages' protocols
#
# Each stage's protocol lives in its own package, ``causalrec_assets.stages.<stage>.protocol``
# (since plugin API 1.2). The names stay importable from here, as before, so plugins written
# for 1.0 and 1.1 keep working unchanged; they are resolved on first use, which keeps this
# module free of the stage packages at import time. Since 1.7 this module is the one place a
# plugin imports the framework from (with ``causalrec_assets.contracts``): the helper bases
# rankers and structure learners build on, and the registry for plugins that delegate, are
# exported here too; the logic itself is in ``causalrec_toolkit``.

_STAGE_NAMES: dict[str, tuple[str, ...]] = {
    "ingest": ("Dataset", "GroundTruth", "IngestPlugin"),
    "validate": ("ExpectationOutcome", "ValidationOutcome", "ValidatePlugin"),
    "embed": ("EmbedPlugin",),
    "structure": ("Edge", "Knowledge", "StructurePlugin"),
    "effects": ("PairFeatures", "EffectInputs", "EFFECT_COLUMNS", "EffectsPlugin"),
    "ranking": ("RankingInputs", "RankingOutput", "RankingPlugin", "Ranker", "TopKConfig", "CandidateConfig"),
}
_HELPER_NAMES: dict[str, tuple[str, ...]] = {
    "causalrec_toolkit.rankers": ("ProfileRanker", "ScoredRanker", "ScoringRanker", "StreamingTopK"),
    "causalrec_toolkit.retrieval": ("CandidateRanker",),
    "causalrec_assets.stages.structure.knowledge": (
        "KnowledgeConfig",
        "KnowledgeError",
        "check_static",
        "combine",
        "search_space",
    ),
    "causalrec_assets.stages.structure.stability": ("StabilityConfig",),
    "causalrec_assets.registry": ("PluginError", "get_registry"),
}
_HOME = {
    **{name: f"causalrec_assets.stages.{stage}.protocol" for stage, names in _STAGE_NAMES.items() for name in names},
    **{name: module for module, names in _HELPER_NAMES.items() for name in names},
}


def stage_bases() -> dict[str, type[Plugin]]:
    """Each stage's protocol class, by stage name."""
    return {stage: __getattr__(f"{stage.capitalize()}Plugin") for stage in STAGES}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "STAGE_BASES":
        return stage_bases()
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), "STAGE_BASES", *_HOME])
