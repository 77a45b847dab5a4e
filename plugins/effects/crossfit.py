"""Cross-fitting by user, and doubly robust scores summed user shard by user shard.

The nuisance models (who gets exposed, what the outcome would be) are fitted once, in the
step's own process: for each fold, on (a sample of) the rows of the other folds. A row's fold
is a hash of its user's stable key, so a user's pairs share a fold and every row's fold is the
same in every shard. What grows with the log, predicting the nuisances for every row and
summing the scores, is mapped over user shards (``causalrec_resources.compute``): each shard
returns partial sums (``ScoreSums``: rows, the sum of the scores and of their squares, and the
per-user sums a user-clustered standard error needs; ``WeightSums`` for the self-normalised
weights; ``OverlapSums``), which add up exactly to what one process over every row computes.

The doubly robust estimate is AIPW's: the mean of
``mu1 - mu0 + t (y - mu1) / e - (1 - t) (y - mu0) / (1 - e)``, what EconML's
``LinearDRLearner`` computes on the same folds and models (a test holds them equal); its
interval clusters by user, since a user's pairs share a taste and a history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from sklearn.base import clone

from causalrec_resources.compute import ComputeResource, local_compute
from causalrec_toolkit.sampling import sample_rows
from causalrec_toolkit.tables import mix

Z95 = 1.959963984540054
EXTREME = 0.05  # a propensity outside [EXTREME, 1 - EXTREME] counts as extreme
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def user_folds(keys: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each row's fold (0..folds-1) from its user's stable 64-bit key: a user's rows share one."""
    salted = keys.astype(np.int64).view(np.uint64) ^ (np.uint64(seed + 1) * GOLDEN)
    return (mix(salted) % np.uint64(folds)).astype(np.int64)


def shard_of(keys: np.ndarray, shards: int) -> np.ndarray:
    """Each row's user shard (0..shards-1) from its user's stable key."""
    return (mix(keys.astype(np.int64).view(np.uint64)) % np.uint64(max(shards, 1))).astype(np.int64)


