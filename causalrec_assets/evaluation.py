"""Ranking quality on the randomized ``test`` slice: AUC, NDCG@K, recall@K, and uplift
metrics (AUUC, Qini) where the slice has outcomes for both exposure arms."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from causalrec_assets.variables import binarise_threshold


def ndcg_recall_at_k(frame: pl.DataFrame, k: int) -> dict[str, float]:
    """Per-user NDCG@k and recall@k (users with no relevant item: skipped, or scored 1)."""
    ndcg_skip, ndcg_one, recall = [], [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for _, group in frame.group_by("user_id"):
        rel = group.sort("score", descending=True)["relevant"].to_numpy()
        n_rel = int(rel.sum())
        if n_rel == 0:
            ndcg_one.append(1.0)
            continue
        dcg = float((rel[:k] * discounts[: min(k, rel.size)]).sum())
        idcg = float(discounts[: min(k, n_rel)].sum())
        ndcg_skip.append(dcg / idcg)
        ndcg_one.append(dcg / idcg)
        recall.append(float(rel[:k].sum()) / n_rel)
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {f"ndcg@{k}": mean(ndcg_skip), f"ndcg@{k}_no_relevant_as_1": mean(ndcg_one), f"recall@{k}": mean(recall)}


def uplift_curve_metrics(score: np.ndarray, treated: np.ndarray, y: np.ndarray, bins: int = 100) -> dict[str, float]:
    """AUUC (mean cumulative uplift over the top fractions, per targeted pair) and the Qini
    coefficient (area between the Qini curve and random targeting, normalised by N)."""
    order = np.argsort(-score, kind="stable")
    t, yy = treated[order], y[order]
    n = t.size
    cum_t, cum_c = np.cumsum(t), np.cumsum(1 - t)
    cum_yt, cum_yc = np.cumsum(yy * t), np.cumsum(yy * (1 - t))
    cut = np.unique(np.linspace(1, n, bins).astype(int)) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where((cum_t[cut] > 0) & (cum_c[cut] > 0), cum_yt[cut] / cum_t[cut] - cum_yc[cut] / cum_c[cut], 0.0)
        qini = cum_yt[cut] - cum_yc[cut] * np.where(cum_c[cut] > 0, cum_t[cut] / cum_c[cut], 0.0)
    overall = qini[-1]
    random = overall * (cut + 1) / n
    return {"auuc": float(np.mean(lift)), "qini": float(np.mean(qini - random) / n)}


def evaluate(interactions: pl.DataFrame, test_scores: pl.DataFrame, k: int = 5) -> pl.DataFrame:
    """``metric, value`` rows (empty of scores where there is no test slice)."""
    test = interactions.filter(pl.col("split") == "test")
    rows: list[tuple[str, float | None]] = [("test_rows", float(test.height))]
    if test.is_empty():
        return pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.Float64}, orient="row")
    threshold = binarise_threshold(interactions["outcome"])
    joined = test.join(test_scores.unique(["user_id", "item_id"]), on=["user_id", "item_id"], how="left").with_columns(
        pl.col("score").fill_null(pl.col("score").min()),
        (pl.col("outcome").cast(pl.Float64) >= threshold).cast(pl.Int8).alias("relevant"),
    )
    treated = joined["exposure"].cast(pl.Int8).to_numpy()
    both_arms = len(np.unique(treated)) == 2
    # Relevance is judged where items were shown; uplift needs both arms.
    shown = joined.filter(pl.col("exposure") == 1) if both_arms else joined
    rel = shown["relevant"].to_numpy()
    if 0 < rel.sum() < rel.size:
        rows.append(("auc", float(roc_auc_score(rel, shown["score"].to_numpy()))))
    rows += list(ndcg_recall_at_k(shown, k).items())
    if both_arms:
        y = joined["outcome"].cast(pl.Float64).to_numpy()
        rows += list(uplift_curve_metrics(joined["score"].to_numpy(), treated, y).items())
    return pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.Float64}, orient="row")


def uplift_capture(recommendations: pl.DataFrame, true_uplift: pl.DataFrame, candidates: pl.DataFrame) -> float:
    """Share of the true uplift an oracle's top-K (K = the recommendations' length per user,
    among the same candidate pairs) would capture that the recommendations capture."""
    k = int(recommendations.group_by("user_id").len()["len"].max() or 0)
    truth = candidates.join(true_uplift.select("user_id", "item_id", "uplift"), on=["user_id", "item_id"])
    oracle = truth.sort("uplift", descending=True).group_by("user_id").head(k)["uplift"].sum()
    got = recommendations.join(truth, on=["user_id", "item_id"], how="left")["uplift"].fill_null(0.0).sum()
    return float(got / oracle) if oracle else float("nan")
