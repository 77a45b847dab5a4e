"""What ``make run`` prints after materializing: the headline numbers and where the files are."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

from causalrec_resources.storage import storage_dir


def summarise(root: Path, users: int = 3) -> str:
    effects = pl.read_parquet(root / "treatment_effects.parquet")
    ate = effects.filter(pl.col("estimand") == "ATE")
    head = ate.row(0, named=True)
    naive = ate.filter(pl.col("estimator") == "naive")
    lines = [f"causalrec outputs in {root}", ""]
    interval = f"[{head['ci_low']:+.4f}, {head['ci_high']:+.4f}]"
    lines.append(f"headline ATE ({head['estimator']}): {head['estimate']:+.4f}  95% CI {interval}")
    truth_file = root / "ground_truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        lines.append(f"true ATE (simulator):  {truth['ate']:+.4f}   error {head['estimate'] - truth['ate']:+.4f}")
    if naive.height:
        lines.append(f"naive difference:      {naive['estimate'][0]:+.4f}")
    for row in ate.iter_rows(named=True):
        lines.append(f"  {row['estimator']:<14} {row['estimate']:+.4f}  [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]")
    facts = effects_metadata()
    if "headline_reason" in facts:
        lines.append(f"why {head['estimator']}: {facts['headline_reason']}")
    if "refuted" in facts:
        lines.append(f"refuted by the checks: {facts['refuted']}")
    if "sensitivity" in facts:
        lines.append(f"sensitivity (robustness {facts.get('robustness', '?')}): {facts['sensitivity']}")
    graph = json.loads((root / "causal_graph.json").read_text())
    lines += ["", f"causal graph: {len(graph['edges'])} edges; adjustment set: {graph.get('adjustment_set')}"]
    recs = pl.read_parquet(root / "recommendations.parquet")
    lines += ["", "top recommendations:"]
    for user in recs["user_id"].unique(maintain_order=True).head(users).to_list():
        top = recs.filter(pl.col("user_id") == user).sort("rank").head(5)
        items = ", ".join(f"{i} ({s:+.3f})" for i, s in zip(top["item_id"], top["score"], strict=True))
        lines.append(f"  {user}: {items}")
    truth_uplift = root / "true_uplift.parquet"
    if truth_uplift.exists():
        from causalrec_toolkit.evaluation import uplift_capture
        from causalrec_toolkit.rankers import unseen_pairs

        candidates = unseen_pairs(
            pl.read_parquet(root / "users.parquet"),
            pl.read_parquet(root / "items.parquet"),
            pl.read_parquet(root / "interactions.parquet"),
        )
        share = uplift_capture(recs, pl.read_parquet(truth_uplift), candidates)
        lines.append(f"  top-{recs['rank'].max()} uplift captured (simulator): {share:.3f} of an oracle's")
    evaluation = root / "evaluation.parquet"
    if evaluation.exists():
        metrics = pl.read_parquet(evaluation)
        lines += [
            "",
            "evaluation on the randomized test slice: "
            + ", ".join(f"{m}={v:.4f}" for m, v in metrics.iter_rows() if m != "test_rows"),
        ]
    lines += policy_value_lines(root)
    return "\n".join(lines)


def policy_value_lines(root: Path) -> list[str]:
    """The doubly robust value of each policy's lists (``policy_value``), beside the truth where
    the simulator knows it (recomputed here from ``true_uplift``: the asset does not read it)."""
    path = root / "policy_value.parquet"
    if not path.exists():
        return []
    values = pl.read_parquet(path)
    if values.is_empty():
        return []
    truth_file = root / "true_uplift.parquet"
    if truth_file.exists():
        from causalrec_toolkit import value_of_lists
        from causalrec_toolkit.variables import binarise_threshold

        interactions = pl.read_parquet(root / "interactions.parquet")
        values = value_of_lists(
            interactions,
            pl.read_parquet(root / "test_scores.parquet"),
            int(values["k"][0]),
            binarise_threshold(interactions["outcome"]),
            truth=pl.read_parquet(truth_file),
        )
    lines = ["", f"value of each policy's top-{values['k'][0]} lists of the randomized slice (doubly robust, 95% CI):"]
    for measure, label in (("outcome", "outcome rate if shown"), ("uplift", "uplift (what showing adds)")):
        rows = values.filter((pl.col("estimator") == "dr") & (pl.col("measure") == measure))
        parts = []
        for row in rows.iter_rows(named=True):
            true = f" true {row['true_value']:.4f}" if row["true_value"] is not None else ""
            parts.append(f"{row['policy']} {row['value']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]{true}")
        if parts:
            lines.append(f"  {label}: " + "; ".join(parts))
    return lines


def effects_metadata() -> dict[str, str]:
    """The latest ``treatment_effects`` materialization's metadata from the Dagster instance
    (``DAGSTER_HOME``), as text; empty when there is no instance or no materialization."""
    try:
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey("treatment_effects"))
    except Exception:  # no DAGSTER_HOME, or an instance this process cannot open: the files still tell
        return {}
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return {}
    return {key: str(value.value) for key, value in materialization.metadata.items()}


def main() -> int:
    root = storage_dir()
    if not (root / "treatment_effects.parquet").exists():
        print(f"no materialized outputs in {root}: run `make run` first", file=sys.stderr)
        return 1
    print(summarise(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
