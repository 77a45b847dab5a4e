"""Debiased relevance for rating data: matrix factorisation trained with inverse-propensity
weights, item text embeddings as side features (so items without ratings can be ranked).

Ratings that users chose to give are missing not at random: popular items are rated far more
often. Each observed rating is weighted by 1 / P(observed | user, item), estimated from how
often the user rates and how often the item is rated, clipped and self-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch


def observation_propensity(train: pl.DataFrame, n_users: int, n_items: int, clip: float = 0.02) -> np.ndarray:
    """P(observed) per training row: the product of user and item rating rates, rescaled so
    the mean matches the observed density."""
    user_rate = train.group_by("u").len().rename({"len": "nu"})
    item_rate = train.group_by("i").len().rename({"len": "ni"})
    joined = train.select("u", "i").join(user_rate, on="u", how="left", maintain_order="left")
    joined = joined.join(item_rate, on="i", how="left", maintain_order="left")
    raw = (joined["nu"].to_numpy() / n_items) * (joined["ni"].to_numpy() / n_users)
    density = train.height / (n_users * n_items)
    scaled = raw * density / max(raw.mean(), 1e-12)
    return np.clip(scaled, clip, 1.0)


@dataclass
class WeightedMF:
    """Biased MF: r̂ = μ + b_u + b_i + p_u · (q_i + W x_i). Parameters in the constructor,
    learning in ``fit``, like a scikit-learn estimator."""

    dim: int = 16
    epochs: int = 300
    lr: float = 0.03
    weight_decay: float = 0.05
    seed: int = 0

    def fit(
        self, u: np.ndarray, i: np.ndarray, r: np.ndarray, w: np.ndarray, n_users: int, item_side: np.ndarray
    ) -> WeightedMF:
        torch.manual_seed(self.seed)
        self.mu_ = float(np.average(r, weights=w))
        self.side_ = torch.tensor(item_side, dtype=torch.float32)
        n_items = item_side.shape[0]
        self.bu_ = torch.zeros(n_users, requires_grad=True)
        self.bi_ = torch.zeros(n_items, requires_grad=True)
        self.P_ = (0.05 * torch.randn(n_users, self.dim)).requires_grad_()
        self.Q_ = (0.05 * torch.randn(n_items, self.dim)).requires_grad_()
        self.W_ = (0.05 * torch.randn(item_side.shape[1], self.dim)).requires_grad_()
        self.Wb_ = torch.zeros(item_side.shape[1], requires_grad=True)
        params = [self.bu_, self.bi_, self.P_, self.Q_, self.W_, self.Wb_]
        opt = torch.optim.Adam(params, lr=self.lr)
        ut, it = torch.tensor(u), torch.tensor(i)
        rt = torch.tensor(r, dtype=torch.float32)
        wt = torch.tensor(w / w.mean(), dtype=torch.float32)
        for _ in range(self.epochs):
            opt.zero_grad()
            pred = self._predict(ut, it)
            loss = (wt * (pred - rt) ** 2).mean()
            reg = self.weight_decay * (
                (self.P_[ut] ** 2).sum(1).mean()
                + (self.Q_[it] ** 2).sum(1).mean()
                + 0.1 * (self.bu_[ut] ** 2).mean()
                + 0.1 * (self.bi_[it] ** 2).mean()
                + (self.W_**2).sum() / max(len(r), 1) * 10
            )
            (loss + reg).backward()
            opt.step()
        return self

    def _predict(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        item_vec = self.Q_[i] + self.side_[i] @ self.W_
        return self.mu_ + self.bu_[u] + self.bi_[i] + self.side_[i] @ self.Wb_ + (self.P_[u] * item_vec).sum(1)

    def predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._predict(torch.tensor(u), torch.tensor(i)).numpy()
