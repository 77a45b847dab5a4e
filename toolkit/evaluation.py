"""Ranking quality on the randomized ``test`` slice: AUC, NDCG@K, recall@K under both
conventions for users without a relevant test item (skipped, or scored 1) and at each
relevance threshold; MSE / MAE where the scores are predicted outcomes; uplift metrics
(AUUC, Qini) where the slice has outcomes for both exposure arms.

The conventions follow the debiasing literature's code (Li et al.'s DR-BIAS / StableDR, used
by CDR and UPO): AUC pools every test pair of the slice; NDCG@K is computed per user over
that user's test items and averaged; a user with no relevant test item scores 1 under the
``no_relevant_as_1`` convention.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from causalrec_toolkit.variables import binarise_threshold

__all__ = [
    "COUNTS",
    "METRIC_SCHEMA",
    "REPORT_SCHEMA",
    "TARGET_NOTES",
    "UPLIFT_METRICS",
    "evaluate",
    "evaluation_plot",
    "evaluation_report",
    "fits_ranking",
    "ndcg_recall_at_k",
    "ranking_metrics",
    "ranking_target",
    "relevance_thresholds",
    "scores_on_outcome_scale",
    "uplift_capture",
    "uplift_curve_metrics",
    "uplift_curves",
]

METRIC_SCHEMA = {"metric": pl.String, "value": pl.Float64}


def relevance_thresholds(outcome: pl.Series) -> list[float]:
    """Where an outcome counts as relevant: 0/1 data at 0.5; ratings on a 1–5 scale at both
    3 (the debiasing literature's cut for Coat and Yahoo! R3) and 4 (the pipeline's own);
    anything else above its median."""
    default = binarise_threshold(outcome)
    values = outcome.drop_nulls().cast(pl.Float64)
    if values.is_empty() or set(values.unique().to_list()) <= {0.0, 1.0}:
        return [default]
    if values.min() >= 0 and values.max() <= 5 and values.max() > 3:
        return sorted({3.0, default})
    return [default]


def ndcg_recall_at_k(frame: pl.DataFrame, k: int) -> dict[str, float]:
    """Per-user NDCG@k and recall@k over ``user_id, score, relevant`` rows; users with no
    relevant item are skipped (plain keys) or scored 1 (``_no_relevant_as_1`` keys)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    order = frame.select("user_id", "score", "relevant").sort(
        ["user_id", "score"], descending=[False, True], maintain_order=True
    )
    user = order["user_id"].rle_id().to_numpy().astype(np.int64)  # 0, 1, ... in user order
    rel = order["relevant"].to_numpy().astype(float)
    n_users = int(user[-1]) + 1 if user.size else 0
    position = np.arange(user.size) - np.flatnonzero(np.r_[True, user[1:] != user[:-1]])[user]
    top = position < k
    gains = np.zeros((n_users, k))  # each user's top-k gains, zero where the user has fewer items
    gains[user[top], position[top]] = rel[top] * discounts[position[top]]
    n_rel = np.bincount(user, weights=rel, minlength=n_users)
    has = n_rel > 0
    ideal = np.array([discounts[:j].sum() for j in range(1, k + 1)])  # IDCG of j relevant items
    ndcg = gains.sum(axis=1)[has] / ideal[np.minimum(k, n_rel[has]).astype(np.int64) - 1]
    recall = np.bincount(user[top], weights=rel[top], minlength=n_users)[has] / n_rel[has]
    ndcg_one, recall_one = np.ones(n_users), np.ones(n_users)
    ndcg_one[has], recall_one[has] = ndcg, recall
    mean = lambda v: float(np.mean(v)) if v.size else float("nan")  # noqa: E731
    return {
        f"ndcg@{k}": mean(ndcg),
        f"ndcg@{k}_no_relevant_as_1": mean(ndcg_one),
        f"recall@{k}": mean(recall),
        f"recall@{k}_no_relevant_as_1": mean(recall_one),
    }


