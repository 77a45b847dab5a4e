"""Average-effect estimators over a backdoor adjustment set, on EconML where it has them.

Every estimator takes an ``EffectData`` (the adjustment covariates as the data has them,
treatment and outcome on the outcome's own scale) and returns an ``Estimate`` with a 95%
interval that accounts for the fitted nuisance models:

- ``dr_learner``: EconML's ``LinearDRLearner`` without effect modifiers, i.e. cross-fitted
  AIPW: its ATE is right when either the propensity or the outcome model is; the interval is
  the influence-function (sandwich) interval of its final stage.
- ``linear_dml``: EconML's ``LinearDML`` with the adjustment covariates as effect modifiers;
  its ATE averages the fitted linear effect surface (right when the effect is linear in them).
- ``causal_forest``: EconML's ``CausalForestDML``; the ATE of the forest with its own
  doubly robust interval.
- ``ips`` / ``snips``: inverse-propensity weighting with cross-fitted propensities (the same
  model family), Horvitz-Thompson and self-normalised; influence-function intervals.
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

from causalrec_assets.plugin_api import PluginConfig
from causalrec_assets.stages.effects.protocol import EffectInputs
from causalrec_assets.variables import TOPIC
from causalrec_plugins.effects.nuisance import (
    NUISANCE_HELP,
    NUISANCE_ROWS,
    NUISANCE_ROWS_HELP,
    NuisanceKind,
    effect_model,
    nuisance_models,
    outcome_model,
    propensity_model,
)
from causalrec_resources.onnx_runtime import available_cores

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

    @property
    def binary(self) -> bool:
        return bool(np.isin(self.y, (0.0, 1.0)).all())


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
        columns = inputs.features.columns_for(adjust)
        w, t, y = inputs.features.arrays(columns)
        categorical = [c in set(inputs.features.categorical) for c in columns]
        units, cells = user_cells(inputs.features.frame, inputs.features.units())
        from_log = [c in set(inputs.features.from_log) for c in columns]
        data = EffectData(w, t, y, categorical, columns, units, cells, from_log)
        return with_cell(data) if cross else data
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
    """Each row's user and (user, item topic) cell as codes 0..n-1 (the user alone where the
    features have no topic); ``(None, None)`` without users."""
    if units is None:
        return None, None
    topics = frame[TOPIC].to_numpy() if TOPIC in frame.columns else np.zeros(len(units))
    users = np.unique(units, return_inverse=True)[1].ravel().astype(np.int64)
    topic = np.unique(topics, return_inverse=True)[1].ravel().astype(np.int64)
    # one integer per (user, topic), ordered as the pairs are: the codes np.unique(axis=0) gives, 50x faster
    cells = np.unique(users * (int(topic.max(initial=0)) + 1) + topic, return_inverse=True)[1].ravel()
    return users, cells


CELL = "crossed_cell"
MAX_CELLS = 250  # a categorical split of gradient boosting takes at most 255 levels
MIN_ROWS_PER_CELL = 20


def with_cell(data: EffectData) -> EffectData:
    """``data`` plus one categorical column crossing its categorical covariates, most
    exposure-related first, as many as keep the cells few and full enough.

    Trees find an interaction of two categories (age group x category) only by luck when
    neither has a main effect: a split on either alone gains nothing. The crossed cell makes
    every such interaction one split away, and the doubly robust estimate lands on the truth
    where it otherwise keeps part of the confounding."""
    index = [k for k, c in enumerate(data.categorical) if c]
    if len(index) < 2:
        return data
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
    if len(crossed) < 2:
        return data
    w = np.column_stack([data.w, cells.astype(np.float64)])
    from_log = None if data.from_log is None else [*data.from_log, False]
    return replace(data, w=w, categorical=[*data.categorical, True], columns=[*data.columns, CELL], from_log=from_log)


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


def dr_learner(data: EffectData, cfg: EstimatorConfig, with_interval: bool = True) -> Estimate:
    from econml.dr import LinearDRLearner
    from sklearn.model_selection import KFold

    propensity, regression = nuisance_models(cfg.nuisance, data.binary, _mask(data), cfg.seed, cfg.nuisance_rows)
    model = LinearDRLearner(
        model_propensity=propensity,
        model_regression=regression,
        discrete_outcome=data.binary,
        cv=KFold(cfg.folds, shuffle=True, random_state=cfg.seed),
        min_propensity=max(cfg.propensity_clip, 1e-6),
        random_state=cfg.seed,
    )
    model.fit(data.y, data.t, X=None, W=_covariates(data))
    value = _scalar(model.ate())
    if not with_interval:
        return Estimate("dr_learner", value)
    low, high = model.ate_interval(alpha=0.05)
    return Estimate("dr_learner", value, _scalar(low), _scalar(high))


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


def cross_fitted_propensity(data: EffectData, cfg: EstimatorConfig) -> np.ndarray:
    """P(exposed | covariates), each row predicted by a model that did not see it."""
    from sklearn.model_selection import KFold, cross_val_predict

    model = propensity_model(cfg.nuisance, _mask(data), cfg.seed, cfg.nuisance_rows)
    folds = KFold(cfg.folds, shuffle=True, random_state=cfg.seed)
    with fitting():
        return cross_val_predict(model, _covariates(data), data.t, cv=folds, method="predict_proba")[:, 1]


def cross_fitted_outcomes(data: EffectData, cfg: EstimatorConfig) -> tuple[np.ndarray, np.ndarray]:
    """E[outcome | covariates, unexposed] and E[... | exposed] for every row, each predicted by
    a model (the covariates and the treatment) that did not see the row."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    model = outcome_model(cfg.nuisance, data.binary, [*_mask(data), False], cfg.seed, cfg.nuisance_rows)
    w = _covariates(data)
    predicted = np.empty((len(data.t), 2))
    for train, held in KFold(cfg.folds, shuffle=True, random_state=cfg.seed).split(w):
        fitted = clone(model).fit(np.column_stack([w[train], data.t[train]]), data.y[train])
        for arm in (0, 1):
            x = np.column_stack([w[held], np.full(len(held), arm)])
            predicted[held, arm] = fitted.predict_proba(x)[:, 1] if data.binary else fitted.predict(x)
    return predicted[:, 0], predicted[:, 1]


