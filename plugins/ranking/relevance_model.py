"""Debiased relevance: E[outcome | do(shown), user, item] learned from a log whose observed
pairs were selected, not assigned at random.

Ratings that users chose to give are missing not at random: popular items and items a user
expects to like are rated far more often. The model is a biased matrix factorisation whose
user and item factors are augmented with side features (user attributes; item attributes and
text embeddings, so an item nobody rated can still be scored):

    r̂(u, i) = μ + b_u + b_i + w_u·x_u + w_i·x_i + (p_u + A x_u) · (q_i + B x_i)

trained on the observed pairs with one of three losses:

- ``none``: the naive mean squared error over the observed pairs;
- ``ips``: each pair's error weighted by 1 / P(observed | x), self-normalised (SNIPS);
- ``dr``: doubly robust joint learning (DR-JL, Wang et al., ICML 2019): an imputation model
  predicts every pair's error, the prediction loss is the imputed error over *all* pairs plus
  the propensity-weighted correction on the observed ones, and the two models alternate.

The propensity P(observed | x) is a logistic regression on user and item attributes, their
pairwise crosses and the log activity of user and item, fitted on the training log only,
calibrated so its mean equals the observed density, and clipped (``relevance_propensity``).
The side features are built in ``relevance_features``; the names of both modules are
importable from here as well.

Hyperparameters (L2 strength, number of epochs) are chosen on a validation split *of the
training log* by the self-normalised IPS estimate of the validation MSE (an estimate of the
error under random exposure), then the chosen model is refitted on the whole training log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import torch

from causalrec_plugins.ranking.relevance_features import (
    SideFeatures,
    attribute_one_hot,
    build_side_features,
    embedding_matrix,
)
from causalrec_plugins.ranking.relevance_propensity import ObservationPropensity, PairUniverse, one_hot_groups

__all__ = [
    "WEIGHTINGS",
    "DebiasedMF",
    "ObservationPropensity",
    "PairUniverse",
    "Selection",
    "SideFeatures",
    "Weighting",
    "attribute_one_hot",
    "build_side_features",
    "embedding_matrix",
    "one_hot_groups",
    "select_and_fit",
    "torch_threads",
    "validation_split",
    "weighted_mse",
]

Weighting = Literal["none", "ips", "dr"]
WEIGHTINGS: tuple[str, ...] = ("none", "ips", "dr")


# ---------------------------------------------------------------------------- model


@contextmanager
def torch_threads(rows: int) -> Iterator[None]:
    """One intra-op thread for these small full-batch models: more threads only contend (on a
    busy 2-core machine a Coat fit is 15x slower with 2 threads than with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1 if rows < 2_000_000 else before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Factors(torch.nn.Module):
    """The biased MF with side features; item and user vectors are computed once per step."""

    def __init__(self, n_users: int, n_items: int, side: SideFeatures, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.register_buffer("xu", torch.tensor(side.user, dtype=torch.float32))
        self.register_buffer("xi", torch.tensor(side.item, dtype=torch.float32))
        du, di = side.user.shape[1], side.item.shape[1]
        init = lambda *shape: torch.nn.Parameter(0.05 * torch.randn(*shape, generator=generator))  # noqa: E731
        self.bu = torch.nn.Parameter(torch.zeros(n_users))
        self.bi = torch.nn.Parameter(torch.zeros(n_items))
        self.P, self.Q = init(n_users, dim), init(n_items, dim)
        self.A, self.B = init(du, dim), init(di, dim)
        self.wu, self.wi = torch.nn.Parameter(torch.zeros(du)), torch.nn.Parameter(torch.zeros(di))
        self.mu = 0.0

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        users = self.P + self.xu @ self.A
        items = self.Q + self.xi @ self.B
        user_lin, item_lin = self.xu @ self.wu, self.xi @ self.wi
        return self.mu + self.bu[u] + self.bi[i] + user_lin[u] + item_lin[i] + (users[u] * items[i]).sum(1)

    def penalty(self, u: torch.Tensor, i: torch.Tensor, weight_decay: float, side_decay: float) -> torch.Tensor:
        ids = (self.P[u] ** 2).sum(1).mean() + (self.Q[i] ** 2).sum(1).mean()
        ids = ids + 0.1 * ((self.bu[u] ** 2).mean() + (self.bi[i] ** 2).mean())
        side = (self.A**2).sum() + (self.B**2).sum() + (self.wu**2).sum() + (self.wi**2).sum()
        return weight_decay * ids + side_decay * side


@dataclass
class DebiasedMF:
    """Biased MF with side features trained by a naive, IPS or DR-JL loss (see the module
    docstring). Parameters in the constructor, learning in ``fit``, like scikit-learn."""

    dim: int = 16
    epochs: int = 300
    lr: float = 0.03
    weight_decay: float = 0.2
    side_decay: float = 0.01
    weighting: Weighting = "ips"
    seed: int = 0
    eval_every: int = 10
    flat_tolerance: float = 0.005
    dr_sample: int = 50_000

    def fit(
        self,
        u: np.ndarray,
        i: np.ndarray,
        r: np.ndarray,
        side: SideFeatures,
        universe: PairUniverse,
        propensity: np.ndarray | None = None,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> DebiasedMF:
        """``propensity``: P(observed) of each training row (needed by ``ips`` and ``dr``; the
        DR direct term averages over pairs sampled uniformly from ``universe``); ``valid``:
        (u, i, r, weight) rows whose weighted MSE is tracked; the best epoch's parameters are
        kept."""
        with torch_threads(len(r)):
            return self._fit(u, i, r, side, universe, propensity, valid, log)

    def _fit(self, u, i, r, side, universe, propensity, valid, log) -> DebiasedMF:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.weighting != "none" and propensity is None:
            raise ValueError(f"weighting={self.weighting!r} needs the propensity of every training row")
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        n_users, n_items = universe.n_users, universe.n_items
        self.model_ = _Factors(n_users, n_items, side, self.dim, gen)
        w = np.ones(len(r)) if self.weighting == "none" else 1.0 / np.asarray(propensity)
        self.model_.mu = float(np.average(r, weights=w))
        ut, it = torch.tensor(np.asarray(u, dtype=np.int64)), torch.tensor(np.asarray(i, dtype=np.int64))
        rt = torch.tensor(np.asarray(r, dtype=np.float32))
        wt = torch.as_tensor(w / w.mean(), dtype=torch.float32)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        if self.weighting == "dr":
            imputer = _Factors(n_users, n_items, side, self.dim, gen)
            imputer.mu = self.model_.mu
            imp_opt = torch.optim.Adam(imputer.parameters(), lr=self.lr)
            inv_p = torch.as_tensor(1.0 / np.asarray(propensity), dtype=torch.float32)
        self.seen_users_ = np.bincount(u, minlength=n_users) > 0
        self.seen_items_ = np.bincount(i, minlength=n_items) > 0
        self.history_: list[tuple[int, float]] = []
        best_loss, best_state, self.best_epoch_ = math.inf, None, self.epochs
        for epoch in range(1, self.epochs + 1):
            opt.zero_grad()
            pred = self.model_(ut, it)
            if self.weighting == "dr":
                su, si = universe.sample(min(self.dr_sample, universe.size), rng)
                sut, sit = torch.tensor(su, dtype=torch.long), torch.tensor(si, dtype=torch.long)
                with torch.no_grad():
                    imp_all, imp_obs = imputer(sut, sit), imputer(ut, it)
                e_hat_all = (self.model_(sut, sit) - imp_all) ** 2
                e_obs, e_hat_obs = (pred - rt) ** 2, (pred - imp_obs) ** 2
                loss = e_hat_all.mean() + ((e_obs - e_hat_obs) * inv_p).sum() / universe.size
            else:
                loss = (wt * (pred - rt) ** 2).mean()
            (loss + self.model_.penalty(ut, it, self.weight_decay, self.side_decay)).backward()
            opt.step()
            if self.weighting == "dr":
                imp_opt.zero_grad()
                with torch.no_grad():
                    pred = self.model_(ut, it)
                e_obs, e_hat_obs = (pred - rt) ** 2, (pred - imputer(ut, it)) ** 2
                imp_loss = (inv_p * (e_obs - e_hat_obs) ** 2).mean() / inv_p.mean()
                (imp_loss + imputer.penalty(ut, it, self.weight_decay, self.side_decay)).backward()
                imp_opt.step()
            if valid is not None and (epoch % self.eval_every == 0 or epoch == self.epochs):
                loss_v = weighted_mse(self.predict(valid[0], valid[1]), valid[2], valid[3])
                self.history_.append((epoch, loss_v))
                # Keep the longest training whose loss is within a hair of the best: on a flat
                # curve the minimum's position is noise, and stopping early on it costs more.
                if loss_v < best_loss * (1 + self.flat_tolerance):
                    best_loss, self.best_epoch_ = min(loss_v, best_loss), epoch
                    best_state = {k: v.detach().clone() for k, v in self.model_.state_dict().items()}
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.valid_loss_ = min((v for _, v in self.history_), default=math.inf)
        if log is not None and valid is not None:
            log(
                f"DebiasedMF({self.weighting}, wd={self.weight_decay}): valid loss {best_loss:.4f} @ {self.best_epoch_}"
            )
        return self

    def predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Scores for index pairs; users or items without training rows get their side-feature
        part only (their id factors were never trained)."""
        m = self.model_
        with torch.no_grad(), torch_threads(len(u)):
            P = torch.where(torch.as_tensor(self.seen_users_)[:, None], m.P, torch.zeros_like(m.P))
            Q = torch.where(torch.as_tensor(self.seen_items_)[:, None], m.Q, torch.zeros_like(m.Q))
            users, items = P + m.xu @ m.A, Q + m.xi @ m.B
            user_lin, item_lin = m.xu @ m.wu, m.xi @ m.wi
            out = np.empty(len(u), dtype=np.float64)
            for start in range(0, len(u), 500_000):
                uu = torch.tensor(np.asarray(u[start : start + 500_000], dtype=np.int64))
                ii = torch.tensor(np.asarray(i[start : start + 500_000], dtype=np.int64))
                s = m.mu + m.bu[uu] + m.bi[ii] + user_lin[uu] + item_lin[ii] + (users[uu] * items[ii]).sum(1)
                out[start : start + len(uu)] = s.numpy()
        return out


def weighted_mse(pred: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Self-normalised weighted MSE: with w = 1 / P(observed) an estimate of the error over
    every pair, not just the ones users chose."""
    return float(np.sum(w * (pred - y) ** 2) / max(np.sum(w), 1e-12))


# ----------------------------------------------------------------- model selection


def validation_split(u: np.ndarray, share: float, rng: np.random.Generator, min_rows: int = 3) -> np.ndarray:
    """A boolean mask of held-out rows: ``share`` of each user's rows (users with fewer than
    ``min_rows`` rows keep all of theirs for fitting)."""
    mask = np.zeros(len(u), dtype=bool)
    order = np.argsort(u, kind="stable")
    bounds = np.flatnonzero(np.diff(u[order])) + 1
    for group in np.split(order, bounds):
        if len(group) >= min_rows:
            k = max(1, int(round(share * len(group))))
            mask[rng.choice(group, size=min(k, len(group) - 1), replace=False)] = True
    return mask


@dataclass
class Selection:
    """The chosen hyperparameters and the validation loss of every candidate."""

    weight_decay: float
    epochs: int
    table: pl.DataFrame


def select_and_fit(
    make: Callable[..., DebiasedMF],
    grid: Sequence[float],
    u: np.ndarray,
    i: np.ndarray,
    r: np.ndarray,
    side: SideFeatures,
    universe: PairUniverse,
    propensity: np.ndarray,
    valid_share: float = 0.15,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[DebiasedMF, Selection]:
    """Fit each L2 strength of ``grid`` on the training log minus a validation split, pick the
    (strength, epochs) with the lowest IPS-weighted validation MSE, refit on every row."""
    valid = validation_split(u, valid_share, np.random.default_rng(seed))
    weights = 1.0 / propensity
    rows = []
    if valid.any() and len(grid) > 1:
        held_out = (u[valid], i[valid], r[valid], weights[valid])
        for wd in grid:
            model = make(weight_decay=wd).fit(
                u[~valid],
                i[~valid],
                r[~valid],
                side,
                universe,
                propensity[~valid],
                valid=held_out,
                log=log,
            )
            rows.append((wd, model.best_epoch_, model.valid_loss_))
        best = min(rows, key=lambda row: row[2])
        wd, epochs = best[0], best[1]
    else:
        wd, epochs = grid[0], make().epochs
    final = make(weight_decay=wd, epochs=epochs).fit(u, i, r, side, universe, propensity, log=log)
    table = pl.DataFrame(rows, schema=["weight_decay", "best_epoch", "valid_ips_mse"], orient="row")
    return final, Selection(weight_decay=wd, epochs=epochs, table=table)