def uplift_curve_metrics(score: np.ndarray, treated: np.ndarray, y: np.ndarray, bins: int = 100) -> dict[str, float]:
    """AUUC (mean cumulative uplift over the top fractions, per targeted pair) and the Qini
    coefficient (area between the Qini curve and random targeting, normalised by N)."""
    curve = uplift_curves(score, treated, y, bins)
    return {"auuc": float(np.mean(curve["lift"])), "qini": float(np.mean(curve["qini"] - curve["random"]) / y.size)}


def uplift_curves(score: np.ndarray, treated: np.ndarray, y: np.ndarray, bins: int = 100) -> dict[str, np.ndarray]:
    """The cumulative uplift and Qini curves of targeting pairs in descending score order."""
    order = np.argsort(-score, kind="stable")
    t, yy = treated[order], y[order]
    n = t.size
    cum_t, cum_c = np.cumsum(t), np.cumsum(1 - t)
    cum_yt, cum_yc = np.cumsum(yy * t), np.cumsum(yy * (1 - t))
    cut = np.unique(np.linspace(1, n, bins).astype(int)) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where((cum_t[cut] > 0) & (cum_c[cut] > 0), cum_yt[cut] / cum_t[cut] - cum_yc[cut] / cum_c[cut], 0.0)
        qini = cum_yt[cut] - cum_yc[cut] * np.where(cum_c[cut] > 0, cum_t[cut] / cum_c[cut], 0.0)
    return {"share": (cut + 1) / n, "lift": lift, "qini": qini, "random": qini[-1] * (cut + 1) / n}


def scores_on_outcome_scale(scores: np.ndarray, outcomes: np.ndarray) -> bool:
    """Whether scores read as predicted outcomes (a rating predictor's, not counts or uplifts):
    they stay within the outcome's range widened by its span on either side (a 1–5 rating
    predictor may stray below 1 or above 5, a count of ratings soon leaves that band), and
    their spread is not tiny next to it."""
    lo, hi = float(np.min(outcomes)), float(np.max(outcomes))
    span = hi - lo
    if span <= 0 or scores.size == 0:
        return False
    inside = lo - span <= float(np.min(scores)) and float(np.max(scores)) <= hi + span
    return inside and float(np.ptp(scores)) > 0.05 * span


def ranking_metrics(frame: pl.DataFrame, threshold: float, k: int, suffix: str = "") -> list[tuple[str, float]]:
    """AUC pooled over the rows, and per-user NDCG@k and recall@k, at one relevance threshold."""
    rel = (frame["outcome"].cast(pl.Float64) >= threshold).cast(pl.Int8)
    scored = frame.select("user_id", "score").with_columns(rel.alias("relevant"))
    rows: list[tuple[str, float]] = []
    y = scored["relevant"].to_numpy()
    if 0 < y.sum() < y.size:
        rows.append((f"auc{suffix}", float(roc_auc_score(y, scored["score"].to_numpy()))))
    rows += [(f"{name}{suffix}", value) for name, value in ndcg_recall_at_k(scored, k).items()]
    return rows


