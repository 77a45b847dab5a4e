"""Pictures a person reads faster than tables (PNG bytes, drawn off-screen with matplotlib)."""

from __future__ import annotations

import io

import polars as pl

__all__ = ["modifier_plot", "policy_value_plot"]


def policy_value_plot(values: pl.DataFrame, estimator: str = "dr") -> bytes | None:
    """Each policy's estimated value (``estimator``) with its 95% interval, one panel per
    measure (outcome rate of the list, uplift of the list); None when there is nothing to draw."""
    chosen = values.filter(pl.col("estimator") == estimator)
    if chosen.is_empty():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = chosen["measure"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.2), dpi=100, squeeze=False)
    titles = {
        "outcome": "outcome rate of a listed pair, if shown",
        "uplift": "uplift of a listed pair (what showing adds)",
    }
    for ax, measure in zip(axes[0], measures, strict=True):
        rows = chosen.filter(pl.col("measure") == measure)
        names = rows["policy"].to_list()
        value = rows["value"].to_numpy()
        low, high = value - rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy() - value
        colors = ["#1f77b4" if n == "ranking" else "#9a9a9a" for n in names]
        ax.barh(range(len(names)), value, xerr=[low, high], color=colors, capsize=3)
        if rows["true_value"].null_count() == 0:
            ax.scatter(
                rows["true_value"].to_numpy(), range(len(names)), color="black", marker="|", s=200, label="truth"
            )
            ax.legend(fontsize=9, loc="lower right")
        ax.set_yticks(range(len(names)), names, fontsize=10)
        ax.invert_yaxis()
        ax.set_title(
            f"{titles.get(measure, measure)}\ntop-{rows['k'][0]} list, {estimator.upper()}, 95% CI", fontsize=10
        )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def modifier_plot(explanations: pl.DataFrame) -> bytes | None:
    """How often each effect modifier is among a recommendation's largest, and its mean
    contribution there (bars, largest first); None without explanations."""
    if explanations.is_empty():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = (
        explanations.group_by("modifier")
        .agg(pl.len().alias("pairs"), pl.col("contribution").mean().alias("mean"))
        .sort("pairs", descending=True)
    )
    fig, ax = plt.subplots(figsize=(7, 0.45 * stats.height + 1.2), dpi=100)
    colors = ["#2ca02c" if m >= 0 else "#d62728" for m in stats["mean"]]
    ax.barh(range(stats.height), stats["mean"].to_numpy(), color=colors)
    labels = [f"{m} ({n} pairs)" for m, n in zip(stats["modifier"], stats["pairs"], strict=True)]
    ax.set_yticks(range(stats.height), labels, fontsize=10)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("mean contribution to the predicted uplift (Shapley value)")
    ax.set_title("What the recommendations' predicted uplift rests on", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
