"""Effect estimators over a backdoor adjustment set, and the nuisance models they share with
the uplift ranker: a calibrated propensity model, per-arm outcome (imputation) models and
the doubly robust (AIPW) pseudo-outcome.

Every estimator takes the discrete variable table, the adjustment set read off the causal
graph, and the names of treatment and outcome, and returns per-row contributions whose mean
(or ratio of means) is the estimate, so a bootstrap over rows gives its interval.

- naive: the difference in mean outcome between exposed and unexposed rows (no adjustment);
- ips: Horvitz–Thompson, each row weighted by 1 / P(its exposure | adjustment set);
- snips: the same weights, self-normalised within each arm (lower variance, small bias);
- doubly_robust: AIPW whose outcome models are fitted with the DR-JL imputation loss (squared
  errors weighted by inverse propensity, Wang et al. 2019), so the imputation is accurate
  where the propensity correction is weakest; consistent if either model is right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge


def one_hot(frame: pl.DataFrame, columns: list[str], reference: list[str] | None = None) -> np.ndarray:
    """Dummy-coded design matrix of discrete columns (an intercept column when there are none).
    ``reference`` fixes the dummy columns (those of the training design) for new rows."""
    if not columns:
        return np.ones((frame.height, 1))
    dummies = frame.select(columns).to_dummies()
    if reference is not None:
        missing = [c for c in reference if c not in dummies.columns]
        dummies = dummies.with_columns([pl.lit(0, pl.UInt8).alias(c) for c in missing]).select(reference)
    return dummies.to_numpy().astype(float)


def dummy_columns(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    return frame.select(columns).to_dummies().columns if columns else []


def logistic(design: np.ndarray) -> LogisticRegression:
    """Lightly regularised logistic regression; Newton steps for the small dummy designs here."""
    solver = "newton-cholesky" if design.shape[1] <= 500 else "lbfgs"
    return LogisticRegression(C=10.0, max_iter=2000, solver=solver)


def propensity_scores(design: np.ndarray, treated: np.ndarray, clip: float, calibrate: bool = False) -> np.ndarray:
    """P(treated | design) by logistic regression, optionally recalibrated (Platt scaling on
    cross-fitted predictions), clipped to [clip, 1 - clip]."""
    base = logistic(design)
    if calibrate and min(int(treated.sum()), int((1 - treated).sum())) >= 20:
        model = CalibratedClassifierCV(base, method="sigmoid", cv=3).fit(design, treated)
    else:
        model = base.fit(design, treated)
    return np.clip(model.predict_proba(design)[:, 1], clip, 1 - clip)


def arm_predictions(
    design: np.ndarray, treated: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Outcome model per arm (a T-learner): predicted outcome had every row been (un)exposed.
    ``weights`` (per row) weight each arm's fit, e.g. inverse propensities (DR-JL)."""
    preds = []
    binary = set(np.unique(y).tolist()) <= {0.0, 1.0}
    for arm in (0, 1):
        mask = treated == arm
        if len(np.unique(y[mask])) < 2:
            preds.append(np.full(len(y), y[mask].mean() if mask.any() else 0.0))
            continue
        w = None if weights is None else weights[mask]
        if binary:
            model = logistic(design).fit(design[mask], y[mask], sample_weight=w)
            preds.append(model.predict_proba(design)[:, 1])
        else:
            preds.append(Ridge(alpha=1.0).fit(design[mask], y[mask], sample_weight=w).predict(design))
    return preds[0], preds[1]


@dataclass
class AIPW:
    """The doubly robust pseudo-outcome of each row: its mean is the ATE, and regressing it
    on covariates gives the conditional effect (the DR-learner)."""

    psi: np.ndarray
    propensity: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray


def aipw(
    data: pl.DataFrame,
    adjust: list[str],
    treatment: str,
    outcome: str,
    clip: float,
    calibrate: bool = False,
    weighted_imputation: bool = False,
) -> AIPW:
    """AIPW pseudo-outcomes; ``weighted_imputation`` fits the outcome models with inverse
    propensity weights (the DR-JL imputation loss)."""
    treated = data[treatment].cast(pl.Int64).to_numpy()
    y = data[outcome].cast(pl.Float64).to_numpy()
    design = one_hot(data, adjust)
    e = propensity_scores(design, treated, clip, calibrate)
    weights = np.where(treated == 1, 1.0 / e, 1.0 / (1.0 - e)) if weighted_imputation else None
    mu0, mu1 = arm_predictions(design, treated, y, weights)
    psi = mu1 - mu0 + treated * (y - mu1) / e - (1 - treated) * (y - mu0) / (1 - e)
    return AIPW(psi=psi, propensity=e, mu0=mu0, mu1=mu1)


