"""Scale benchmark: the whole pipeline on three simulated worlds of growing size, per stage,
in process and on a Dask LocalCluster.

    .venv/bin/python benchmarks/scale.py                        # 5000x1000, 10000x2000, 20000x4000
    .venv/bin/python benchmarks/scale.py --scenario taste       # uplift through taste: generated candidates
    .venv/bin/python benchmarks/scale.py --users 25000 --items 2500 --factor 2   # up to 100,000 x 10,000
    .venv/bin/python benchmarks/scale.py --no-dask              # the in-process series only

Each size doubles (``--factor``) the users and the items, so logged pairs grow by the factor
and users x items by its square. Every size runs in its own fresh process (in-process
executor, its own Dagster instance and storage), so its peak RSS is its own. Two series:

- **in process** (``CAUSALREC_COMPUTE=local``, ``--shards`` user shards run one after another);
- **weak scaling on Dask** (``CAUSALREC_COMPUTE=dask``: a LocalCluster of ``--workers``
  workers with ``--worker-memory`` each), the user shards doubled with the pairs
  (``--shards``, then x factor per size), so each shard holds as many users at every size.

Reported side by side: each step's seconds (from the run's STEP_START/STEP_SUCCESS events) at
each size, the growth exponent of each step against logged pairs (1: linear; 2: grows like
users x items), the whole run's wall time, the peak RSS of each size's process and, on Dask,
the largest peak RSS of a worker and its ratio to the first size's (weak scaling holds where it
stays near 1). The exponent is the slope of log(seconds) on log(logged pairs); steps under
0.5 s are too noisy to read and say so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOISE_FLOOR_S = 0.5


def run_one(n_users: int, n_items: int, scenario: str, out: Path) -> None:
    """Materialize every asset on one simulated world; write step seconds to ``out``."""
    import dagster as dg

    from causalrec_assets.definitions import defs
    from causalrec_resources.compute import worker_peak_rss

    config = {"n_users": n_users, "n_items": n_items, "scenario": scenario}
    run_config = {"ops": {"ingest": {"config": {"plugin": "simulator", "simulator": config}}}}
    job = defs.resolve_job_def("causalrec")
    with dg.DagsterInstance.get() as instance:
        start = time.perf_counter()
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=True)
        wall = time.perf_counter() - start
        steps: dict[str, float] = {}
        begun: dict[str, float] = {}
        for record in instance.all_logs(result.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                begun[event.step_key] = record.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and event.step_key in begun:
                steps[event.step_key] = record.timestamp - begun[event.step_key]
        interactions = result.output_for_node("ingest", "interactions")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers = worker_peak_rss()
    record = {"steps": steps, "wall": wall, "pairs": interactions.height, "peak_rss": peak, "workers": workers}
    out.write_text(json.dumps(record))


def measure(n_users: int, n_items: int, scenario: str, compute: dict[str, str]) -> dict:
    """One size, in a fresh process with its own Dagster home and storage; ``compute``: the
    ``CAUSALREC_COMPUTE`` / ``CAUSALREC_SHARDS`` / ``CAUSALREC_DASK_*`` settings."""
    with tempfile.TemporaryDirectory(prefix="causalrec-scale-") as tmp:
        home = Path(tmp)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "CAUSALREC_STORAGE": str(home / "storage"),
            "CAUSALREC_EXECUTOR": "in_process",
            **compute,
        }
        out, log = home / "result.json", home / "run.log"
        cmd = [sys.executable, __file__, "--one", str(n_users), str(n_items), scenario, str(out)]
        with open(log, "w") as sink:
            done = subprocess.run(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        if done.returncode:
            raise RuntimeError(f"{n_users}x{n_items} failed:\n" + log.read_text()[-4000:])
        return json.loads(out.read_text())


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-6)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def report(sizes: list[tuple[int, int]], results: list[dict], shards: list[int] | None = None) -> str:
    pairs = [r["pairs"] for r in results]
    head = [f"{u}x{i} ({p:,} pairs)" for (u, i), p in zip(sizes, pairs, strict=True)]
    if shards:
        head = [f"{h[:-1]}, {s} shards)" for h, s in zip(head, shards, strict=True)]
    lines = [f"{'step':44s}" + "".join(f"{h:>26s}" for h in head) + f"{'exponent vs pairs':>20s}"]
    steps = sorted({s for r in results for s in r["steps"]}, key=lambda s: -results[-1]["steps"].get(s, 0.0))
    for step in steps:
        secs = [r["steps"].get(step, float("nan")) for r in results]
        readable = all(not math.isnan(s) for s in secs) and max(secs) >= NOISE_FLOOR_S
        slope = f"{exponent(pairs, secs):.2f}" if readable else "(too short)"
        lines.append(f"{step:44s}" + "".join(f"{s:26.2f}" for s in secs) + f"{slope:>20s}")
    walls = [r["wall"] for r in results]
    lines.append(f"{'whole run (wall)':44s}" + "".join(f"{w:26.1f}" for w in walls) + f"{exponent(pairs, walls):20.2f}")
    rss = [r["peak_rss"] / 2**30 for r in results]
    lines.append(f"{'peak RSS (GiB)':44s}" + "".join(f"{m:26.2f}" for m in rss) + f"{exponent(pairs, rss):20.2f}")
    if all(r.get("workers") for r in results):
        worst = [max(r["workers"].values()) / 2**30 for r in results]
        lines.append(
            f"{'largest Dask worker peak RSS (GiB)':44s}"
            + "".join(f"{m:26.2f}" for m in worst)
            + f"{exponent(pairs, worst):20.2f}"
        )
        ratios = [m / worst[0] for m in worst]
        lines.append(f"{'  ... as a multiple of the first size':44s}" + "".join(f"{m:26.2f}" for m in ratios))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--scenario", default="default", help="the simulator's world (default, taste, ...)")
    parser.add_argument("--shards", type=int, default=2, help="user shards at the first size")
    parser.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers")
    parser.add_argument("--worker-memory", default="4GB", help="memory limit of each Dask worker")
    parser.add_argument("--no-dask", action="store_true", help="the in-process series only")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(int(args.one[0]), int(args.one[1]), args.one[2], Path(args.one[3]))
        return
    sizes = [(round(args.users * args.factor**k), round(args.items * args.factor**k)) for k in range(3)]
    shards = [round(args.shards * args.factor**k) for k in range(3)]
    series = {"in process": [{"CAUSALREC_COMPUTE": "local", "CAUSALREC_SHARDS": str(args.shards)}] * 3}
    if not args.no_dask:
        dask = {"CAUSALREC_COMPUTE": "dask", "CAUSALREC_DASK_WORKERS": str(args.workers)}
        dask["CAUSALREC_DASK_MEMORY"] = args.worker_memory
        series["Dask LocalCluster, shards doubled with the pairs"] = [
            {**dask, "CAUSALREC_SHARDS": str(s)} for s in shards
        ]
    for name, settings in series.items():
        results = []
        for (users, items), compute in zip(sizes, settings, strict=True):
            print(f"{name}: running {users} users x {items} items ...", file=sys.stderr, flush=True)
            results.append(measure(users, items, args.scenario, compute))
        print(f"\n## {name}\n")
        print(report(sizes, results, shards if name != "in process" else None))


if __name__ == "__main__":
    main()
