"""What outcome rate a top-K list would earn, estimated off-policy from a randomized slice.

A ranking policy, shown a user's candidate pairs, puts its ``k`` best-scored ones in the list.
Its value is the mean outcome a listed pair would have if shown, ``E[Y(1)]``, averaged over a
user's list and then over users: the click (or rating) rate per slot of the list. The pairs of
the randomized slice (``split = "test"``) are each user's candidates; their exposure was
randomized with a probability ``p`` known by design (read here as the slice's exposed share),
so the estimators below are unbiased without any model of the logging policy:

- ``ips``: ``D Y / p`` over the listed pairs (Horvitz-Thompson);
- ``snips``: the same weights normalised by their own sum (the listed pairs' observed rate);
- ``dm``: the direct method, the mean of a cross-fitted outcome model's ``E[Y | shown]``;
- ``dr``: ``mu1 + D (Y - mu1) / p``: the direct method corrected by the weighted residuals.

Where the slice has unexposed pairs too, each list's ``uplift`` (what showing it adds,
``E[Y(1) - Y(0)]``, the measure an uplift ranking aims at) is estimated the same way from both arms.

Intervals are 95% normal intervals from each user's contribution (users are independent;
a user's pairs share a taste). The random policy lists each candidate with probability
``k / n``; ties of a policy's scores are broken by a fixed hash of the item, not by row order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

Z95 = 1.959963984540054
ESTIMATORS = ("ips", "snips", "dm", "dr")
RANDOM = "random"
MAX_FIT_ROWS = 200_000  # rows an outcome model of the slice is fitted on, per fold
VALUE_SCHEMA = {
    "policy": pl.Utf8,
    "measure": pl.Utf8,
    "estimator": pl.Utf8,
    "k": pl.Int64,
    "value": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "users": pl.Int64,
    "true_value": pl.Float64,
}

__all__ = ["ESTIMATORS", "RANDOM", "VALUE_SCHEMA", "list_weights", "policy_values", "value_of_lists"]


def list_weights(pairs: pl.DataFrame, score: str | None, k: int) -> pl.Series:
    """Each pair's share of its user's top-``k`` list: 1 or 0 by ``score`` (highest first, ties
    broken by a hash of the item), or ``k / n`` for every pair when ``score`` is None (random)."""
    size = pl.len().over("user_id")
    if score is None:
        return pairs.select((pl.min_horizontal(size, pl.lit(k)) / size).alias("weight")).to_series()
    tiebreak = pl.col("item_id").cast(pl.Utf8).hash(seed=7)
    order = pairs.with_row_index("_row").sort(["user_id", score, tiebreak], descending=[False, True, False])
    ranked = order.with_columns((pl.int_range(pl.len()).over("user_id") < k).cast(pl.Float64).alias("weight"))
    return ranked.sort("_row")["weight"]


def outcome_model_features(pairs: pl.DataFrame, train: pl.DataFrame, score: str | None = None) -> np.ndarray:
    """Covariates an outcome model of the slice can read: each item's and user's exposure rate
    and exposed mean outcome in the training log (NaN where unseen), and ``score`` if given."""
    shown = pl.col("exposure") == 1
    y = pl.col("outcome").cast(pl.Float64)
    stats = [
        train.group_by(key).agg(
            pl.col("exposure").cast(pl.Float64).mean().alias(f"{key}_exposure_rate"),
            y.filter(shown).mean().alias(f"{key}_shown_outcome"),
        )
        for key in ("item_id", "user_id")
    ]
    joined = pairs.select("user_id", "item_id", *([score] if score else []))
    for table, key in zip(stats, ("item_id", "user_id"), strict=True):
        joined = joined.join(table, on=key, how="left", maintain_order="left")
    return joined.drop("user_id", "item_id").cast(pl.Float64).to_numpy()


def cross_fitted_mean(
    x: np.ndarray, arm: np.ndarray, y: np.ndarray, folds: np.ndarray, seed: int = 0, max_rows: int = MAX_FIT_ROWS
) -> np.ndarray:
    """``E[Y | arm, x]`` for every row by a model fitted on the ``arm`` rows of the other folds
    (at most ``max_rows`` of them, drawn at random: a large slice fits in bounded time)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    mean = np.full(len(y), float(y[arm].mean()) if arm.any() else 0.0)
    for fold in np.unique(folds):
        fit_rows = np.flatnonzero(arm & (folds != fold))
        if fit_rows.size < 50:
            continue
        if fit_rows.size > max_rows:
            fit_rows = np.sort(rng.choice(fit_rows, max_rows, replace=False))
        model = HistGradientBoostingRegressor(max_iter=100, max_depth=3, learning_rate=0.1, random_state=seed)
        model.fit(x[fit_rows], y[fit_rows])
        mean[folds == fold] = model.predict(x[folds == fold])
    return mean


