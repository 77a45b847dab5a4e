"""Drawing (user, item) pairs and writing a simulated log's canonical tables, at any size.

Split out of ``scenarios`` because both the scenario worlds and the default simulator need
them: past ``DENSE_PAIRS`` users x items, pairs, per-pair confounders and the truth's uplift
are drawn without a users x items matrix, so memory follows the logged pairs only.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.special import ndtri

from causalrec_toolkit.tables import mix

# Up to this many users x items a world is drawn as it always was (dense per-pair tables, the
# truth's uplift on every pair); past it, without any users x items matrix, so a 100,000 x
# 10,000 world takes memory in its logged pairs only.
DENSE_PAIRS = 20_000_000
TRUTH_PAIRS = 2_000_000  # past this, the truth's uplift covers a random sample of users (all their items)


def distinct_items(rng: np.random.Generator, n_users: int, n_items: int, per_user: int) -> np.ndarray:
    """``per_user`` distinct item indices per user, in random order, drawing a few more than
    needed with replacement and keeping each row's first occurrences (memory: users x draws)."""
    if per_user * 2 > n_items:  # duplicates would be common: one permutation per user
        return np.stack([rng.permutation(n_items)[:per_user] for _ in range(n_users)])
    out = np.empty((n_users, per_user), dtype=np.int64)
    todo, draws_per_row = np.arange(n_users), per_user + max(8, per_user // 2)
    while todo.size:
        draws = rng.integers(0, n_items, (todo.size, draws_per_row))
        order = np.argsort(draws, axis=1, kind="stable")  # equal items: the earliest draw first
        ranked = np.take_along_axis(draws, order, axis=1)
        first = np.ones(ranked.shape, dtype=bool)
        first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        keep = np.empty_like(first)
        np.put_along_axis(keep, order, first, axis=1)
        enough = keep.sum(axis=1) >= per_user
        kept = np.argsort(~keep[enough], axis=1, kind="stable")[:, :per_user]
        out[todo[enough]] = np.take_along_axis(draws[enough], kept, axis=1)
        todo = todo[~enough]
    return out


def pair_normal(key: int, u: np.ndarray, i: np.ndarray, n_items: int) -> np.ndarray:
    """A standard normal per (user, item) pair, the same for the same pair: a hash of the pair
    (splitmix64) instead of a users x items table."""
    x = (u.astype(np.uint64) * np.uint64(n_items) + i.astype(np.uint64)) ^ np.uint64(key)
    x = mix(x + np.uint64(0x9E3779B97F4A7C15))
    uniform = ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    return ndtri(uniform)


def truth_users(rng: np.random.Generator, n_users: int, n_items: int) -> np.ndarray:
    """The users whose every item the truth's uplift covers: all of them in a small world, a
    random sample (``TRUTH_PAIRS`` pairs) in a large one."""
    if n_users * n_items <= TRUTH_PAIRS:
        return np.arange(n_users)
    return np.sort(rng.choice(n_users, max(1, TRUTH_PAIRS // n_items), replace=False))


def truth_pairs(users: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Every item of each of ``users``, as (user index, item index) arrays."""
    return np.repeat(users, n_items), np.tile(np.arange(n_items), users.size)


def log_table(
    users: np.ndarray,
    items: np.ndarray,
    exposure: np.ndarray,
    outcome: np.ndarray,
    seconds: np.ndarray,
    test: np.ndarray,
) -> pl.DataFrame:
    """The canonical interactions table of a simulated log (timestamps: seconds into 2026)."""
    timestamps = (np.datetime64("2026-01-01T00:00:00", "s") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")
    return pl.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "exposure": exposure.astype(np.int8),
            "outcome": outcome,
            "timestamp": timestamps,
            "split": np.where(test, "test", "train"),
        }
    ).sort("timestamp")


def uplift_table(users: np.ndarray, items: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> pl.DataFrame:
    """The truth's ``uplift`` frame: each pair's outcome without and with exposure."""
    return pl.DataFrame({"user_id": users, "item_id": items, "p0": p0, "p1": p1, "uplift": p1 - p0})


def logged_pairs(rng: np.random.Generator, n_users: int, n_items: int, per_user: int) -> np.ndarray:
    """``per_user`` distinct item indices for every user, without a users x items matrix."""
    if per_user > n_items:
        raise ValueError(f"{per_user} pairs per user exceed the {n_items} items")
    if n_users * n_items > DENSE_PAIRS:
        return distinct_items(rng, n_users, n_items, per_user)
    out = np.empty((n_users, per_user), dtype=np.int64)
    for u in range(n_users):
        out[u] = rng.choice(n_items, per_user, replace=False)
    return out
