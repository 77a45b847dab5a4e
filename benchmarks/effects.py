"""The causal core on worlds it was not built against, side by side with DoWhy and EconML.

For each simulated world (the built-in one and the scenarios of
``causalrec_plugins.ingest.scenarios``: confounding through an interaction of attributes,
through numbers, through a taste only history and text reveal; no effect; a negative
effect; strong confounding; a continuous outcome; a confounder no table holds) the whole
pipeline is materialized in process with its defaults (real encoder, structure learning,
effects, refutation, ranking). Then, on the same training pairs and the same adjustment set
read off the learned graph, with the same covariates the headline saw:

- DoWhy's backdoor estimators: ``linear_regression`` and ``propensity_score_weighting``
  (bootstrap interval);
- EconML's ``LinearDRLearner`` with its own default (linear) nuisance models, categories
  one-hot, propensities clipped at 0.01.

Printed per world: the truth, the naive difference, each estimate's error and whether its
95% interval covers the truth, the refutation verdicts, the top-10 uplift capture of the
recommendations (share of an oracle's), and seconds (as ratios to causalrec's estimation).

    .venv/bin/pip install -e '.[bench]'        # DoWhy
    .venv/bin/python benchmarks/effects.py [--worlds default,interaction,...] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

WORLDS = ("default", "interaction", "numeric", "null", "negative", "strong", "continuous", "taste", "hidden")


def materialize(world: str, seed: int, storage: Path):
    import dagster as dg

    from causalrec_assets import defs

    os.environ["CAUSALREC_STORAGE"] = str(storage)
    simulator = {"seed": seed} if world == "default" else {"scenario": world, "seed": seed}
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config={"ops": {"ingest": {"config": {"plugin": "simulator", "simulator": simulator}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=True,
    )


def covariates(storage: Path) -> tuple[pl.DataFrame, list[str], list[str]]:
    """The training pairs' features, the headline's covariate columns and which are codes."""
    from causalrec_toolkit.bayesnet import adjustment_set
    from causalrec_toolkit.features import feature_groups

    graph = json.loads((storage / "causal_graph.json").read_text())
    frame = pl.read_parquet(storage / "pair_features.parquet").filter(pl.col("split") == "train")
    groups = feature_groups(frame.columns)
    wanted = {c for v in adjustment_set([tuple(e) for e in graph["edges"]]) for c in groups.get(v, [])}
    columns = [c for c in frame.columns if c in wanted]
    return frame, columns, [c for c in columns if frame.schema[c].is_integer()]


def dowhy_estimates(frame: pl.DataFrame, columns: list[str], categorical: list[str]) -> dict[str, tuple]:
    from dowhy import CausalModel

    data = frame.select(*columns, "exposure", "outcome").to_pandas()
    for c in categorical:
        data[c] = data[c].astype(str)
    data["exposure"] = data["exposure"].astype(bool)
    model = CausalModel(data=data, treatment="exposure", outcome="outcome", common_causes=columns or None)
    estimand = model.identify_effect(proceed_when_unidentifiable=True)
    out = {}
    for label, method, params in (
        ("dowhy_linear_regression", "backdoor.linear_regression", {}),
        ("dowhy_ps_weighting", "backdoor.propensity_score_weighting", {"num_simulations": 30}),
    ):
        start = time.perf_counter()
        estimate = model.estimate_effect(estimand, method_name=method, confidence_intervals=True, method_params=params)
        low, high = np.ravel(np.asarray(estimate.get_confidence_intervals(), dtype=float))[:2]
        out[label] = (float(estimate.value), float(low), float(high), time.perf_counter() - start)
    return out


def econml_default(frame: pl.DataFrame, columns: list[str], categorical: list[str]) -> tuple:
    """EconML's LinearDRLearner with its default (linear, cross-validated) nuisance models, as
    a user would call it: categories one-hot, propensities clipped at 0.01 as causalrec's are
    (its default floor of 1e-6 lets a few weights explode)."""
    from econml.dr import LinearDRLearner

    coded = frame.select(columns).to_dummies(columns=categorical, drop_first=True) if columns else None
    w = coded.to_numpy().astype(float) if coded is not None else np.zeros((frame.height, 1))
    t, y = frame["exposure"].to_numpy().astype(int), frame["outcome"].to_numpy()
    start = time.perf_counter()
    model = LinearDRLearner(min_propensity=0.01, random_state=0).fit(y, t, X=None, W=w)
    low, high = model.ate_interval(alpha=0.05)
    return (
        float(np.ravel(model.ate())[0]),
        float(np.ravel(low)[0]),
        float(np.ravel(high)[0]),
        time.perf_counter() - start,
    )


def capture(storage: Path) -> float:
    from causalrec_toolkit.evaluation import uplift_capture
    from causalrec_toolkit.rankers import unseen_pairs

    users, items = pl.read_parquet(storage / "users.parquet"), pl.read_parquet(storage / "items.parquet")
    log = pl.read_parquet(storage / "interactions.parquet")
    return uplift_capture(
        pl.read_parquet(storage / "recommendations.parquet"),
        pl.read_parquet(storage / "true_uplift.parquet"),
        unseen_pairs(users, items, log),
    )


def cell(estimate: float, low: float, high: float, truth: float) -> str:
    mark = "covers" if low <= truth <= high else "MISSES"
    return f"{estimate - truth:+.4f} {mark} (±{(high - low) / 2:.4f})"


def run_world(world: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"causalrec-bench-{world}-") as tmp:
        storage = Path(tmp)
        start = time.perf_counter()
        result = materialize(world, seed, storage)
        pipeline_seconds = time.perf_counter() - start
        truth = json.loads((storage / "ground_truth.json").read_text())["ate"]
        effects = pl.read_parquet(storage / "treatment_effects.parquet").filter(pl.col("estimand") == "ATE")
        head = effects.row(0, named=True)
        meta = result.asset_materializations_for_node("treatment_effects")[0].metadata
        seconds = float(meta["estimate_seconds"].value) + float(meta["refutation_seconds"].value)
        checks = {
            e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["treatment_effects"]
        }
        verdicts = {
            name: "pass"
            if e.passed
            else f"FAIL ({e.metadata['likely_cause'].value if 'likely_cause' in e.metadata else '?'})"
            for name, e in sorted(checks.items())
        }
        frame, columns, categorical = covariates(storage)
        row = {
            "world": world,
            "truth": truth,
            "naive": effects.filter(pl.col("estimator") == "naive")["estimate"][0] - truth,
            "causalrec": (head["estimator"], head["estimate"], head["ci_low"], head["ci_high"], seconds),
            "estimate_seconds": float(meta["estimate_seconds"].value),
            "pipeline_seconds": pipeline_seconds,
            "refutations": verdicts,
            "capture": capture(storage),
        }
        try:
            row |= dowhy_estimates(frame, columns, categorical)
        except ImportError:
            print("DoWhy is not installed (pip install -e '.[bench]'): its columns are left out", file=sys.stderr)
        row["econml_default_dr"] = econml_default(frame, columns, categorical)
        return row


def report(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        truth = r["truth"]
        name, est, low, high, secs = r["causalrec"]
        lines.append(f"\n== {r['world']}: true ATE {truth:+.4f}, naive error {r['naive']:+.4f}")
        lines.append(f"  causalrec ({name:<12}) {cell(est, low, high, truth)}  {secs:6.1f} s (effects + refutation)")
        for key in ("dowhy_linear_regression", "dowhy_ps_weighting", "econml_default_dr"):
            if key in r:
                e, lo, hi, s = r[key]
                ratio = s / max(r["estimate_seconds"], 1e-9)
                lines.append(f"  {key:<24} {cell(e, lo, hi, truth)}  {s:6.1f} s ({ratio:.2f}x causalrec's estimation)")
        lines.append("  refutations: " + ", ".join(f"{k} {v}" for k, v in r["refutations"].items()))
        if not math.isnan(r["capture"]):
            lines.append(f"  top-10 uplift capture (share of the oracle's): {r['capture']:.3f}")
    errors = [abs(r["causalrec"][1] - r["truth"]) for r in rows if r["world"] not in ("taste", "hidden")]
    covered = [
        r["causalrec"][2] <= r["truth"] <= r["causalrec"][3] for r in rows if r["world"] not in ("taste", "hidden")
    ]
    if errors:
        lines.append(
            f"\nworlds whose confounders are observed ({len(errors)}): causalrec's largest error {max(errors):.4f}, "
            f"its interval covers the truth in {sum(covered)} of {len(covered)}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", default=",".join(WORLDS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    rows = []
    for world in args.worlds.split(","):
        start = time.perf_counter()
        rows.append(run_world(world.strip(), args.seed))
        print(f"{world}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
