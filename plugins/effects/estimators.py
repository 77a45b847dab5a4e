"""Average-effect estimators over a backdoor adjustment set, on EconML where it has them.

Every estimator takes an ``EffectData`` (the adjustment covariates as the data has them,
treatment and outcome on the outcome's own scale) and returns an ``Estimate`` with a 95%
interval that accounts for the fitted nuisance models:

- ``dr_learner``: cross-fitted AIPW (what EconML's ``LinearDRLearner`` without effect
  modifiers computes): right when either the propensity or the outcome model is; folds by
  user, scores summed shard by shard (``crossfit``), the interval clustered by user.
- ``linear_dml``: EconML's ``LinearDML`` with the adjustment covariates as effect modifiers;
  its ATE averages the fitted linear effect surface (right when the effect is linear in them).
- ``causal_forest``: EconML's ``CausalForestDML``; the ATE of the forest with its own
  doubly robust interval.
- ``ips`` / ``snips``: inverse-propensity weighting with the same cross-fitted propensities,
  Horvitz-Thompson and self-normalised; influence-function intervals (IPS's clustered by user).
- ``within_user``: doubly robust *within each user's log*: pairs are compared with the
  same user's other pairs of the same item topic (the outcome model's level and the
  propensity's are set by that cell's own rows), so confounding that is constant within a
  (user, topic) cell (a taste, a trait no table holds) cancels, however poorly the features
  measure it; the boosted nuisance models adjust for what varies within the cell. Standard
  errors are clustered by user.
- ``naive``: the difference in means, no adjustment: the confounded reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from pydantic import Field
from threadpoolctl import threadpool_limits

from causalrec_assets.plugin_api import EffectInputs, PluginConfig
from causalrec_plugins.effects.crossfit import CrossFitted, DoublyRobustSums, cross_fit, doubly_robust_sums, user_folds
from causalrec_plugins.effects.nuisance import (
    NUISANCE_HELP,
    NUISANCE_ROWS,
    NUISANCE_ROWS_HELP,
    NuisanceKind,
    nuisance_models,
    outcome_model,
    propensity_model,
)
from causalrec_resources.compute import ComputeResource
from causalrec_resources.onnx_runtime import available_cores
from causalrec_toolkit.variables import ITEM_CELL, TOPIC

Z95 = 1.959963984540054


class EstimatorConfig(PluginConfig):
    """Settings every row-level estimator shares."""

    nuisance: NuisanceKind = Field(default="boosting", description=NUISANCE_HELP)
    nuisance_rows: int = Field(default=NUISANCE_ROWS, ge=0, description=NUISANCE_ROWS_HELP)
    folds: int = Field(default=3, ge=2, description="Cross-fitting folds of the nuisance models.")
    propensity_clip: float = Field(
        default=0.01, ge=0.0, lt=0.5, description="Propensities are clipped to [c, 1 - c] in the weights."
    )
    seed: int = Field(default=0, description="Seed of the folds and the models.")


@dataclass
class EffectData:
    """What an estimator fits: covariates ``w`` (``categorical`` marks code columns),
    treatment ``t`` (0/1) and outcome ``y`` on its own scale; where the features say, each
    row's user (``units``) and (user, item topic) cell (``cells``), as integer codes, and
    which covariates the pipeline computed from the log itself (``from_log``)."""

    w: np.ndarray
    t: np.ndarray
    y: np.ndarray
    categorical: list[bool]
    columns: list[str]
    units: np.ndarray | None = None
    cells: np.ndarray | None = None
    from_log: list[bool] | None = None
    keys: np.ndarray | None = None  # each row's user as a stable 64-bit key (folds and shards by user)

    @property
    def binary(self) -> bool:
        return bool(np.isin(self.y, (0.0, 1.0)).all())

    @property
    def user_keys(self) -> np.ndarray:
        """Each row's user key; without users, each row its own unit."""
        return self.keys if self.keys is not None else np.arange(len(self.t), dtype=np.int64)


@dataclass
class Estimate:
    estimator: str
    estimate: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")

    @property
    def stderr(self) -> float:
        return (self.ci_high - self.ci_low) / (2 * Z95)


