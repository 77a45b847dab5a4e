"""The nuisance models of the estimators: who gets exposed (propensity) and what the outcome
would be (regression), as scikit-learn estimators that EconML cross-fits.

``boosting`` (the default) is gradient boosting with native categorical splits: confounding
that runs through an interaction of attributes (age group x category), a threshold on a
number (income against price) or a region of the text embedding is picked up without anyone
writing the interaction down. ``linear`` is a logistic / ridge regression on indicator
columns and standardised numbers: the main-effects model the pipeline used to have, kept as
the misspecified reference a user can compare against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

NuisanceKind = Literal["boosting", "linear"]
NUISANCE_HELP = (
    "The propensity and outcome models: 'boosting' (gradient boosting with categorical splits; finds "
    "interactions and thresholds) or 'linear' (logistic / ridge regression on main effects)."
)


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


def propensity_model(kind: NuisanceKind, categorical: Sequence[bool], seed: int) -> BaseEstimator:
    """P(exposed | covariates)."""
    return linear(True, categorical) if kind == "linear" else boosted(True, categorical, seed)


def outcome_model(kind: NuisanceKind, binary: bool, categorical: Sequence[bool], seed: int) -> BaseEstimator:
    """E[outcome | covariates] (a classifier's probability for a 0/1 outcome)."""
    return linear(binary, categorical) if kind == "linear" else boosted(binary, categorical, seed)


def nuisance_models(
    kind: NuisanceKind, binary_outcome: bool, categorical: Sequence[bool], seed: int
) -> tuple[BaseEstimator, BaseEstimator]:
    """``(propensity, outcome)`` models for EconML's DR learner, whose one outcome model sees
    the covariates and the treatment, appended as the last column."""
    return propensity_model(kind, categorical, seed), outcome_model(kind, binary_outcome, [*categorical, False], seed)


def effect_model(seed: int, rows: int, categorical: Sequence[bool] | None = None) -> BaseEstimator:
    """The DR learner's final stage for conditional effects: shallow, strongly regularised
    boosting of the (noisy) doubly robust pseudo-outcomes."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        categorical_features=list(categorical) if categorical and any(categorical) else None,
        max_depth=3,
        min_samples_leaf=int(np.clip(rows // 100, 20, 400)),
        learning_rate=0.05,
        max_iter=300,
        l2_regularization=1.0,
        early_stopping=True,
        random_state=seed,
    )
