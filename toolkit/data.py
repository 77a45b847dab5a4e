"""The data an effect estimator reads: logged pairs as row-level features (``PairFeatures``)
and the estimate's inputs (``EffectInputs``: the discretised variable table, the graph and,
where there are any, the features and the randomized test slice)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

__all__ = ["EffectInputs", "PairFeatures"]


@dataclass
class PairFeatures:
    """Row-level features of logged (user, item) pairs, for estimators that want the data as
    it is rather than binned: numbers as numbers, categorical codes, the item text's principal
    components, the user's taste (see ``causalrec_toolkit.features``), and ``exposure`` and
    ``outcome`` on the outcome's own scale. ``groups`` maps each causal variable of the graph
    to the columns that carry it; ``categorical`` lists the columns holding category codes.
    The ``unit`` column, where the frame has one, holds each row's user as a stable 64-bit key
    (a hash of the id's text; not a feature: it lets an estimator compare pairs within one
    user's log, fold and shard by user, and cluster its standard errors);
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
        w = (
            self.frame.select(columns).to_numpy().astype(np.float64, copy=False)
            if columns
            else np.zeros((self.height, 0))
        )
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
