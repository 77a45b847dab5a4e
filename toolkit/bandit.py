"""The value of a policy from another policy's logged bandit feedback, position by position.

A round of the log showed one action (an item) at one position of a list, chosen by the
logging policy with a logged probability (``pscore``), and recorded a reward (a click). The
value of a target policy, which puts action ``a`` at position ``k`` with probability
``target[a, k]``, is its expected reward per impression. Each (round, position) is weighted on
its own (the independent, position-wise estimator of Open Bandit Pipeline for lists):

- ``ips``: ``r target[a, k] / pscore``;
- ``snips``: the same, normalised by the mean weight;
- ``dr``: a cross-fitted mean reward ``q[a, k]`` of each action at each position plus the
  weighted residual ``target[a, k] / pscore (r - q[a, k])``.

Intervals are 95% normal intervals over rounds (independent impressions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BanditLog", "action_distribution", "bandit_policy_value"]

Z95 = 1.959963984540054


@dataclass
class BanditLog:
    """One row per impression: the action shown, its position (0-based), the reward and the
    logging policy's probability of that action at that position."""

    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_actions: int
    len_list: int

    def __post_init__(self) -> None:
        lengths = {len(self.action), len(self.position), len(self.reward), len(self.pscore)}
        if len(lengths) != 1:
            raise ValueError(f"action, position, reward and pscore differ in length: {sorted(lengths)}")
        bad = np.flatnonzero(~((self.pscore > 0) & (self.pscore <= 1)))
        if bad.size:
            first = bad[0]
            raise ValueError(f"{bad.size} rounds have a pscore outside (0, 1], e.g. row {first}: {self.pscore[first]}")

    @property
    def on_policy(self) -> tuple[float, float, float]:
        """The logging policy's own reward per impression and its 95% interval."""
        return mean_interval(self.reward.astype(np.float64))


def mean_interval(terms: np.ndarray, value: float | None = None) -> tuple[float, float, float]:
    """``(value, low, high)``: the mean of independent terms and its 95% normal interval."""
    mean = float(terms.mean()) if value is None else value
    se = float(terms.std(ddof=1) / np.sqrt(len(terms)))
    return mean, mean - Z95 * se, mean + Z95 * se


def action_distribution(log: BanditLog) -> np.ndarray:
    """``(n_actions, len_list)``: how often the logging policy put each action at each position
    (its action distribution averaged over the log, e.g. to evaluate it on another log)."""
    out = np.zeros((log.n_actions, log.len_list))
    for k in range(log.len_list):
        at = log.position == k
        if at.any():
            out[:, k] = np.bincount(log.action[at], minlength=log.n_actions) / at.sum()
    return out


def mean_rewards(log: BanditLog, rows: np.ndarray, prior: float = 1.0) -> np.ndarray:
    """``(n_actions, len_list)`` mean reward of ``rows``, shrunk towards the rows' overall mean
    with ``prior`` pseudo-rounds (actions seldom shown get the overall rate)."""
    overall = float(log.reward[rows].mean()) if rows.size else 0.0
    cell = log.action[rows] * log.len_list + log.position[rows]
    size = log.n_actions * log.len_list
    total = np.bincount(cell, weights=log.reward[rows].astype(np.float64), minlength=size)
    count = np.bincount(cell, minlength=size)
    return ((total + prior * overall) / (count + prior)).reshape(log.n_actions, log.len_list)


def bandit_policy_value(log: BanditLog, target: np.ndarray, folds: int = 5, seed: int = 0) -> dict[str, tuple]:
    """``estimator -> (value, ci_low, ci_high)`` of the policy with action distribution
    ``target`` (``n_actions x len_list``, each column summing to 1) on ``log``."""
    if target.shape != (log.n_actions, log.len_list):
        raise ValueError(f"target is {target.shape}; the log has {log.n_actions} actions x {log.len_list} positions")
    r = log.reward.astype(np.float64)
    w = target[log.action, log.position] / log.pscore
    fold = np.random.default_rng(seed).integers(0, folds, len(r))
    q_logged, q_target = np.empty(len(r)), np.empty(len(r))
    for f in range(folds):
        q = mean_rewards(log, np.flatnonzero(fold != f))
        rows = fold == f
        q_logged[rows] = q[log.action[rows], log.position[rows]]
        q_target[rows] = (target * q).sum(axis=0)[log.position[rows]]
    snips = float((w * r).sum() / w.sum())
    return {
        "ips": mean_interval(w * r),
        "snips": mean_interval(w * (r - snips) / w.mean(), snips),
        "dr": mean_interval(q_target + w * (r - q_logged)),
    }
