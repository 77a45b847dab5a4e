"""Decomposable structure scores over a ``CodedTable``, cached, as a pgmpy score.

The formulas are pgmpy's (``pgmpy.structure_score``: BIC, AIC, BDeu, K2 for discrete data;
the tests check they agree), but the counts come from one ``np.bincount`` on integer codes
instead of a pandas group-by, and every local score is cached under its *set* of parents, so
the same family reached in another parent order is not scored twice. ``CountingScore`` is a
``pgmpy.structure_score.BaseStructureScore``: pgmpy's own ``HillClimbSearch`` and ``GES`` take it
as their ``scoring_method``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pgmpy.structure_score import BaseStructureScore
from scipy.special import gammaln

from causalrec_plugins.structure.table import CodedTable, contingency

ScoreName = Literal["bic", "aic", "bdeu", "k2"]
SCORE_NAMES: tuple[str, ...] = ("bic", "aic", "bdeu", "k2")


class CountingScore(BaseStructureScore):
    """A pgmpy structure score computed from integer codes with a per-family cache."""

    _tags = {"name": "causalrec-counting", "supported_datatype": "discrete", "default_for": None}

    def __init__(self, table: CodedTable, kind: str = "bic", equivalent_sample_size: float = 10.0) -> None:
        if kind not in SCORE_NAMES:
            raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORE_NAMES)}")
        # BaseStructureScore.__init__ would copy the data into pandas: everything it needs is here.
        self.table = table
        self.kind = kind
        self.equivalent_sample_size = float(equivalent_sample_size)
        self.variables = list(table.names)
        self.state_names = {n: list(s) for n, s in zip(table.names, table.states, strict=True)}
        self._position = {n: i for i, n in enumerate(table.names)}
        self._cards = table.cards
        self._cache: dict[tuple[str, frozenset], float] = {}
        self.evaluations = 0

    def local_score(self, variable: str, parents) -> float:  # type: ignore[override]
        key = (variable, frozenset(parents))
        cached = self._cache.get(key)
        if cached is None:
            cached = self._local_score(variable, tuple(sorted(parents, key=str)))
            self._cache[key] = cached
        return cached

    def _local_score(self, variable: str, parents: tuple[str, ...]) -> float:
        self.evaluations += 1
        child = self._position[variable]
        pa = [self._position[p] for p in parents]
        counts = contingency(self.table, child, pa).astype(np.float64)
        return family_score(counts, self.kind, int(self._cards[child]), _n_configs(self._cards, pa), self.table.n,
                            self.equivalent_sample_size)  # fmt: skip


def _n_configs(cards: np.ndarray, parents: list[int]) -> float:
    return float(math.prod(int(cards[p]) for p in parents)) if parents else 1.0


def family_score(counts: np.ndarray, kind: str, r: int, q: float, n: int, ess: float = 10.0) -> float:
    """One family's score from its counts N[j, k] over observed parent configurations j."""
    n_j = counts.sum(axis=1)
    if kind in ("bic", "aic"):
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = float(np.sum(np.where(counts > 0, counts * np.log(counts / n_j[:, None]), 0.0)))
        params = q * (r - 1)
        return ll - (0.5 * math.log(n) * params if kind == "bic" else params)
    if kind == "k2":
        return float(np.sum(gammaln(counts + 1)) - np.sum(gammaln(n_j + r)) + counts.shape[0] * math.lgamma(r))
    alpha = ess / q
    beta = ess / (q * r)
    return float(
        np.sum(gammaln(counts + beta))
        - counts.size * math.lgamma(beta)
        - np.sum(gammaln(n_j + alpha))
        + counts.shape[0] * math.lgamma(alpha)
    )