@dataclass
class CrossFitted:
    """Per fold, a propensity model and (optionally) an outcome model fitted on the rows of the
    other folds; the outcome model reads the covariates and the treatment as its last column."""

    propensity: list[Any]
    outcome: list[Any] | None
    binary: bool
    columns: np.ndarray | None = None  # the covariates the models read (None: every column)

    def predict(self, w: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(e, mu0, mu1)`` of each row by the models of the fold it is in (never saw it)."""
        w = w if self.columns is None else w[:, self.columns]
        n = len(w)
        e = np.empty(n)
        mu0 = np.empty(n) if self.outcome is not None else None
        mu1 = np.empty(n) if self.outcome is not None else None
        for f, model in enumerate(self.propensity):
            rows = np.flatnonzero(folds == f)
            if not rows.size:
                continue
            e[rows] = model.predict_proba(w[rows])[:, 1]
            if self.outcome is not None:
                for arm, out in ((0, mu0), (1, mu1)):
                    x = np.column_stack([w[rows], np.full(rows.size, arm)])
                    fitted = self.outcome[f]
                    out[rows] = fitted.predict_proba(x)[:, 1] if self.binary else fitted.predict(x)  # type: ignore[index]
        return e, mu0, mu1


def sampled(model: Any, rows: np.ndarray) -> np.ndarray:
    """The rows an ``OnSample`` model would fit on out of ``rows`` (all of them for another
    model), drawn before the covariates are copied: a fold's copy is then its sample's size."""
    from causalrec_plugins.effects.on_sample import OnSample

    if not isinstance(model, OnSample):
        return rows
    picked = sample_rows(len(rows), model.max_rows, model.random_state)
    return rows if picked is None else rows[picked]


def cross_fit(
    w: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    propensity: Any,
    outcome: Any | None,
    binary: bool,
    columns: np.ndarray | None = None,
) -> CrossFitted:
    """Fit a clone of each model per fold on the other folds' rows (``OnSample`` models on
    their sample of them, as they would draw it); ``columns``: the covariates used (all)."""
    n_folds = int(folds.max()) + 1 if len(folds) else 0
    fitted_e, fitted_y = [], []

    def x(rows: np.ndarray) -> np.ndarray:
        return w[rows] if columns is None else w[np.ix_(rows, columns)]

    for f in range(n_folds):
        train = np.flatnonzero(folds != f)
        rows = sampled(propensity, train)
        fitted_e.append(clone(propensity).fit(x(rows), t[rows]))
        if outcome is not None:
            rows = sampled(outcome, train)
            fitted_y.append(clone(outcome).fit(np.column_stack([x(rows), t[rows]]), y[rows]))
    return CrossFitted(fitted_e, fitted_y if outcome is not None else None, binary, columns)


class Sums:
    """Partial sums that add up field by field."""

    def __add__(self, other: Any) -> Any:
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))  # type: ignore[arg-type]


@dataclass
class ScoreSums(Sums):
    """Partial sums of per-row scores over whole users: ``n``, sum, sum of squares, and per user
    (``S_u`` its scores' sum, ``n_u`` its rows) the sums of ``S_u^2``, ``S_u n_u``, ``n_u^2``."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    user_squares: float = 0.0
    user_cross: float = 0.0
    user_rows: float = 0.0

    @classmethod
    def of(cls, scores: np.ndarray, users: np.ndarray) -> ScoreSums:
        _, codes = np.unique(users, return_inverse=True)
        per_user = np.bincount(codes, weights=scores)
        rows = np.bincount(codes).astype(np.float64)
        return cls(
            len(scores),
            float(scores.sum()),
            float((scores**2).sum()),
            float((per_user**2).sum()),
            float((per_user * rows).sum()),
            float((rows**2).sum()),
        )

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def stderr(self) -> float:
        """The mean's standard error clustered by user: sqrt(sum_u (S_u - n_u mean)^2) / n."""
        if not self.n:
            return float("nan")
        m = self.mean
        spread = self.user_squares - 2 * m * self.user_cross + m * m * self.user_rows
        return float(np.sqrt(max(spread, 0.0))) / self.n

    def interval(self) -> tuple[float, float]:
        return self.mean - Z95 * self.stderr, self.mean + Z95 * self.stderr


@dataclass
class WeightSums(Sums):
    """Partial sums of the self-normalised (Hajek) weights of each arm, ``w = t / e`` and
    ``(1 - t) / (1 - e)``: sums of ``w``, ``w y``, ``w^2``, ``w^2 y``, ``w^2 y^2`` per arm."""

    n: int = 0
    w1: float = 0.0
    w1y: float = 0.0
    w1w1: float = 0.0
    w1w1y: float = 0.0
    w1w1yy: float = 0.0
    w0: float = 0.0
    w0y: float = 0.0
    w0w0: float = 0.0
    w0w0y: float = 0.0
    w0w0yy: float = 0.0

    @classmethod
    def of(cls, t: np.ndarray, y: np.ndarray, e: np.ndarray) -> WeightSums:
        w1, w0 = t / e, (1 - t) / (1 - e)
        parts = []
        for w in (w1, w0):
            parts += [w.sum(), (w * y).sum(), (w * w).sum(), (w * w * y).sum(), (w * w * y * y).sum()]
        return cls(len(t), *(float(p) for p in parts))

    def estimate(self) -> tuple[float, float]:
        """``(m1 - m0, stderr)``: each arm's ratio estimator linearised around its mean (delta method)."""
        m1, m0 = self.w1y / self.w1, self.w0y / self.w0
        n = self.n
        # sum over rows of (w1 (y - m1) / mean(w1))^2, expanded; the arms' weights never overlap
        a1 = (self.w1w1yy - 2 * m1 * self.w1w1y + m1 * m1 * self.w1w1) / (self.w1 / n) ** 2
        a0 = (self.w0w0yy - 2 * m0 * self.w0w0y + m0 * m0 * self.w0w0) / (self.w0 / n) ** 2
        return float(m1 - m0), float(np.sqrt((a1 + a0) / (n - 1)) / np.sqrt(n))


@dataclass
class OverlapSums(Sums):
    """What the overlap diagnostics need: extreme propensities, and each arm's weights' sum,
    sum of squares and size (effective sample size = (sum w)^2 / sum w^2)."""

    n: int = 0
    extreme: int = 0
    n1: int = 0
    s1: float = 0.0
    q1: float = 0.0
    n0: int = 0
    s0: float = 0.0
    q0: float = 0.0

    @classmethod
    def of(cls, e: np.ndarray, t: np.ndarray) -> OverlapSums:
        e = np.clip(e, 1e-6, 1 - 1e-6)
        w1, w0 = 1 / e[t == 1], 1 / (1 - e[t == 0])
        extreme = int(((e < EXTREME) | (e > 1 - EXTREME)).sum())
        return cls(
            len(e),
            extreme,
            w1.size,
            float(w1.sum()),
            float((w1**2).sum()),
            w0.size,
            float(w0.sum()),
            float((w0**2).sum()),
        )

    def summary(self) -> dict[str, float]:
        out = {"share_extreme_propensity": self.extreme / self.n if self.n else 0.0}
        for arm, size, s, q in (("exposed", self.n1, self.s1, self.q1), ("unexposed", self.n0, self.s0, self.q0)):
            out[f"effective_sample_share_{arm}"] = float(s * s / q / max(1, size)) if q else 0.0
        return out


@dataclass
class ShardRows:
    """One user shard's rows: covariates, treatment, outcome, fold and user key."""

    w: np.ndarray
    t: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    users: np.ndarray
    rows: np.ndarray  # the rows' positions in the whole table
    cells: np.ndarray | None = None  # each row's (user, topic) cell, where an estimator compares within cells


def shard_rows(
    w: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    users: np.ndarray,
    shards: int,
    cells: np.ndarray | None = None,
) -> Iterator[ShardRows]:
    """The rows of each user shard, one shard at a time (copies of one shard's rows only)."""
    which = shard_of(users, shards)
    for s in range(max(shards, 1)):
        rows = np.flatnonzero(which == s)
        if rows.size:
            mine = cells[rows] if cells is not None else None
            yield ShardRows(w[rows], t[rows], y[rows], folds[rows], users[rows], rows, mine)


@dataclass
class DoublyRobustSums(Sums):
    """One shard's (or, added up, the log's) sums for the doubly robust, IPS and SNIPS
    estimates and the overlap diagnostics."""

    dr: ScoreSums
    ips: ScoreSums
    snips: WeightSums
    overlap: OverlapSums


def aipw(t: np.ndarray, y: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Each row's doubly robust (AIPW) score of the effect."""
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)


def shard_sums(part: ShardRows, model: CrossFitted, clip: float) -> DoublyRobustSums:
    """What one shard adds: its rows' nuisances predicted, their scores summed (a worker runs it)."""
    e_raw, mu0, mu1 = model.predict(part.w, part.folds)
    e = np.clip(e_raw, clip, 1 - clip)
    t, y = part.t.astype(np.float64), part.y
    assert mu0 is not None and mu1 is not None
    ips = t * y / e - (1 - t) * y / (1 - e)
    return DoublyRobustSums(
        ScoreSums.of(aipw(t, y, mu0, mu1, e), part.users),
        ScoreSums.of(ips, part.users),
        WeightSums.of(t, y, e),
        OverlapSums.of(e_raw, part.t),
    )


def total(parts: Iterator[Any]) -> Any:
    """The sum of every shard's sums (exact: addition of partial sums)."""
    out = None
    for part in parts:
        out = part if out is None else out + part
    if out is None:
        raise ValueError("no shard had rows")
    return out


def doubly_robust_sums(
    w: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    users: np.ndarray,
    model: CrossFitted,
    folds: np.ndarray,
    clip: float,
    compute: ComputeResource | None = None,
) -> DoublyRobustSums:
    """The log's sums, shard by shard on ``compute`` (local by default)."""
    compute = compute or local_compute()
    parts = shard_rows(w, t, y, folds, users, compute.shard_count)
    return total(compute.map(shard_sums, parts, model, clip))