def evaluate(interactions: pl.DataFrame, test_scores: pl.DataFrame, k: int = 5) -> pl.DataFrame:
    """``metric, value`` rows (only ``test_rows`` where there is no test slice). Unsuffixed
    ranking metrics use the pipeline's relevance threshold; ``[outcome>=t]`` rows repeat them
    at each threshold of ``relevance_thresholds``."""
    test = interactions.filter(pl.col("split") == "test")
    rows: list[tuple[str, float]] = [("test_rows", float(test.height))]
    if test.is_empty():
        return pl.DataFrame(rows, schema=METRIC_SCHEMA, orient="row")
    joined = test.join(test_scores.unique(["user_id", "item_id"]), on=["user_id", "item_id"], how="left")
    missing = int(joined["score"].null_count())
    joined = joined.with_columns(pl.col("score").cast(pl.Float64).fill_null(pl.col("score").min()))
    if missing:
        rows.append(("test_rows_without_score", float(missing)))
    treated = joined["exposure"].cast(pl.Int8).to_numpy()
    both_arms = len(np.unique(treated)) == 2
    # Relevance is judged where items were shown; uplift needs both arms.
    shown = joined.filter(pl.col("exposure") == 1) if both_arms else joined
    default = binarise_threshold(interactions["outcome"])
    rows += ranking_metrics(shown, default, k)
    thresholds = relevance_thresholds(interactions["outcome"])
    if thresholds != [default]:
        for t in thresholds:
            rows += ranking_metrics(shown, t, k, suffix=f"[outcome>={t:g}]")
    y_shown = shown["outcome"].cast(pl.Float64).to_numpy()
    s_shown = shown["score"].to_numpy()
    if len(np.unique(y_shown)) > 2 and scores_on_outcome_scale(s_shown, y_shown):
        rows += [("mse", float(np.mean((s_shown - y_shown) ** 2))), ("mae", float(np.mean(np.abs(s_shown - y_shown))))]
    if both_arms:
        y = joined["outcome"].cast(pl.Float64).to_numpy()
        rows += list(uplift_curve_metrics(joined["score"].to_numpy(), treated, y).items())
    return pl.DataFrame(rows, schema=METRIC_SCHEMA, orient="row")


UPLIFT_METRICS = ("auuc", "qini")
COUNTS = ("test_rows", "test_rows_without_score")
REPORT_SCHEMA = {**METRIC_SCHEMA, "random": pl.Float64, "oracle": pl.Float64, "fits_ranking": pl.Boolean}
TARGET_NOTES = {
    "uplift": "The training log has outcomes of unexposed pairs, so the ranking orders pairs by uplift (what "
    "showing the item adds). AUUC and Qini measure that. AUC, NDCG and recall measure whether scores find pairs "
    "with a positive outcome, which an uplift ranking does not aim at (a pair that engages anyway gains little), "
    "so they can sit near or below random.",
    "relevance": "Every logged pair was exposed (rating data), so the ranking orders pairs by debiased relevance: "
    "AUC, NDCG@5 and recall@5 (and MSE/MAE for rating predictors) measure it.",
}


def ranking_target(interactions: pl.DataFrame) -> str:
    """What a causal ranking of this log is for (README, "Effects, refutation and ranking"):
    ``uplift`` where the training rows have both exposure values, else ``relevance``."""
    train = interactions.filter(pl.col("split") != "test") if "split" in interactions.columns else interactions
    return "uplift" if train["exposure"].cast(pl.Int64).n_unique() > 1 else "relevance"


def fits_ranking(metric: str, target: str) -> bool | None:
    """Whether ``metric`` measures what a ranking with ``target`` is for (None: a count)."""
    if metric in COUNTS:
        return None
    return (metric in UPLIFT_METRICS) == (target == "uplift")


