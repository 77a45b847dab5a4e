"""Nuisance models shared by effect estimators and uplift rankers: propensity, per-arm
outcome models, and the doubly robust (AIPW) pseudo-outcome built from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression


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


def propensity_scores(design: np.ndarray, treated: np.ndarray, clip: float) -> np.ndarray:
    model = LogisticRegression(C=10.0, max_iter=2000).fit(design, treated)
    return np.clip(model.predict_proba(design)[:, 1], clip, 1 - clip)


def arm_predictions(design: np.ndarray, treated: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcome model per arm (a T-learner): predicted outcome had every pair been (un)exposed."""
    preds = []
    for arm in (0, 1):
        mask = treated == arm
        if len(np.unique(y[mask])) < 2:
            preds.append(np.full(len(y), y[mask].mean() if mask.any() else 0.0))
            continue
        model = LogisticRegression(C=10.0, max_iter=2000).fit(design[mask], y[mask])
        preds.append(model.predict_proba(design)[:, 1])
    return preds[0], preds[1]


@dataclass
class AIPW:
    """The doubly robust pseudo-outcome of each row: its mean is the ATE, and regressing it
    on covariates gives the conditional effect (the DR-learner)."""

    psi: np.ndarray
    propensity: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray


def aipw(data: pl.DataFrame, adjust: list[str], treatment: str, outcome: str, clip: float) -> AIPW:
    treated = data[treatment].cast(pl.Int64).to_numpy()
    y = data[outcome].cast(pl.Float64).to_numpy()
    design = one_hot(data, adjust)
    e = propensity_scores(design, treated, clip)
    mu0, mu1 = arm_predictions(design, treated, y)
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
