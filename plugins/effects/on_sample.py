"""A scikit-learn meta-estimator that fits its estimator on a random sample of the rows.

The estimators' nuisance models are fitted on at most a few hundred thousand rows of a
multi-million-row log (``nuisance.NUISANCE_ROWS``): gradient boosting's fit grows linearly
with the rows and gains little past that, while predicting (what cross-fitting and the
estimates need of every row) stays cheap. EconML and ``cross_val_predict`` take it as any
classifier or regressor: it is whichever its ``estimator`` is.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils.metaestimators import available_if

from causalrec_toolkit.sampling import FIT_ROWS, sample_rows


class OnSample(MetaEstimatorMixin, BaseEstimator):
    """Fits a clone of ``estimator`` on at most ``max_rows`` rows drawn at random (seeded by
    ``random_state``) and predicts with it on every row."""

    def __init__(self, estimator: BaseEstimator, max_rows: int = FIT_ROWS, random_state: int = 0) -> None:
        self.estimator = estimator
        self.max_rows = max_rows
        self.random_state = random_state

    def __sklearn_tags__(self):
        return self.estimator.__sklearn_tags__()

    def fit(self, X, y, **fit_params) -> OnSample:
        rows = sample_rows(len(y), self.max_rows, self.random_state)
        if rows is not None:
            X, y = X[rows], y[rows]
            fit_params = {k: v[rows] if hasattr(v, "__len__") else v for k, v in fit_params.items()}
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.n_fitted_rows_ = len(y)
        if hasattr(self.estimator_, "classes_"):
            self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X) -> np.ndarray:
        return self.estimator_.predict(X)

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))  # EconML tells classifiers by it
    def predict_proba(self, X) -> np.ndarray:
        return self.estimator_.predict_proba(X)