def interval(contributions: np.ndarray, value: float | None = None) -> tuple[float, float, float]:
    """``(value, low, high)``: the mean of per-user contributions and its 95% normal interval."""
    n = len(contributions)
    mean = float(contributions.mean()) if value is None else value
    se = float(contributions.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return mean, mean - Z95 * se, mean + Z95 * se


def per_user(users: np.ndarray, values: np.ndarray, n_users: int) -> np.ndarray:
    """Each user's sum of ``values`` (users coded 0..n_users-1)."""
    return np.bincount(users, weights=values, minlength=n_users)


def snips_terms(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """The ratio of the means of ``a`` and ``b`` and each user's term of its linearisation."""
    value = float(a.mean() / b.mean())
    return value, (a - value * b) / b.mean()


def policy_values(
    slice_pairs: pl.DataFrame,
    policies: Mapping[str, str | None],
    k: int,
    mu1: np.ndarray,
    mu0: np.ndarray | None = None,
    truth: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The value of each policy's top-``k`` list on ``slice_pairs`` (``user_id, item_id,
    exposure, outcome`` and each policy's score column; the policy maps a name to its column,
    None for random) by every estimator of ``ESTIMATORS``, with 95% intervals (none for ``dm``:
    its error is its model's bias, which no such interval measures). ``mu1``/``mu0``: an outcome
    model's ``E[Y | shown]``/``E[Y | not shown]`` for each row (cross-fitted). Two measures:
    ``outcome`` (the outcome rate of a listed pair when shown) and, where the slice has both
    arms and ``mu0``, ``uplift`` (what showing it adds). ``truth`` (``user_id, item_id, p0, p1``),
    where known, adds each list's true value."""
    d = slice_pairs["exposure"].cast(pl.Float64).to_numpy()
    y = slice_pairs["outcome"].cast(pl.Float64).to_numpy()
    p = float(d.mean())
    if not 0 < p <= 1:
        raise ValueError(f"the slice has {slice_pairs.height} rows and none was shown: no list can be valued")
    codes = (slice_pairs["user_id"].rank("dense") - 1).to_numpy().astype(np.int64)
    n_users = int(codes.max()) + 1
    true = {}
    if truth is not None:
        joined = slice_pairs.join(truth, on=["user_id", "item_id"], how="left", maintain_order="left")
        if not joined["p1"].null_count():
            true["outcome"] = joined["p1"].to_numpy()
            if "p0" in joined.columns:
                true["uplift"] = joined["p1"].to_numpy() - joined["p0"].to_numpy()
    both_arms = mu0 is not None and p < 1
    rows = []
    for name, score in policies.items():
        w = list_weights(slice_pairs, score, k).to_numpy()
        slots = per_user(codes, w, n_users)
        slots = np.where(slots > 0, slots, 1.0)

        def per_slot(term: np.ndarray, w: np.ndarray = w, slots: np.ndarray = slots) -> np.ndarray:
            return per_user(codes, w * term, n_users) / slots

        shown_rate, shown_weight = per_slot(d * y / p), per_slot(d / p)
        v1, t1 = snips_terms(shown_rate, shown_weight)
        measures = {
            "outcome": {
                "ips": interval(shown_rate),
                "snips": interval(t1, v1),
                "dm": (float(per_slot(mu1).mean()), float("nan"), float("nan")),
                "dr": interval(per_slot(mu1 + d * (y - mu1) / p)),
            }
        }
        if both_arms:
            assert mu0 is not None
            hidden_rate, hidden_weight = per_slot((1 - d) * y / (1 - p)), per_slot((1 - d) / (1 - p))
            v0, t0 = snips_terms(hidden_rate, hidden_weight)
            measures["uplift"] = {
                "ips": interval(shown_rate - hidden_rate),
                "snips": interval(t1 - t0, v1 - v0),
                "dm": (float(per_slot(mu1 - mu0).mean()), float("nan"), float("nan")),
                "dr": interval(per_slot(mu1 - mu0 + d * (y - mu1) / p - (1 - d) * (y - mu0) / (1 - p))),
            }
        for measure, estimates in measures.items():
            true_value = float(per_slot(true[measure]).mean()) if measure in true else None
            for estimator in ESTIMATORS:
                value, low, high = estimates[estimator]
                rows.append((name, measure, estimator, k, value, low, high, n_users, true_value))
    return pl.DataFrame(rows, schema=VALUE_SCHEMA, orient="row")


def logged_policy_scores(slice_pairs: pl.DataFrame, train: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """``slice_pairs`` with the baselines' scores: ``popularity`` (the item's positive outcomes
    in the training log, outcome >= ``threshold``) and ``logging`` (the item's exposure rate in
    the training log: what the logging policy showed most)."""
    items = train.group_by("item_id").agg(
        ((pl.col("outcome").cast(pl.Float64) >= threshold) & (pl.col("exposure") == 1))
        .sum()
        .cast(pl.Float64)
        .alias("popularity"),
        pl.col("exposure").cast(pl.Float64).mean().alias("logging"),
    )
    return slice_pairs.join(items, on="item_id", how="left", maintain_order="left").with_columns(
        pl.col("popularity").fill_null(0.0), pl.col("logging").fill_null(0.0)
    )


def value_of_lists(
    interactions: pl.DataFrame,
    test_scores: pl.DataFrame,
    k: int,
    threshold: float,
    truth: pl.DataFrame | None = None,
    folds: int = 4,
) -> pl.DataFrame:
    """The value of the ranking's top-``k`` list (``test_scores``) of each user's randomized
    slice pairs beside popularity's, the logging policy's and a random list's (``policy_values``);
    empty without a slice."""
    if "split" not in interactions.columns:
        return pl.DataFrame(schema=VALUE_SCHEMA)
    slice_pairs = interactions.filter(pl.col("split") == "test").select("user_id", "item_id", "exposure", "outcome")
    if slice_pairs.is_empty():
        return pl.DataFrame(schema=VALUE_SCHEMA)
    train = interactions.filter(pl.col("split") != "test")
    scores = test_scores.unique(["user_id", "item_id"]).select("user_id", "item_id", pl.col("score").alias("ranking"))
    pairs = slice_pairs.join(scores, on=["user_id", "item_id"], how="left", maintain_order="left")
    pairs = logged_policy_scores(
        pairs.with_columns(pl.col("ranking").fill_null(pl.col("ranking").min())), train, threshold
    )
    x = outcome_model_features(pairs, train, score="ranking")
    fold = (pairs["user_id"].cast(pl.Utf8).hash(seed=11) % folds).to_numpy().astype(np.int64)
    d = pairs["exposure"].cast(pl.Int8).to_numpy() == 1
    y = pairs["outcome"].cast(pl.Float64).to_numpy()
    mu1 = cross_fitted_mean(x, d, y, fold)
    mu0 = cross_fitted_mean(x, ~d, y, fold) if (~d).any() else None
    policies = {"ranking": "ranking", "popularity": "popularity", "logging": "logging", RANDOM: None}
    return policy_values(pairs, policies, k, mu1, mu0, truth)
