"""Debiased ranking on Coat (and MovieLens-100K), through the pipeline itself.

For each dataset the whole pipeline is materialized once (Dagster, in process, default
config); then the ranking stage is re-materialized for every method and seed, and the
``evaluation`` asset's figures (computed from ``test_scores`` on the ``split = test`` rows)
are collected. Methods:

- popularity: items by their count of relevant training ratings (the ``popularity`` ranker);
- naive MF: biased MF, plain MSE on the observed ratings, no side features;
- MF-IPS / MF-DR: the same MF with self-normalised IPS or DR-JL losses;
- causalrec: the default pipeline (``causal`` ranker: IPS MF with user/item side features).

Every MF chooses its L2 strength and epochs on a validation split of the training log; the
test slice is never used for training, propensities or model selection. "seed" is the
ranker's ``seed`` config (model initialisation and validation split).

Coat's test slice is the randomized one of Schnabel et al. (2016). MovieLens-100K has no
randomized slice: it is split in time (each user's latest 20% of ratings are the test rows),
so its figures measure predicting what users rated next, not debiasing.

    .venv/bin/python benchmarks/coat.py [--seeds 5] [--skip-movielens]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# published_snapshot too: a run's outputs reach the storage only when it publishes them
RANKING_ASSETS = ("recommendations", "test_scores", "explanations", "evaluation", "policy_value", "published_snapshot")

METHODS: dict[str, dict] = {
    "popularity": {"plugin": "popularity"},
    "naive MF": {"plugin": "relevance", "relevance": {"weighting": "none", "side_features": False}},
    "MF-IPS": {"plugin": "relevance", "relevance": {"weighting": "ips", "side_features": False}},
    "MF-DR": {"plugin": "relevance", "relevance": {"weighting": "dr", "side_features": False}},
    "causalrec": {"plugin": "causal", "causal": {}},
}
SEEDLESS = {"popularity"}
REPORTED = ("auc", "ndcg@5_no_relevant_as_1", "ndcg@5", "recall@5_no_relevant_as_1", "mse")


def materialize(run_config: dict, selection: tuple[str, ...] | None = None):
    import dagster as dg

    from causalrec_assets import defs

    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        run_config=run_config,
        asset_selection=[dg.AssetKey(a) for a in selection] if selection else None,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=True,
    )
    assert result.success
    return result


def ranking_config(method: str, seed: int) -> dict:
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in METHODS[method].items()}
    plugin = config["plugin"]
    if method not in SEEDLESS:
        config[plugin] = {**config.get(plugin, {}), "seed": seed}
    return {"ops": {"ranking": {"config": config}}}


def metrics_at(evaluation: pl.DataFrame, threshold: float) -> dict[str, float]:
    """The reported metrics at one relevance threshold (``[outcome>=t]`` rows)."""
    values = dict(evaluation.rows())
    out = {}
    for name in REPORTED:
        key = name if name in ("mse",) else f"{name}[outcome>={threshold:g}]"
        out[name] = float(values.get(key, float("nan")))
    return out


def run_dataset(label: str, data: str, seeds: int, work: Path, log) -> dict[str, list[pl.DataFrame]]:
    """Every method x seed on one dataset; returns the evaluation tables per method."""
    storage = work / label
    os.environ["CAUSALREC_DATA"] = data
    os.environ["CAUSALREC_STORAGE"] = str(storage)
    start = time.perf_counter()
    materialize(ranking_config("causalrec", 0))
    log(f"[{label}] pipeline materialized in {time.perf_counter() - start:.0f}s (storage {storage})")
    tables: dict[str, list[pl.DataFrame]] = {m: [] for m in METHODS}
    tables["causalrec"].append(pl.read_parquet(storage / "evaluation.parquet"))
    for method in METHODS:
        for seed in range(1 if method in SEEDLESS else seeds):
            if method == "causalrec" and seed == 0:
                continue
            start = time.perf_counter()
            materialize(ranking_config(method, seed), RANKING_ASSETS)
            tables[method].append(pl.read_parquet(storage / "evaluation.parquet"))
            auc = metrics_at(tables[method][-1], 3.0)["auc"]
            log(f"[{label}] {method} seed {seed}: AUC(>=3) {auc:.4f} in {time.perf_counter() - start:.0f}s")
    return tables


def table(tables: dict[str, list[pl.DataFrame]], threshold: float) -> str:
    """mean ± std over seeds, and each method's ratio to naive MF."""
    summary = {m: [metrics_at(t, threshold) for t in runs] for m, runs in tables.items()}
    base = {k: np.mean([r[k] for r in summary["naive MF"]]) for k in REPORTED}
    header = f"{'method':<12}{'seeds':>6}" + "".join(f"{k:>28}" for k in REPORTED)
    lines = [header, "-" * len(header)]
    for method, runs in summary.items():
        cells = []
        for k in REPORTED:
            values = np.array([r[k] for r in runs])
            ratio = np.mean(values) / base[k] if base[k] == base[k] and base[k] else float("nan")
            cells.append(f"{np.mean(values):.4f} ± {np.std(values):.4f} (x{ratio:.3f})")
        lines.append(f"{method:<12}{len(runs):>6}" + "".join(f"{c:>28}" for c in cells))
    return "\n".join(lines)