def within_user(
    data: EffectData, cfg: EstimatorConfig, propensity: np.ndarray | None = None, with_interval: bool = True
) -> Estimate:
    """AIPW that compares each pair with the same user's other pairs of the same topic.

    In a (user, topic) cell with both arms, the nuisances are anchored to the cell's own rows:
    each arm's outcome model is the cross-fitted prediction from the covariates that do not
    come from the log, shifted by the cell's mean residual among that arm's rows; the
    propensity is shifted on the logit scale until it sums to the cell's exposed rows. Without
    covariates varying inside the cell this is the cell's difference in means, and whatever
    is constant in the cell (a taste, a trait no table holds) cancels. A cell with one arm says
    nothing about its own effect: its rows get the effect that a model of the other cells'
    doubly robust scores on every covariate (the log-derived taste and history included)
    predicts for them. The interval clusters by user."""
    psi, both = within_user_scores(data, cfg, propensity)
    if not both.all():
        model = effect_model(cfg.seed, int(both.sum()), _mask(data), cfg.nuisance_rows).fit(
            _covariates(data)[both], psi[both]
        )
        psi[~both] = model.predict(_covariates(data)[~both])
    value = float(psi.mean())
    if not with_interval:
        return Estimate("within_user", value)
    per_user = np.bincount(data.units, weights=psi - value)
    return Estimate("within_user", value, *_interval(value, float(np.sqrt((per_user**2).sum())) / len(psi)))


