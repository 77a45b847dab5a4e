"""Why a model scored a row as it did: exact Shapley values of groups of its features.

A feature group (an attribute and its missing-value flag, the item's text components, the
user's taste) is one player. Its Shapley value is its average marginal contribution over every
order in which groups join, a group that has not joined taking the values of background rows
(interventional Shapley, as SHAP's ``Interventional`` explainer computes it): the values of a
row add up to its score minus the mean score of the background. Exact over every coalition, so
only for a few groups (``MAX_GROUPS``); identical rows are explained once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from math import factorial

import numpy as np

__all__ = ["MAX_GROUPS", "column_groups", "group_shapley", "top_contributions"]

MAX_GROUPS = 10
CHUNK_ROWS = 200_000  # rows x background rows scored at once


def coalition_weights(n_groups: int) -> np.ndarray:
    """Shapley's weight of a coalition of size s that a further group joins: s! (n-s-1)! / n!."""
    return np.array([factorial(s) * factorial(n_groups - s - 1) / factorial(n_groups) for s in range(n_groups)])


def group_shapley(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    background: np.ndarray,
    groups: Sequence[Sequence[int]],
) -> np.ndarray:
    """``(rows, groups)`` Shapley values of ``predict`` at the rows of ``x``: each group's
    columns (indices) join a coalition, the others keep ``background``'s values."""
    n_groups = len(groups)
    if n_groups > MAX_GROUPS:
        raise ValueError(f"{n_groups} feature groups: exact Shapley values take 2^n coalitions; at most {MAX_GROUPS}")
    unique, inverse = np.unique(x, axis=0, return_inverse=True)
    step = max(1, CHUNK_ROWS // max(len(background), 1))
    parts = [shapley_of_unique(predict, unique[s : s + step], background, groups) for s in range(0, len(unique), step)]
    return np.concatenate(parts)[np.ravel(inverse)]


def shapley_of_unique(
    predict: Callable[[np.ndarray], np.ndarray],
    unique: np.ndarray,
    background: np.ndarray,
    groups: Sequence[Sequence[int]],
) -> np.ndarray:
    """``group_shapley`` of distinct rows (few enough that rows x background fit in memory)."""
    n_groups = len(groups)
    coalitions = [c for size in range(n_groups + 1) for c in combinations(range(n_groups), size)]
    index = {c: i for i, c in enumerate(coalitions)}
    value = np.empty((len(unique), len(coalitions)))
    for i, coalition in enumerate(coalitions):
        mixed = np.repeat(background[None, :, :], len(unique), axis=0)  # (rows, background, columns)
        columns = [c for g in coalition for c in groups[g]]
        mixed[:, :, columns] = unique[:, None, columns]
        value[:, i] = predict(mixed.reshape(-1, unique.shape[1])).reshape(len(unique), len(background)).mean(axis=1)
    weights = coalition_weights(n_groups)
    out = np.zeros((len(unique), n_groups))
    for coalition in coalitions:
        for g in range(n_groups):
            if g in coalition:
                continue
            joined = tuple(sorted((*coalition, g)))
            out[:, g] += weights[len(coalition)] * (value[:, index[joined]] - value[:, index[coalition]])
    return out


def top_contributions(values: np.ndarray, names: Sequence[str], top: int) -> list[list[tuple[str, float]]]:
    """Per row, the ``top`` groups with the largest absolute Shapley value, largest first."""
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :top]
    return [[(names[j], float(values[r, j])) for j in row] for r, row in enumerate(order)]


def column_groups(
    columns: Sequence[str], groups: Mapping[str, Sequence[str]], limit: int = MAX_GROUPS
) -> tuple[list[str], list[list[int]]]:
    """Group names and each group's column indices, for the groups with a column in ``columns``;
    past ``limit`` groups, the smallest are pooled as ``other``."""
    position = {c: i for i, c in enumerate(columns)}
    found = {name: [position[c] for c in members if c in position] for name, members in groups.items()}
    found = {name: idx for name, idx in found.items() if idx}
    if len(found) > limit:
        keep = sorted(found, key=lambda n: -len(found[n]))[: limit - 1]
        pooled = sorted(i for n in found if n not in keep for i in found[n])
        found = {n: found[n] for n in found if n in keep} | {"other": pooled}
    return list(found), list(found.values())