def effect_data(inputs: EffectInputs, adjust: list[str], cross: bool = True) -> EffectData:
    """The adjustment set's covariates: the row-level features that carry its variables when
    the pipeline passes them, else the discrete variables themselves as categorical codes;
    with ``cross``, plus their categorical columns crossed into one cell (``with_cell``)."""
    if inputs.features is not None:
        features = inputs.features
        columns = features.columns_for(adjust)
        # one matrix with room for the crossed cell: a log's covariates are copied once, not twice;
        # float32 where every stored feature is (``encoding.stored``), float64 otherwise
        dtype = np.float32 if all(features.frame.schema[c] in (pl.Float32, pl.Int32) for c in columns) else np.float64
        w = np.empty((features.height, len(columns) + int(cross)), dtype=dtype)
        for k, column in enumerate(columns):
            w[:, k] = features.frame[column].cast(pl.Float64).to_numpy()
        _, t, y = features.arrays([])
        categorical = [c in set(features.categorical) for c in columns]
        units, cells = user_cells(features.frame, features.units())
        from_log = [c in set(features.from_log) for c in columns]
        data = EffectData(w[:, : len(columns)], t, y, categorical, columns, units, cells, from_log, features.units())
        crossed = crossed_cell(data) if cross else None
        if crossed is None:
            return data
        w[:, -1] = crossed
        return with_cell_column(data, w)
    data = inputs.variables
    for name in (inputs.treatment, inputs.outcome):
        if name not in data.columns:
            raise KeyError(f"the variable table has no {name!r} column (columns: {', '.join(data.columns)})")
    columns = [c for c in adjust if c in data.columns]
    codes = [data[c].cast(pl.String).rank("dense").cast(pl.Float64).to_numpy() - 1 for c in columns]
    w = np.column_stack(codes) if codes else np.zeros((data.height, 0))
    t = data[inputs.treatment].cast(pl.Int64).to_numpy()
    y = data[inputs.outcome].cast(pl.Float64).to_numpy()
    data = EffectData(w, t, y, [True] * len(columns), columns)
    return with_cell(data) if cross else data