def within_user_scores(
    data: EffectData, cfg: EstimatorConfig, propensity: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, both)``: each row's doubly robust score anchored to its (user, topic) cell
    (see ``within_user``), and whether its cell has both arms (elsewhere the score is not an
    effect: a cell with one arm has nothing to compare)."""
    if data.cells is None or data.units is None:
        raise ValueError("within_user needs each row's user: the effect inputs carry no row-level features with users")
    t, y, cells = data.t.astype(np.float64), data.y, data.cells
    n_cells = int(cells.max()) + 1 if len(cells) else 0
    arm = cells * 2 + data.t
    counts = np.bincount(arm, minlength=2 * n_cells).reshape(n_cells, 2)
    both = (counts > 0).all(axis=1)[cells]
    if not both.any():
        raise ValueError("within_user: no (user, topic) cell of the log has both exposed and unexposed pairs")
    own = exogenous(data)
    g0, g1 = cross_fitted_outcomes(own, cfg)
    shift = np.bincount(arm, weights=y - np.where(t == 1, g1, g0), minlength=2 * n_cells).reshape(n_cells, 2)
    shift /= np.maximum(counts, 1)
    e = _clipped(own, cfg, propensity if own is data else None)
    e = np.clip(_calibrated(_logit(e), t, cells, n_cells), cfg.propensity_clip, 1 - cfg.propensity_clip)
    return _aipw(t, y, g0 + shift[cells, 0], g1 + shift[cells, 1], e), both


def exogenous(data: EffectData) -> EffectData:
    """``data`` without the covariates computed from the log itself (cross-fitted taste and
    history: inside one user's cell they vary only with which half of the log a row is in)."""
    if not any(data.from_log or ()):
        return data
    keep = [k for k, derived in enumerate(data.from_log or ()) if not derived]
    columns, categorical = [data.columns[k] for k in keep], [data.categorical[k] for k in keep]
    return replace(data, w=data.w[:, keep], categorical=categorical, columns=columns, from_log=[False] * len(keep))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _aipw(t: np.ndarray, y: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, e: np.ndarray) -> np.ndarray:
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)


def _calibrated(logit: np.ndarray, t: np.ndarray, cells: np.ndarray, n_cells: int, steps: int = 25) -> np.ndarray:
    """``sigmoid(logit + shift[cell])`` with each cell's shift set by Newton's method so that
    the cell's propensities sum to its exposed rows (a cell with one arm runs to the bound)."""
    shift = np.zeros(n_cells)
    exposed = np.bincount(cells, weights=t, minlength=n_cells)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(logit + shift[cells])))
        gap = np.bincount(cells, weights=p, minlength=n_cells) - exposed
        slope = np.bincount(cells, weights=p * (1 - p), minlength=n_cells)
        shift = np.clip(shift - gap / np.maximum(slope, 1e-9), -30.0, 30.0)
    return 1.0 / (1.0 + np.exp(-(logit + shift[cells])))


def ips(data: EffectData, cfg: EstimatorConfig, propensity: np.ndarray | None = None) -> Estimate:
    e = _clipped(data, cfg, propensity)
    psi = data.t * data.y / e - (1 - data.t) * data.y / (1 - e)
    value = float(psi.mean())
    return Estimate("ips", value, *_interval(value, float(psi.std(ddof=1) / np.sqrt(len(psi)))))


def snips(data: EffectData, cfg: EstimatorConfig, propensity: np.ndarray | None = None) -> Estimate:
    e = _clipped(data, cfg, propensity)
    w1, w0 = data.t / e, (1 - data.t) / (1 - e)
    m1, m0 = (w1 * data.y).sum() / w1.sum(), (w0 * data.y).sum() / w0.sum()
    # delta method: each arm's ratio estimator linearised around its mean
    n = len(data.y)
    psi = w1 * (data.y - m1) / w1.mean() - w0 * (data.y - m0) / w0.mean()
    value = float(m1 - m0)
    return Estimate("snips", value, *_interval(value, float(psi.std(ddof=1) / np.sqrt(n))))


def _clipped(data: EffectData, cfg: EstimatorConfig, propensity: np.ndarray | None) -> np.ndarray:
    e = cross_fitted_propensity(data, cfg) if propensity is None else propensity
    return np.clip(e, cfg.propensity_clip, 1 - cfg.propensity_clip)


def naive(data: EffectData, cfg: EstimatorConfig | None = None) -> Estimate:
    treated, control = data.y[data.t == 1], data.y[data.t == 0]
    value = float(treated.mean() - control.mean())
    stderr = float(np.sqrt(treated.var(ddof=1) / len(treated) + control.var(ddof=1) / len(control)))
    return Estimate("naive", value, *_interval(value, stderr))


ROW_ESTIMATORS: dict[str, Callable[..., Estimate]] = {
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
    """Run the estimator called ``name`` (``ROW_ESTIMATORS``)."""
    if name not in ROW_ESTIMATORS:
        raise KeyError(f"unknown estimator {name!r}; known: {', '.join(ROW_ESTIMATORS)}")
    with fitting():
        return ROW_ESTIMATORS[name](data, cfg, **kwargs)
