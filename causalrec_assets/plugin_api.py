"""The plugin API: one abstract class per stage, what each receives and must return.

A plugin is a class registered under the entry-point group ``causalrec.<stage>``. It
declares the plugin API version it was written for (``api_version``) and its typed
parameters (``Config``, a Dagster ``Config`` class, so the launchpad shows them). Like a
scikit-learn estimator it does no work in its constructor: it only keeps its config.
"""

from __future__ import annotations

import functools
import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import dagster as dg
import numpy as np
import polars as pl

PLUGIN_API_VERSION = "1.0"

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


# ---------------------------------------------------------------- ingest


@dataclass
class Dataset:
    """The three canonical tables (see DESIGN.md) and, for simulated worlds, their truth."""

    users: pl.DataFrame
    items: pl.DataFrame
    interactions: pl.DataFrame
    truth: GroundTruth | None = None
    name: str = "dataset"


@dataclass
class GroundTruth:
    """What a simulator knows and an estimator must recover."""

    edges: list[tuple[str, str]]
    nodes: list[str]
    ate: float
    confounders: list[str]
    uplift: pl.DataFrame  # user_id, item_id, p0, p1, uplift for every (user, item) pair

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": list(self.nodes),
            "edges": [list(e) for e in self.edges],
            "ate": float(self.ate),
            "confounders": list(self.confounders),
        }


class IngestPlugin(Plugin):
    """Reads a dataset into the canonical tables."""

    stage = "ingest"

    @abstractmethod
    def load(self, context: PluginContext) -> Dataset: ...


# ---------------------------------------------------------------- validate


@dataclass
class ExpectationOutcome:
    """One expectation's verdict, with what a person needs to find the defect."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int = 0
    sample: list[Any] = field(default_factory=list)
    detail: str = ""

    def describe(self, table: str) -> str:
        where = f"{table}.{self.column}" if self.column else table
        text = f"{self.expectation} failed on {where}"
        if self.unexpected_count:
            text += f": {self.unexpected_count} bad row(s)"
        if self.sample:
            text += f", e.g. {self.sample[:5]!r}"
        if self.detail:
            text += f" ({self.detail})"
        return text


@dataclass
class ValidationOutcome:
    table: str
    row_count: int
    results: list[ExpectationOutcome]

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def describe(self) -> str:
        if self.success:
            return f"{self.table}: all {len(self.results)} expectations passed on {self.row_count} rows"
        lines = [f.describe(self.table) for f in self.failures]
        return f"{self.table} ({self.row_count} rows): " + "; ".join(lines)


class ValidatePlugin(Plugin):
    """Checks one canonical table; ``tables`` holds the others for referential checks."""

    stage = "validate"

    @abstractmethod
    def validate(
        self, table: str, frame: pl.DataFrame, tables: Mapping[str, pl.DataFrame], context: PluginContext
    ) -> ValidationOutcome: ...


# ---------------------------------------------------------------- embed


class EmbedPlugin(Plugin):
    """Turns texts into L2-normalised float32 vectors."""

    stage = "embed"

    @abstractmethod
    def model_key(self) -> str:
        """A key that changes whenever the vectors for the same text could change."""

    @abstractmethod
    def embed(self, texts: Sequence[str], context: PluginContext) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, rows of unit norm."""

    def describe_runtime(self) -> dict[str, Any]:
        """Facts for the materialization's metadata (provider, precision, …)."""
        return {}


# ---------------------------------------------------------------- structure


@dataclass
class Knowledge:
    """Expert knowledge for structure learning: tiers (earlier tiers cannot be caused by later
    ones), variables nothing may point into, and required / forbidden edges."""

    tiers: list[list[str]] = field(default_factory=list)
    exogenous: list[str] = field(default_factory=list)
    required: list[tuple[str, str]] = field(default_factory=list)
    forbidden: list[tuple[str, str]] = field(default_factory=list)

    def forbidden_edges(self, nodes: Sequence[str]) -> set[tuple[str, str]]:
        """Every edge ruled out by the tiers, the exogenous set and the explicit list."""
        rank = {v: i for i, tier in enumerate(self.tiers) for v in tier}
        out = set(map(tuple, self.forbidden))
        for a in nodes:
            for b in nodes:
                if a == b:
                    continue
                if b in self.exogenous:
                    out.add((a, b))
                if a in rank and b in rank and rank[a] > rank[b]:
                    out.add((a, b))
        return out


class StructurePlugin(Plugin):
    """Learns a DAG over the columns of a table of discrete variables."""

    stage = "structure"

    @abstractmethod
    def learn(self, data: pl.DataFrame, knowledge: Knowledge, context: PluginContext) -> list[tuple[str, str]]:
        """Return the learned DAG's edges as (cause, effect) pairs."""


# ---------------------------------------------------------------- effects


@dataclass
class EffectInputs:
    """The discretised variable table (one row per training pair), the learned graph, and the
    names of treatment and outcome."""

    variables: pl.DataFrame
    edges: list[tuple[str, str]]
    treatment: str = "exposure"
    outcome: str = "outcome"
    network: Any = None  # the fitted pgmpy DiscreteBayesianNetwork over ``variables``


EFFECT_COLUMNS = ["treatment", "outcome", "estimand", "estimator", "estimate", "ci_low", "ci_high"]


class EffectsPlugin(Plugin):
    """Estimates the effect of the treatment on the outcome; returns rows of EFFECT_COLUMNS,
    the first ``ATE`` row being the headline estimate."""

    stage = "effects"

    @abstractmethod
    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame: ...


# ---------------------------------------------------------------- ranking


@dataclass
class RankingInputs:
    users: pl.DataFrame
    items: pl.DataFrame
    interactions: pl.DataFrame
    item_embeddings: pl.DataFrame
    user_embeddings: pl.DataFrame
    variables: pl.DataFrame  # discretised per-pair variables of the training log (row-aligned)
    variable_encoder: Any  # VariableEncoder: turns (user_id, item_id) pairs into the same variables
    edges: list[tuple[str, str]]
    network: Any  # the fitted pgmpy DiscreteBayesianNetwork
    treatment_effects: pl.DataFrame


@dataclass
class RankingOutput:
    recommendations: pl.DataFrame  # user_id, item_id, rank, score
    test_scores: pl.DataFrame  # user_id, item_id, score for every split = test pair


class RankingPlugin(Plugin):
    """Ranks unseen items for each user; scores every test pair."""

    stage = "ranking"

    @abstractmethod
    def rank(self, inputs: RankingInputs, context: PluginContext) -> RankingOutput: ...


STAGE_BASES: dict[str, type[Plugin]] = {
    "ingest": IngestPlugin,
    "validate": ValidatePlugin,
    "embed": EmbedPlugin,
    "structure": StructurePlugin,
    "effects": EffectsPlugin,
    "ranking": RankingPlugin,
}


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