def evaluation_report(
    interactions: pl.DataFrame, test_scores: pl.DataFrame, metrics: pl.DataFrame, k: int = 5, draws: int = 3
) -> pl.DataFrame:
    """``metrics`` beside what random scores (the mean of ``draws`` uniform draws) and an oracle
    would get (relevance metrics: the outcome itself; uplift metrics: treated responders first and
    control responders last, the best ordering the slice allows), and whether each fits the ranking."""
    test = interactions.filter(pl.col("split") == "test")
    if test.is_empty():
        return pl.DataFrame(schema=REPORT_SCHEMA)
    rng = np.random.default_rng(0)
    pairs, y, t = test.select("user_id", "item_id"), pl.col("outcome").cast(pl.Float64), pl.col("exposure")
    drawn_scores = [pairs.with_columns(score=pl.Series(rng.random(test.height))) for _ in range(draws)]
    randoms = [dict(evaluate(interactions, scores, k).rows()) for scores in drawn_scores]
    relevant = dict(evaluate(interactions, test.select("user_id", "item_id", y.alias("score")), k).rows())
    uplift_score = pl.when(t == 1).then(y).otherwise(-y).alias("score")
    uplift = dict(evaluate(interactions, test.select("user_id", "item_id", uplift_score), k).rows())
    target = ranking_target(interactions)
    rows = []
    for metric, value in metrics.iter_rows():
        drawn = [r[metric] for r in randoms if r.get(metric) is not None and r[metric] == r[metric]]
        oracle = (uplift if metric in UPLIFT_METRICS else relevant).get(metric)
        counted = metric in COUNTS
        random = None if counted or not drawn else float(np.mean(drawn))
        rows.append((metric, value, random, None if counted else oracle, fits_ranking(metric, target)))
    return pl.DataFrame(rows, schema=REPORT_SCHEMA, orient="row")


def evaluation_plot(interactions: pl.DataFrame, test_scores: pl.DataFrame, metrics: pl.DataFrame) -> bytes | None:
    """A small PNG: the uplift curve against random targeting where both arms were tested,
    else the ranking metrics at each threshold and convention. None without a test slice."""
    test = interactions.filter(pl.col("split") == "test")
    if test.is_empty():
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4), dpi=100)  # 10 pt text is 14 px at the picture's own size
    values = dict(metrics.rows())
    joined = test.join(test_scores.unique(["user_id", "item_id"]), on=["user_id", "item_id"], how="left")
    treated = joined["exposure"].cast(pl.Int8).to_numpy()
    if len(np.unique(treated)) == 2:
        score = joined["score"].cast(pl.Float64).fill_null(strategy="min").to_numpy()
        curve = uplift_curves(score, treated, joined["outcome"].cast(pl.Float64).to_numpy())
        y = joined["outcome"].cast(pl.Float64).to_numpy()
        best = uplift_curves(np.where(treated == 1, y, -y), treated, y)
        ax.plot(
            curve["share"],
            curve["qini"],
            color="#1f77b4",
            lw=2,
            label=f"ranker (Qini {values.get('qini', float('nan')):.4g})",
        )
        ax.plot(best["share"], best["qini"], ":", color="black", label="oracle (best ordering of the slice)")
        ax.plot(curve["share"], curve["random"], "--", color="grey", label="random targeting")
        ax.set_xlabel("share of test pairs targeted, best score first")
        ax.set_ylabel("incremental positives")
        ax.set_title("Qini curve on the randomized test slice")
        ax.legend(fontsize=10)
    else:
        names = [m for m in values if m.startswith(("auc", "ndcg@", "recall@")) and values[m] == values[m]]
        if any("[" in m for m in names):  # per-threshold rows repeat the unsuffixed ones
            names = [m for m in names if "[" in m]
        ax.barh(range(len(names)), [values[m] for m in names], color="#4c72b0")
        ax.set_yticks(range(len(names)), names, fontsize=10)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title("ranking quality on the test slice")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def uplift_capture(recommendations: pl.DataFrame, true_uplift: pl.DataFrame, candidates: pl.DataFrame) -> float:
    """Share of the true uplift an oracle's top-K (K = the recommendations' length per user,
    among the same candidate pairs) would capture that the recommendations capture."""
    k = int(recommendations.group_by("user_id").len()["len"].max() or 0)
    truth = candidates.join(true_uplift.select("user_id", "item_id", "uplift"), on=["user_id", "item_id"])
    oracle = truth.sort("uplift", descending=True).group_by("user_id").head(k)["uplift"].sum()
    got = recommendations.join(truth, on=["user_id", "item_id"], how="left")["uplift"].fill_null(0.0).sum()
    return float(got / oracle) if oracle else float("nan")
