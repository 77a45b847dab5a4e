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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import dagster as dg
import numpy as np
import polars as pl

PLUGIN_API_VERSION = "1.1"

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
class PairFeatures:
    """Row-level features of logged (user, item) pairs, for estimators that want the data as
    it is rather than binned: numbers as numbers, categorical codes, the item text's principal
    components, the user's taste (see ``causalrec_assets.features``), and ``exposure`` and
    ``outcome`` on the outcome's own scale. ``groups`` maps each causal variable of the graph
    to the columns that carry it; ``categorical`` lists the columns holding category codes.
    The ``unit`` column, where the frame has one, numbers each row's user (not a feature: it
    lets an estimator compare pairs within one user's log and cluster its standard errors);
    ``from_log`` lists the feature columns computed from the training log itself (a user's
    cross-fitted taste and history), which vary inside one user's log only with the fold a
    row was in."""

    frame: pl.DataFrame
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)
    categorical: Sequence[str] = ()
    outcome_threshold: float = 0.5
    treatment: str = "exposure"
    outcome: str = "outcome"
    unit: str = "_user"
    from_log: Sequence[str] = ()

    @property
    def height(self) -> int:
        return self.frame.height

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in (self.treatment, self.outcome, self.unit)]

    def units(self) -> np.ndarray | None:
        """Each row's user as an integer code, or None where the frame does not say."""
        return self.frame[self.unit].to_numpy() if self.unit in self.frame.columns else None

    @property
    def binary_outcome(self) -> bool:
        """Whether the outcome only takes the values 0 and 1."""
        values = self.frame[self.outcome].drop_nulls().unique().to_list()
        return set(values) <= {0.0, 1.0}

    def columns_for(self, variables: Sequence[str]) -> list[str]:
        """The feature columns that carry ``variables`` (names of no group carry none)."""
        wanted = {c for v in variables for c in self.groups.get(v, [])}
        return [c for c in self.feature_columns if c in wanted]

    def arrays(self, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(W, t, y)``: the columns as a float matrix, the treatment (0/1) and the outcome."""
        w = self.frame.select(columns).to_numpy().astype(np.float64) if columns else np.zeros((self.height, 0))
        t = self.frame[self.treatment].cast(pl.Int64).to_numpy()
        y = self.frame[self.outcome].cast(pl.Float64).to_numpy()
        return w, t, y

    def take(self, rows: np.ndarray) -> PairFeatures:
        return replace(self, frame=self.frame[rows])

    def difference_in_means(self) -> tuple[float, float, int, int]:
        """``(effect, standard error, exposed rows, unexposed rows)`` of the plain difference in
        mean outcome: the effect itself where exposure was randomized (the test slice)."""
        t = self.frame[self.treatment].cast(pl.Int64).to_numpy()
        y = self.frame[self.outcome].cast(pl.Float64).to_numpy()
        n1, n0 = int(t.sum()), int((1 - t).sum())
        if min(n1, n0) < 2:
            return float("nan"), float("nan"), n1, n0
        y1, y0 = y[t == 1], y[t == 0]
        return float(y1.mean() - y0.mean()), float(np.sqrt(y1.var(ddof=1) / n1 + y0.var(ddof=1) / n0)), n1, n0


@dataclass
class EffectInputs:
    """The discretised variable table (one row per training pair), the learned graph, and the
    names of treatment and outcome.

    Since plugin API 1.1 also, when the pipeline has them: ``features``, the same training pairs
    as row-level features (row-aligned with ``variables``; its outcome on its own scale), and
    ``test``, the randomized test slice's pairs. An estimator may read ``test`` to choose or
    check its headline, never to fit a model."""

    variables: pl.DataFrame
    edges: list[tuple[str, str]]
    treatment: str = "exposure"
    outcome: str = "outcome"
    network: Any = None  # the fitted pgmpy DiscreteBayesianNetwork over ``variables``
    features: PairFeatures | None = None
    test: PairFeatures | None = None

    def take(self, rows: np.ndarray) -> EffectInputs:
        """The same inputs on a subset of the training rows (the network is refitted)."""
        features = self.features.take(rows) if self.features is not None else None
        return replace(self, variables=self.variables[rows], features=features, network=None)

    def with_treatment(self, values: np.ndarray) -> EffectInputs:
        """The same inputs with the treatment replaced (a placebo), in both tables."""
        column = np.asarray(values).astype(np.int64)
        variables = self.variables.with_columns(pl.Series(self.treatment, column.astype(str)))
        features = None
        if self.features is not None:
            frame = self.features.frame.with_columns(pl.Series(self.treatment, column.astype(np.float64)))
            features = replace(self.features, frame=frame)
        return replace(self, variables=variables, features=features, network=None)

    def with_common_cause(self, name: str, values: np.ndarray, levels: int = 8) -> EffectInputs:
        """The same inputs plus a numeric variable ``name`` that causes both the treatment and
        the outcome in the graph, so every estimator adjusts for it (the discrete table gets it
        cut into ``levels`` quantile bins)."""
        values = np.asarray(values, dtype=np.float64)
        edges_q = np.quantile(values, np.linspace(0, 1, levels + 1)[1:-1]) if len(values) else []
        binned = np.searchsorted(edges_q, values, side="right")
        variables = self.variables.with_columns(pl.Series(name, [f"q{b}" for b in binned], dtype=pl.String))
        edges = [*self.edges, (name, self.treatment), (name, self.outcome)]
        features = None
        if self.features is not None:
            frame = self.features.frame.with_columns(pl.Series(name, values))
            features = replace(self.features, frame=frame, groups={**self.features.groups, name: [name]})
        return replace(self, variables=variables, edges=edges, features=features, network=None)


EFFECT_COLUMNS = ["treatment", "outcome", "estimand", "estimator", "estimate", "ci_low", "ci_high"]


class EffectsPlugin(Plugin):
    """Estimates the effect of the treatment on the outcome; returns rows of EFFECT_COLUMNS,
    the first ``ATE`` row being the headline estimate."""

    stage = "effects"

    @abstractmethod
    def estimate(self, inputs: EffectInputs, context: PluginContext) -> pl.DataFrame: ...

    def reestimate(self, inputs: EffectInputs, estimator: str, context: PluginContext) -> float:
        """The ATE that ``estimator`` (a name this plugin writes in the ``estimator`` column)
        gives on other inputs: what the refutation checks re-run (placebos, halves, an added
        common cause). Optional (since 1.1): the default runs ``estimate`` and reads the row;
        override it to skip the intervals."""
        table = self.estimate(inputs, context)
        rows = table.filter((pl.col("estimand") == "ATE") & (pl.col("estimator") == estimator))
        if rows.is_empty():
            return float("nan")
        value = rows["estimate"][0]
        return float(value) if value is not None else float("nan")

    def diagnostics(self) -> Mapping[str, Any]:
        """Facts about the last ``estimate`` for the materialization's metadata: which row is
        the headline and why, overlap, agreement. Optional (since 1.1); the default has none."""
        return {}


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
    pair_featurizer: Any = None  # since 1.1: a fitted PairFeaturizer (row-level features of any pairs)


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