def fit_dr_learner(features: np.ndarray, psi: np.ndarray, seed: int = 0) -> HistGradientBoostingRegressor:
    """Conditional effects: shallow, strongly regularised boosting of the pseudo-outcomes
    (they are noisy), stopped early on a held-out slice when there is data to spare."""
    n = len(psi)
    model = HistGradientBoostingRegressor(
        max_depth=3,
        min_samples_leaf=int(np.clip(n // 50, 5, 200)),
        learning_rate=0.05,
        max_iter=200,
        early_stopping=n >= 2000,
        random_state=seed,
    )
    return model.fit(features, psi)


# ------------------------------------------------------------------ ATE estimators


@dataclass
class Contributions:
    """Per-row terms of an estimate: ``estimate = num1.sum()/den1.sum() - num0.sum()/den0.sum()``
    (den = 1 for plain means), so the bootstrap can resample rows and recompute it."""

    num1: np.ndarray
    den1: np.ndarray
    num0: np.ndarray
    den0: np.ndarray

    def value(self, index: np.ndarray | None = None) -> float:
        take = (lambda a: a) if index is None else (lambda a: a[index])
        d1, d0 = take(self.den1).sum(), take(self.den0).sum()
        if d1 <= 0 or d0 <= 0:
            return float("nan")
        return float(take(self.num1).sum() / d1 - take(self.num0).sum() / d0)


def _arrays(data: pl.DataFrame, treatment: str, outcome: str) -> tuple[np.ndarray, np.ndarray]:
    return data[treatment].cast(pl.Int64).to_numpy(), data[outcome].cast(pl.Float64).to_numpy()


def naive_terms(data: pl.DataFrame, adjust: list[str], treatment: str, outcome: str, **_) -> Contributions:
    t, y = _arrays(data, treatment, outcome)
    return Contributions(t * y, t.astype(float), (1 - t) * y, (1 - t).astype(float))


def ips_terms(
    data: pl.DataFrame, adjust: list[str], treatment: str, outcome: str, clip: float = 0.02, calibrate: bool = True
) -> Contributions:
    t, y = _arrays(data, treatment, outcome)
    e = propensity_scores(one_hot(data, adjust), t, clip, calibrate)
    n = np.ones(len(t))
    return Contributions(t * y / e, n, (1 - t) * y / (1 - e), n)


def snips_terms(
    data: pl.DataFrame, adjust: list[str], treatment: str, outcome: str, clip: float = 0.02, calibrate: bool = True
) -> Contributions:
    t, y = _arrays(data, treatment, outcome)
    e = propensity_scores(one_hot(data, adjust), t, clip, calibrate)
    w1, w0 = t / e, (1 - t) / (1 - e)
    return Contributions(w1 * y, w1, w0 * y, w0)


def dr_terms(
    data: pl.DataFrame, adjust: list[str], treatment: str, outcome: str, clip: float = 0.02, calibrate: bool = True
) -> Contributions:
    nuisance = aipw(data, adjust, treatment, outcome, clip, calibrate, weighted_imputation=True)
    n = np.ones(len(nuisance.psi))
    return Contributions(nuisance.psi, n, np.zeros_like(n), n)


TermFunction = Callable[..., Contributions]

ESTIMATORS: dict[str, TermFunction] = {
    "doubly_robust": dr_terms,
    "ips": ips_terms,
    "snips": snips_terms,
    "naive": naive_terms,
}


def point_estimate(
    name: str,
    data: pl.DataFrame,
    adjust: list[str],
    treatment: str,
    outcome: str,
    clip: float = 0.02,
    calibrate: bool = True,
) -> float:
    """The named estimator's ATE (``ESTIMATORS``), e.g. for refutation re-estimates."""
    if name not in ESTIMATORS:
        raise KeyError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    kwargs = {} if name == "naive" else {"clip": clip, "calibrate": calibrate}
    return ESTIMATORS[name](data, adjust, treatment, outcome, **kwargs).value()


def bootstrap_interval(terms: Contributions, n: int, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap over rows (nuisance models held fixed)."""
    if n <= 0:
        return float("nan"), float("nan")
    size = len(terms.num1)
    stats = np.array([terms.value(rng.integers(0, size, size=size)) for _ in range(n)])
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))