def movielens_temporal(source: Path, target: Path, test_share: float = 0.2) -> Path:
    """A canonical copy of MovieLens-100K whose each user's latest ``test_share`` of ratings
    are ``split = test`` (ties in time broken by item id)."""
    from causalrec_assets.plugin_api import PluginContext
    from causalrec_plugins.ingest.movielens import MovieLensIngest

    data = MovieLensIngest(MovieLensIngest.Config(path=str(source))).load(PluginContext())
    ordered = data.interactions.sort(["user_id", "timestamp", "item_id"])
    ordered = ordered.with_columns(
        pl.int_range(pl.len()).over("user_id").alias("_k"), pl.len().over("user_id").alias("_n")
    )
    interactions = ordered.with_columns(
        pl.when(pl.col("_k") >= (pl.col("_n") * (1 - test_share)).ceil())
        .then(pl.lit("test"))
        .otherwise(pl.lit("train"))
        .alias("split")
    ).drop("_k", "_n")
    target.mkdir(parents=True, exist_ok=True)
    data.users.write_parquet(target / "users.parquet")
    data.items.write_parquet(target / "items.parquet")
    interactions.write_parquet(target / "interactions.parquet")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--coat", default=str(DATA / "coat"))
    parser.add_argument("--movielens", default=str(DATA / "ml-100k"))
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument("--work", default="", help="Folder for storage (default: a temporary one).")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="causalrec-bench-"))
    os.environ.setdefault("DAGSTER_HOME", str(work / "dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DAGSTER_DISABLE_TELEMETRY"):
        os.environ.setdefault(var, "1")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    reports = []
    coat = run_dataset("coat", args.coat, args.seeds, work, log)
    for t in (3.0, 4.0):
        reports.append(
            f"\nCoat, randomized test slice (4,640 ratings), relevant = rating >= {t:g}; AUC pooled over test pairs, "
            f"NDCG@5/recall@5 per user (no_relevant_as_1: a user without a relevant test item scores 1; "
            f"plain ndcg@5: such users skipped); mean ± std over seeds (x ratio to naive MF)\n" + table(coat, t)
        )
    if not args.skip_movielens:
        ml_dir = movielens_temporal(Path(args.movielens), work / "ml100k_temporal")
        movielens = run_dataset("movielens", str(ml_dir), args.seeds, work, log)
        for t in (3.0, 4.0):
            reports.append(
                f"\nMovieLens-100K, temporal split (each user's latest 20% of ratings); NOT a randomized slice: "
                f"these figures measure predicting self-selected future ratings, not debiasing; "
                f"relevant = rating >= {t:g}\n" + table(movielens, t)
            )
    print("\n".join(reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
