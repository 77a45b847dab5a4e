"""Doubly robust *within each user's log*: each pair compared with the same user's other pairs
of its item topic, so that a confounder constant in that (user, topic) cell (a taste the
features measure with noise, a trait no table holds) cancels.

In a cell with both arms the nuisances are anchored to the cell's own rows: each arm's outcome
model is the cross-fitted prediction from the covariates that do not come from the log,
shifted by the cell's mean residual among that arm's rows; the propensity is shifted on the
logit scale until it sums to the cell's exposed rows. Without covariates varying inside the
cell this is the cell's difference in means. A cell with one arm says nothing about its own
effect: its rows get the effect that a model of the other cells' doubly robust scores on every
covariate (the log-derived taste and history included) predicts for them. The interval
clusters by user.

Cells lie inside users, so each user shard scores its own rows (``crossfit.shard_rows``): the
nuisance models are fitted once, here, and only predicted per shard.
"""

from __future__ import annotations

import numpy as np

from causalrec_plugins.effects.crossfit import (
    CrossFitted,
    ScoreSums,
    ShardRows,
    aipw,
    cross_fit,
    shard_rows,
    user_folds,
)
from causalrec_plugins.effects.estimators import (
    DoublyRobust,
    EffectData,
    Estimate,
    EstimatorConfig,
    _covariates,
    _mask,
)
from causalrec_plugins.effects.nuisance import effect_model, nuisance_models
from causalrec_resources.compute import ComputeResource, local_compute


def exogenous_columns(data: EffectData) -> np.ndarray | None:
    """The covariates not computed from the log itself (cross-fitted taste and history: inside
    one user's cell they vary only with which half of the log a row is in); None: all of them."""
    if not any(data.from_log or ()):
        return None
    return np.array([k for k, derived in enumerate(data.from_log or ()) if not derived], dtype=np.int64)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


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


def cell_scores(part: ShardRows, model: CrossFitted, clip: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, scores, both)`` of one user shard: each row's doubly robust score anchored to
    its cell, and whether its cell has both arms (a worker runs it)."""
    assert part.cells is not None
    _, cells = np.unique(part.cells, return_inverse=True)
    n_cells = int(cells.max()) + 1 if len(cells) else 0
    t, y = part.t.astype(np.float64), part.y
    arm = cells * 2 + part.t
    counts = np.bincount(arm, minlength=2 * n_cells).reshape(n_cells, 2)
    both = (counts > 0).all(axis=1)[cells]
    e, g0, g1 = model.predict(part.w, part.folds)
    assert g0 is not None and g1 is not None
    shift = np.bincount(arm, weights=y - np.where(t == 1, g1, g0), minlength=2 * n_cells).reshape(n_cells, 2)
    shift /= np.maximum(counts, 1)
    e = np.clip(e, clip, 1 - clip)
    e = np.clip(_calibrated(_logit(e), t, cells, n_cells), clip, 1 - clip)
    return part.rows, aipw(t, y, g0 + shift[cells, 0], g1 + shift[cells, 1], e), both


def within_user_scores(
    data: EffectData,
    cfg: EstimatorConfig,
    fitted: DoublyRobust | None = None,
    compute: ComputeResource | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, both)``: every row's cell-anchored score, and whether its cell has both arms
    (elsewhere the score is not an effect: a cell with one arm has nothing to compare)."""
    if data.cells is None or data.units is None:
        raise ValueError("within_user needs each row's user: the effect inputs carry no row-level features with users")
    keep = exogenous_columns(data)
    w = _covariates(data)
    if fitted is not None and keep is None:
        model, folds = fitted.model, fitted.folds  # the same covariates: the same nuisance models
    else:
        mask = _mask(data)
        if keep is not None and keep.size:
            mask = [data.categorical[k] for k in keep]
        elif keep is not None:  # nothing but the log's own covariates: a constant stands in
            w, keep, mask = np.zeros((len(data.t), 1)), None, [False]
        folds = user_folds(data.user_keys, cfg.folds, cfg.seed)
        propensity, regression = nuisance_models(cfg.nuisance, data.binary, mask, cfg.seed, cfg.nuisance_rows)
        model = cross_fit(w, data.t, data.y, folds, propensity, regression, data.binary, columns=keep)
    compute = compute or local_compute()
    parts = shard_rows(w, data.t, data.y, folds, data.user_keys, compute.shard_count, data.cells)
    scores, both = np.empty(len(data.t)), np.zeros(len(data.t), dtype=bool)
    for rows, part_scores, part_both in compute.map(cell_scores, parts, model, cfg.propensity_clip):
        scores[rows], both[rows] = part_scores, part_both
    if not both.any():
        raise ValueError("within_user: no (user, topic) cell of the log has both exposed and unexposed pairs")
    return scores, both


def within_user(
    data: EffectData,
    cfg: EstimatorConfig,
    with_interval: bool = True,
    fitted: DoublyRobust | None = None,
    compute: ComputeResource | None = None,
) -> Estimate:
    """The mean of the cell-anchored scores, one-arm cells' predicted (module docstring)."""
    psi, both = within_user_scores(data, cfg, fitted, compute)
    if not both.all():
        model = effect_model(cfg.seed, int(both.sum()), _mask(data), cfg.nuisance_rows).fit(
            _covariates(data)[both], psi[both]
        )
        psi[~both] = model.predict(_covariates(data)[~both])
    sums = ScoreSums.of(psi, data.user_keys)
    if not with_interval:
        return Estimate("within_user", sums.mean)
    return Estimate("within_user", sums.mean, *sums.interval())