def user_cells(frame: pl.DataFrame, units: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each row's user and (user, kind of item) cell as codes 0..n-1: the item's fine cluster
    where the features carry one (``item_cell``: purer than its topic), else its topic, else
    the user alone; ``(None, None)`` without users."""
    if units is None:
        return None, None
    kind = next((c for c in (ITEM_CELL, TOPIC) if c in frame.columns), None)
    topics = frame[kind].to_numpy() if kind else np.zeros(len(units))
    users = np.unique(units, return_inverse=True)[1].ravel().astype(np.int64)
    topic = np.unique(topics, return_inverse=True)[1].ravel().astype(np.int64)
    # one integer per (user, topic), ordered as the pairs are: the codes np.unique(axis=0) gives, 50x faster
    cells = np.unique(users * (int(topic.max(initial=0)) + 1) + topic, return_inverse=True)[1].ravel()
    return users, cells


CELL = "crossed_cell"
MAX_CELLS = 250  # a categorical split of gradient boosting takes at most 255 levels
MIN_ROWS_PER_CELL = 20


def crossed_cell(data: EffectData) -> np.ndarray | None:
    """One categorical code crossing ``data``'s categorical covariates, most exposure-related
    first, as many as keep the cells few and full enough; None when fewer than two cross.

    Trees find an interaction of two categories (age group x category) only by luck when
    neither has a main effect: a split on either alone gains nothing. The crossed cell makes
    every such interaction one split away, and the doubly robust estimate lands on the truth
    where it otherwise keeps part of the confounding."""
    index = [k for k, c in enumerate(data.categorical) if c]
    if len(index) < 2:
        return None
    order = sorted(index, key=lambda k: -_dependence(data.w[:, k], data.t))
    cells = np.zeros(len(data.t), dtype=np.int64)
    crossed: list[int] = []
    for k in order:
        _, codes = np.unique(data.w[:, k], return_inverse=True)
        candidate = np.unique(cells * (codes.max() + 1) + codes, return_inverse=True)[1]
        n_cells = candidate.max() + 1
        if n_cells > MAX_CELLS or len(data.t) / n_cells < MIN_ROWS_PER_CELL:
            continue
        cells, crossed = candidate, [*crossed, k]
    return cells.astype(np.float64) if len(crossed) >= 2 else None


def with_cell_column(data: EffectData, w: np.ndarray) -> EffectData:
    """``data`` whose covariates are ``w``: its own plus the crossed cell as the last column."""
    from_log = None if data.from_log is None else [*data.from_log, False]
    return replace(data, w=w, categorical=[*data.categorical, True], columns=[*data.columns, CELL], from_log=from_log)


def with_cell(data: EffectData) -> EffectData:
    """``data`` plus its crossed cell (``crossed_cell``) as one more categorical covariate."""
    cells = crossed_cell(data)
    return data if cells is None else with_cell_column(data, np.column_stack([data.w, cells]))


def _dependence(column: np.ndarray, treated: np.ndarray) -> float:
    """How much a categorical column says about exposure: the spread of its levels' rates."""
    levels, codes = np.unique(column, return_inverse=True)
    rates = np.bincount(codes, weights=treated, minlength=len(levels)) / np.bincount(codes, minlength=len(levels))
    return float(np.std(rates))


def _interval(value: float, stderr: float) -> tuple[float, float]:
    return value - Z95 * stderr, value + Z95 * stderr


def _covariates(data: EffectData) -> np.ndarray:
    """EconML needs at least one covariate column: a constant stands in for an empty set."""
    return data.w if data.w.shape[1] else np.zeros((len(data.t), 1))


def _mask(data: EffectData) -> list[bool]:
    return data.categorical if data.w.shape[1] else [False]


def _scalar(value) -> float:
    return float(np.ravel(value)[0])


@dataclass
class DoublyRobust:
    """The nuisance models fitted once by user folds, and the log's sums of the doubly robust,
    IPS and SNIPS scores (``crossfit``): what ``dr_learner``, ``ips``, ``snips`` and the
    overlap diagnostics read, and what ``within_user`` reuses where its covariates are the same."""

    model: CrossFitted
    folds: np.ndarray
    sums: DoublyRobustSums

    def estimate(self, name: str) -> Estimate:
        if name == "snips":
            value, stderr = self.sums.snips.estimate()
            return Estimate(name, value, *_interval(value, stderr))
        scores = self.sums.dr if name == "dr_learner" else self.sums.ips
        return Estimate(name, scores.mean, *scores.interval())

    def overlap(self) -> dict[str, float]:
        return self.sums.overlap.summary()


def doubly_robust(data: EffectData, cfg: EstimatorConfig, compute: ComputeResource | None = None) -> DoublyRobust:
    """Fit the propensity and outcome models per user fold here, then sum every row's scores
    shard by shard (on ``compute``: local by default)."""
    propensity, regression = nuisance_models(cfg.nuisance, data.binary, _mask(data), cfg.seed, cfg.nuisance_rows)
    folds = user_folds(data.user_keys, cfg.folds, cfg.seed)
    w = _covariates(data)
    with fitting():
        model = cross_fit(w, data.t, data.y, folds, propensity, regression, data.binary)
        sums = doubly_robust_sums(w, data.t, data.y, data.user_keys, model, folds, cfg.propensity_clip, compute)
    return DoublyRobust(model, folds, sums)


def dr_learner(
    data: EffectData, cfg: EstimatorConfig, with_interval: bool = True, fitted: DoublyRobust | None = None
) -> Estimate:
    estimate = (fitted or doubly_robust(data, cfg)).estimate("dr_learner")
    return estimate if with_interval else Estimate("dr_learner", estimate.estimate)


def ips(data: EffectData, cfg: EstimatorConfig, fitted: DoublyRobust | None = None) -> Estimate:
    return (fitted or doubly_robust(data, cfg)).estimate("ips")


def snips(data: EffectData, cfg: EstimatorConfig, fitted: DoublyRobust | None = None) -> Estimate:
    return (fitted or doubly_robust(data, cfg)).estimate("snips")


def linear_dml(data: EffectData, cfg: EstimatorConfig, with_interval: bool = True) -> Estimate:
    from econml.dml import LinearDML
    from sklearn.model_selection import KFold

    w = _covariates(data)
    x = _one_hot(w, _mask(data))  # the effect surface: linear in indicators and numbers
    mask = [False] * x.shape[1] + _mask(data)  # the nuisance models see [X, W]
    model = LinearDML(
        model_y=outcome_model(cfg.nuisance, data.binary, mask, cfg.seed, cfg.nuisance_rows),
        model_t=propensity_model(cfg.nuisance, mask, cfg.seed, cfg.nuisance_rows),
        discrete_treatment=True,
        discrete_outcome=data.binary,
        cv=KFold(cfg.folds, shuffle=True, random_state=cfg.seed),
        random_state=cfg.seed,
    )
    model.fit(data.y, data.t, X=x, W=w)
    value = _scalar(model.ate(X=x))
    if not with_interval:
        return Estimate("linear_dml", value)
    low, high = model.ate_interval(X=x, alpha=0.05)
    return Estimate("linear_dml", value, _scalar(low), _scalar(high))


def causal_forest(data: EffectData, cfg: EstimatorConfig, with_interval: bool = True) -> Estimate:
    from econml.dml import CausalForestDML
    from sklearn.model_selection import KFold

    model = CausalForestDML(
        model_y=outcome_model(cfg.nuisance, data.binary, _mask(data), cfg.seed, cfg.nuisance_rows),
        model_t=propensity_model(cfg.nuisance, _mask(data), cfg.seed, cfg.nuisance_rows),
        discrete_treatment=True,
        discrete_outcome=data.binary,
        cv=KFold(cfg.folds, shuffle=True, random_state=cfg.seed),
        n_estimators=200,
        min_samples_leaf=20,
        random_state=cfg.seed,
    )
    model.fit(data.y, data.t, X=_covariates(data))
    value = _scalar(model.ate_)
    if not with_interval:
        return Estimate("causal_forest", value)
    stderr = _scalar(model.ate_stderr_)
    return Estimate("causal_forest", value, *_interval(value, stderr))


def _one_hot(x: np.ndarray, categorical: list[bool]) -> np.ndarray:
    """Effect modifiers for a linear effect surface: indicators of the codes, numbers as is."""
    parts = []
    for k, is_cat in enumerate(categorical):
        column = x[:, k]
        if is_cat:
            levels = np.unique(column)
            parts += [(column == level).astype(float)[:, None] for level in levels[1:]]
        else:
            parts.append(column[:, None])
    return np.hstack(parts) if parts else np.zeros((len(x), 0))


def naive(data: EffectData, cfg: EstimatorConfig | None = None) -> Estimate:
    treated, control = data.y[data.t == 1], data.y[data.t == 0]
    value = float(treated.mean() - control.mean())
    stderr = float(np.sqrt(treated.var(ddof=1) / len(treated) + control.var(ddof=1) / len(control)))
    return Estimate("naive", value, *_interval(value, stderr))


def row_estimators() -> dict[str, Callable[..., Estimate]]:
    """Every row-level estimator by name."""
    from causalrec_plugins.effects.within_user import within_user

    return {
        "dr_learner": dr_learner,
        "linear_dml": linear_dml,
        "causal_forest": causal_forest,
        "ips": ips,
        "snips": snips,
        "within_user": within_user,
        "naive": naive,
    }


@contextmanager
def fitting() -> Iterator[None]:
    """BLAS / OpenMP threads set to the cores this process really has (more threads than
    cores made one fit 50x slower on a busy machine), and EconML's shape notes silenced."""
    with threadpool_limits(available_cores()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def fit_estimate(name: str, data: EffectData, cfg: EstimatorConfig, **kwargs) -> Estimate:
    """Run the estimator called ``name`` (``row_estimators``)."""
    known = row_estimators()
    if name not in known:
        raise KeyError(f"unknown estimator {name!r}; known: {', '.join(known)}")
    with fitting():
        return known[name](data, cfg, **kwargs)
