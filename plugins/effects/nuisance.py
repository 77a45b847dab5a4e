"""The nuisance models of the estimators: who gets exposed (propensity) and what the outcome
would be (regression), as scikit-learn estimators that EconML cross-fits.

``boosting`` (the default) is gradient boosting with native categorical splits: confounding
that runs through an interaction of attributes (age group x category), a threshold on a
number (income against price) or a region of the text embedding is picked up without anyone
writing the interaction down. ``linear`` is a logistic / ridge regression on indicator
columns and standardised numbers: the main-effects model the pipeline used to have, kept as
the misspecified reference a user can compare against.

On a large log each model is fitted on a random sample of its training fold (``OnSample``,
at most ``nuisance_rows`` rows): boosting's fit grows linearly with rows and gains little
past a few hundred thousand, while its predictions, and so every estimate and interval, still
cover every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from causalrec_toolkit.sampling import FIT_ROWS

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

NuisanceKind = Literal["boosting", "linear"]
NUISANCE_ROWS = FIT_ROWS
NUISANCE_ROWS_HELP = (
    "Each nuisance model (and the uplift model's final stage) is fitted on at most this many rows of its training "
    "fold, drawn at random (0: every row); predictions, and so the estimates and their intervals, use every row."
)
NUISANCE_HELP = (
    "The propensity and outcome models: 'boosting' (gradient boosting with categorical splits; finds "
    "interactions and thresholds) or 'linear' (logistic / ridge regression on main effects)."
)


def on_sample(estimator: BaseEstimator, max_rows: int, seed: int) -> BaseEstimator:
    """``estimator`` fitted on at most ``max_rows`` random rows (itself when ``max_rows`` is 0)."""
    if not max_rows:
        return estimator
    from causalrec_plugins.effects.on_sample import OnSample

    return OnSample(estimator, max_rows, seed)


def boosted(binary: bool, categorical: Sequence[bool], seed: int, max_iter: int = 200) -> BaseEstimator:
    """Histogram gradient boosting, stopped early on a held-out tenth of its training fold."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if binary else HistGradientBoostingRegressor
    mask = list(categorical) if any(categorical) else None
    return cls(max_iter=max_iter, learning_rate=0.1, early_stopping=True, categorical_features=mask, random_state=seed)


def linear(binary: bool, categorical: Sequence[bool]) -> BaseEstimator:
    """Main effects only: indicators of the categorical codes, standardised numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat = [k for k, c in enumerate(categorical) if c]
    num = [k for k, c in enumerate(categorical) if not c]
    columns = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), cat), ("numbers", StandardScaler(), num)],
        sparse_threshold=0.0,
    )
    model = LogisticRegression(C=10.0, max_iter=2000) if binary else Ridge(alpha=1.0)
    return make_pipeline(columns, model)


def propensity_model(
    kind: NuisanceKind, categorical: Sequence[bool], seed: int, max_rows: int = NUISANCE_ROWS
) -> BaseEstimator:
    """P(exposed | covariates), fitted on at most ``max_rows`` rows (``OnSample``)."""
    model = linear(True, categorical) if kind == "linear" else boosted(True, categorical, seed)
    return on_sample(model, max_rows, seed)


def outcome_model(
    kind: NuisanceKind, binary: bool, categorical: Sequence[bool], seed: int, max_rows: int = NUISANCE_ROWS
) -> BaseEstimator:
    """E[outcome | covariates] (a classifier's probability for a 0/1 outcome), fitted on at
    most ``max_rows`` rows."""
    model = linear(binary, categorical) if kind == "linear" else boosted(binary, categorical, seed)
    return on_sample(model, max_rows, seed)


def nuisance_models(
    kind: NuisanceKind, binary_outcome: bool, categorical: Sequence[bool], seed: int, max_rows: int = NUISANCE_ROWS
) -> tuple[BaseEstimator, BaseEstimator]:
    """``(propensity, outcome)`` models for EconML's DR learner, whose one outcome model sees
    the covariates and the treatment, appended as the last column."""
    return (
        propensity_model(kind, categorical, seed, max_rows),
        outcome_model(kind, binary_outcome, [*categorical, False], seed, max_rows),
    )


def effect_model(
    seed: int, rows: int, categorical: Sequence[bool] | None = None, max_rows: int = NUISANCE_ROWS
) -> BaseEstimator:
    """The DR learner's final stage for conditional effects: shallow, strongly regularised
    boosting of the (noisy) doubly robust pseudo-outcomes, on at most ``max_rows`` of them."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    fitted_rows = min(rows, max_rows) if max_rows else rows
    model = HistGradientBoostingRegressor(
        categorical_features=list(categorical) if categorical and any(categorical) else None,
        max_depth=3,
        min_samples_leaf=int(np.clip(fitted_rows // 100, 20, 400)),
        learning_rate=0.05,
        max_iter=300,
        l2_regularization=1.0,
        early_stopping=True,
        random_state=seed,
    )
    return on_sample(model, max_rows, seed)
