"""Structure learners against pgmpy's bundled benchmark networks, side by side in one run.

For each network, sample size and seed, rows are drawn from the network
(``pgmpy.utils.get_example_model``: read from the wheel, no download) and every learner runs
on the same rows, one after the other, each in a forked process with a time budget: the
causalrec structure plugins with their default config and no expert knowledge, and pgmpy's
``HillClimbSearch`` and ``PC`` with their defaults. Printed per network and size, means over
seeds: CPDAG-SHD (equivalence class against equivalence class), SHD, skeleton F1,
directed-edge F1, seconds, and seconds as a ratio to pgmpy's hill climbing in the same run
(timings on shared cores are noisy; ratios from one run are what to compare).

    .venv/bin/python benchmarks/structure.py                       # 5,000 rows, 3 seeds, all networks
    .venv/bin/python benchmarks/structure.py --networks asia,alarm --rows 1000,5000,20000 --seeds 0
    .venv/bin/python benchmarks/structure.py --learners hill_climb,pgmpy_hc --budget 60 --csv out.csv

A run past its budget is stopped and reported as a timeout (pgmpy's PC on insurance at 1,000
rows; the ``ges`` plugin on alarm). The full default grid (five networks, 5,000 rows, three
seeds, six learners, 120 s budget) takes about 25 minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import sys
import time
import warnings
from collections import defaultdict
from typing import Any

NETWORKS = ("asia", "sachs", "child", "insurance", "alarm")
PGMPY = ("pgmpy_hc", "pgmpy_pc")
FIGURES = ("cpdag_shd", "shd", "skeleton_f1", "directed_f1", "seconds")


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pgmpy").setLevel(logging.ERROR)


def sample(network: str, rows: int, seed: int):
    from pgmpy.utils import get_example_model

    model = get_example_model(network)
    frame = model.simulate(n_samples=rows, seed=seed, show_progress=False)
    return list(model.nodes()), [tuple(e) for e in model.edges()], frame


def run_learner(name: str, frame) -> tuple[list, dict | None]:
    """(DAG edges, the learner's own equivalence class or None)."""
    import polars as pl

    from causalrec_assets.plugin_api import PluginContext
    from causalrec_assets.registry import get_registry
    from causalrec_assets.stages.structure.protocol import Knowledge
    from causalrec_plugins.structure.metrics import pdag_marks
    from causalrec_plugins.structure.orient import pdag_edges, to_dag

    if name == "pgmpy_hc":
        from pgmpy.causal_discovery import HillClimbSearch

        graph = HillClimbSearch(show_progress=False, return_type="dag").fit(frame).causal_graph_
        return [tuple(e) for e in graph.edges()], None
    if name == "pgmpy_pc":
        from pgmpy.causal_discovery import PC

        graph = PC(show_progress=False).fit(frame).causal_graph_
        directed, undirected = pdag_edges(graph)
        return to_dag(list(frame.columns), directed, undirected), pdag_marks(directed, undirected)
    plugin = get_registry().get("structure", name)()
    data = pl.from_pandas(frame.astype(str))
    return plugin.learn(data, Knowledge(), PluginContext()), None


def _child(conn, name: str, frame) -> None:
    _quiet()
    try:
        start = time.perf_counter()
        edges, marks = run_learner(name, frame)
        conn.send(("ok", edges, marks, time.perf_counter() - start))
    except Exception as exc:  # reported in the table, the other learners go on
        conn.send(("error", f"{type(exc).__name__}: {exc}", None, 0.0))
    conn.close()


def timed(name: str, frame, budget: float) -> tuple[str, Any, Any, float]:
    """Run one learner in a forked process; past ``budget`` seconds it is stopped."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, name, frame))
    proc.start()
    child.close()
    if parent.poll(budget):
        result = parent.recv()
        proc.join()
        return result
    proc.kill()
    proc.join()
    return ("timeout", None, None, budget)


def default_learner() -> str:
    from causalrec_assets.stage_config import DEFAULT_PLUGINS

    return DEFAULT_PLUGINS["structure"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated (default: all five)")
    parser.add_argument("--rows", default="5000", help="comma-separated sample sizes (e.g. 1000,5000,20000)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated sampling seeds")
    parser.add_argument("--learners", default="", help="comma-separated: causalrec plugin names, pgmpy_hc, pgmpy_pc")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds one learner may take on one sample")
    parser.add_argument("--csv", default="", help="also write every run to this CSV file")
    args = parser.parse_args(argv)
    _quiet()
    from causalrec_assets.registry import get_registry
    from causalrec_plugins.structure.metrics import compare

    default = default_learner()
    ours = sorted(get_registry().available("structure"))
    learners = [x for x in args.learners.split(",") if x] or [default] + [x for x in ours if x != default] + list(PGMPY)
    unknown = [x for x in learners if x not in ours and x not in PGMPY]
    if unknown:
        parser.error(f"unknown learner(s) {unknown}; installed: {ours + list(PGMPY)}")
    unknown = [n for n in args.networks.split(",") if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown network(s) {unknown}; choose from {NETWORKS}")
    rows_list = [int(r) for r in args.rows.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"cpus: {os.cpu_count()}  default causalrec learner: {default}  budget: {args.budget:.0f} s per run\n")
    records: list[dict[str, Any]] = []
    for network in args.networks.split(","):
        for rows in rows_list:
            for seed in seeds:
                names, truth, frame = sample(network, rows, seed)
                for learner in learners:
                    status, edges, marks, seconds = timed(learner, frame, args.budget)
                    record: dict[str, Any] = {"network": network, "rows": rows, "seed": seed, "learner": learner}
                    record.update({"status": status if status != "ok" else "ok", "seconds": seconds})
                    if status == "ok":
                        record.update(compare(names, truth, edges, marks))
                    else:
                        record["detail"] = edges if status == "error" else f"over {args.budget:.0f} s"
                    records.append(record)
                    print(_line(record), flush=True)
            print(_summary(records, network, rows, learners, default), flush=True)
    if args.csv:
        keys = sorted({k for r in records for k in r})
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(records)
    return 0


def _line(r: dict[str, Any]) -> str:
    head = f"  {r['network']:<9} {r['rows']:>6} seed {r['seed']}  {r['learner']:<11}"
    if r["status"] != "ok":
        return f"{head} {r['status']}: {r.get('detail', '')}"
    return (
        f"{head} cpdag_shd {r['cpdag_shd']:>3}  shd {r['shd']:>3}  skel_f1 {r['skeleton_f1']:.2f}  "
        f"dir_f1 {r['directed_f1']:.2f}  {r['seconds']:6.2f} s"
    )


def _summary(records: list[dict], network: str, rows: int, learners: list[str], default: str) -> str:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["network"] == network and r["rows"] == rows:
            by[r["learner"]].append(r)
    means: dict[str, dict[str, float]] = {}
    for learner in learners:
        ok = [r for r in by[learner] if r["status"] == "ok"]
        if ok and len(ok) == len(by[learner]):
            means[learner] = {f: sum(r[f] for r in ok) / len(ok) for f in FIGURES}
    hc_seconds = means.get("pgmpy_hc", {}).get("seconds")
    lines = [f"\n{network}, {rows} rows, mean of {len(by[learners[0]])} seed(s):"]
    header = f"{'cpdag_shd':>9} {'shd':>6} {'skel_f1':>8} {'dir_f1':>7} {'seconds':>8} {'÷ pgmpy_hc':>11}"
    lines.append(f"  {'learner':<11} {header}")
    for learner in learners:
        if learner not in means:
            failed = [r["status"] for r in by[learner] if r["status"] != "ok"]
            lines.append(f"  {learner:<11} {', '.join(sorted(set(failed))) or 'not run'}")
            continue
        m = means[learner]
        ratio = f"{m['seconds'] / hc_seconds:11.2f}" if hc_seconds else f"{'':>11}"
        lines.append(
            f"  {learner:<11} {m['cpdag_shd']:9.2f} {m['shd']:6.1f} {m['skeleton_f1']:8.2f} "
            f"{m['directed_f1']:7.2f} {m['seconds']:8.2f} {ratio}"
        )
    refs = [means[x]["cpdag_shd"] for x in PGMPY if x in means]
    if default in means and refs:
        ok_shd = means[default]["cpdag_shd"] <= min(refs)
        ok_time = hc_seconds is None or means[default]["seconds"] <= hc_seconds
        lines.append(
            f"  default ({default}) CPDAG-SHD {means[default]['cpdag_shd']:.2f} vs best pgmpy default {min(refs):.2f}: "
            f"{'ok' if ok_shd else 'WORSE'}; time {'within' if ok_time else 'OVER'} pgmpy_hc's"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
