"""The observation propensity of the debiased relevance model: P(a pair is observed | x).

Split out of ``relevance_model`` because it is a model of its own (a logistic regression on
attributes, their pairwise crosses and activity, over a ``PairUniverse`` of pairs): the
matrix factorisation only consumes its predictions as IPS weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from causalrec_plugins.ranking.relevance_features import SideFeatures


def one_hot_groups(matrix: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
    """The attribute one-hot blocks of a side-feature matrix (``attr=level`` columns) as one
    integer code per row and attribute (-1 where the row has none)."""
    groups: dict[str, list[int]] = {}
    for k, name in enumerate(names):
        if "=" in name:
            groups.setdefault(name.split("=", 1)[0], []).append(k)
    codes = []
    for columns in groups.values():
        block = matrix[:, columns]
        codes.append(np.where(block.max(axis=1) > 0, block.argmax(axis=1), -1))
    return codes


@dataclass
class ObservationPropensity:
    """P(a pair is observed | user and item attributes, their pairwise crosses, user and item
    activity): a logistic regression over the universe of pairs (every user x item pair, or
    the logged pairs when the question is which of them were exposed), calibrated so that its
    mean over the universe is the observed share, and clipped to [clip, 1]."""

    clip: float = 0.02
    max_negatives: int = 300_000
    C: float = 1.0
    seed: int = 0

    def fit(
        self, observed_u: np.ndarray, observed_i: np.ndarray, side: SideFeatures, universe: PairUniverse
    ) -> ObservationPropensity:
        rng = np.random.default_rng(self.seed)
        self.user_codes_ = one_hot_groups(side.user, side.user_names)
        self.item_codes_ = one_hot_groups(side.item, side.item_names)
        self.user_activity_ = np.log1p(np.bincount(observed_u, minlength=universe.n_users))
        self.item_activity_ = np.log1p(np.bincount(observed_i, minlength=universe.n_items))
        obs_key = np.unique(observed_u.astype(np.int64) * universe.n_items + observed_i)
        su, si = universe.sample(min(self.max_negatives, universe.size), rng)
        negative = ~np.isin(su.astype(np.int64) * universe.n_items + si, obs_key)
        u = np.concatenate([observed_u, su[negative]])
        i = np.concatenate([observed_i, si[negative]])
        y = np.concatenate([np.ones(observed_u.size), np.zeros(int(negative.sum()))])
        # Unobserved pairs were subsampled: weight them back up to their share of the universe.
        n_unobserved = max(universe.size - obs_key.size, 1)
        weight = np.where(y == 1, 1.0, n_unobserved / max(1, int(negative.sum())))
        self.model_ = LogisticRegression(C=self.C, max_iter=1000).fit(self._design(u, i), y, sample_weight=weight)
        # Calibration in the large: the mean propensity over the universe is the observed share.
        cu, ci = universe.sample(min(200_000, universe.size), rng)
        raw = self.model_.predict_proba(self._design(cu, ci))[:, 1]
        self.scale_ = (observed_u.size / universe.size) / max(float(raw.mean()), 1e-12)
        return self

    def _design(self, u: np.ndarray, i: np.ndarray) -> sparse.csr_matrix:
        """Sparse design: user and item one-hots, every user-attribute x item-attribute cross,
        log activity of user and item."""
        n = len(u)
        cols, rows, offset = [], [], 0
        user_parts = [c[u] for c in self.user_codes_]
        item_parts = [c[i] for c in self.item_codes_]
        user_sizes = [int(c.max()) + 1 for c in self.user_codes_]
        item_sizes = [int(c.max()) + 1 for c in self.item_codes_]
        for codes, size in zip(user_parts + item_parts, user_sizes + item_sizes, strict=True):
            ok = codes >= 0
            rows.append(np.flatnonzero(ok))
            cols.append(offset + codes[ok])
            offset += size
        for cu, nu in zip(user_parts, user_sizes, strict=True):
            for ci, ni in zip(item_parts, item_sizes, strict=True):
                ok = (cu >= 0) & (ci >= 0)
                rows.append(np.flatnonzero(ok))
                cols.append(offset + cu[ok] * ni + ci[ok])
                offset += nu * ni
        data = [np.ones(len(r)) for r in rows]
        for values in (self.user_activity_[u], self.item_activity_[i]):
            rows.append(np.arange(n))
            cols.append(np.full(n, offset))
            data.append(values)
            offset += 1
        return sparse.csr_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, offset)
        )

    def predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        out = np.empty(len(u))
        for start in range(0, len(u), 200_000):
            sl = slice(start, start + 200_000)
            out[sl] = self.model_.predict_proba(self._design(u[sl], i[sl]))[:, 1]
        return np.clip(out * self.scale_, self.clip, 1.0)


@dataclass
class PairUniverse:
    """The pairs a debiased loss averages over: every user x item pair, or an explicit list."""

    n_users: int
    n_items: int
    pairs: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        return self.n_users * self.n_items if self.pairs is None else len(self.pairs[0])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.pairs is not None:
            k = rng.choice(self.size, size=n, replace=n > self.size)
            return self.pairs[0][k], self.pairs[1][k]
        if n >= self.size:
            return np.repeat(np.arange(self.n_users), self.n_items), np.tile(np.arange(self.n_items), self.n_users)
        flat = rng.choice(self.size, size=n, replace=False)
        return flat // self.n_items, flat % self.n_items
