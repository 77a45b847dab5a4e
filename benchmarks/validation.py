"""Validation benchmark: Great Expectations on row batches against one whole-table batch.

    .venv/bin/python benchmarks/validation.py                      # 100,000 users: ~5M interactions
    .venv/bin/python benchmarks/validation.py --users 300000       # ~15M

The simulator draws one world; each validation then runs in its own fresh process (so its
peak RSS is its own) on the same Parquet files: the default ``batch_rows`` (1,000,000) and
``batch_rows`` as large as the table (one pandas frame, as before batching). Printed side by
side: seconds, peak RSS over the loaded tables, the verdicts (which must agree), and the
batched run's figures as ratios of the whole-table run's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TABLES = ("users", "items", "interactions")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def validate_once(data: Path, batch_rows: int, out: Path) -> None:
    """Validate ``interactions`` with ``batch_rows``; write seconds, RSS and verdicts to ``out``."""
    import polars as pl

    from causalrec_assets.plugin_api import PluginContext
    from causalrec_plugins.validate.gx_suites import GreatExpectationsValidate

    tables = {name: pl.read_parquet(data / f"{name}.parquet") for name in TABLES}
    loaded = _peak_rss()
    plugin = GreatExpectationsValidate(GreatExpectationsValidate.Config(batch_rows=batch_rows))
    start = time.perf_counter()
    outcome = plugin.validate("interactions", tables["interactions"], tables, PluginContext())
    seconds = time.perf_counter() - start
    verdicts = [[r.expectation, r.column, r.success, r.unexpected_count] for r in outcome.results]
    peak = _peak_rss()
    record = {"seconds": seconds, "peak_rss": peak, "extra_rss": peak - loaded, "rows": outcome.row_count}
    record["verdicts"] = verdicts
    out.write_text(json.dumps(record))


def run_fresh(data: Path, batch_rows: int, work: Path) -> dict:
    out = work / f"validate_{batch_rows}.json"
    subprocess.run([sys.executable, __file__, "--one", str(data), str(batch_rows), str(out)], check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        validate_once(Path(args.one[0]), int(args.one[1]), Path(args.one[2]))
        return
    from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate
    from causalrec_plugins.validate.gx_batches import BATCH_ROWS

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        world = simulate(SimulatorConfig(n_users=args.users, n_items=args.items))
        for name in TABLES:
            getattr(world, name).write_parquet(work / f"{name}.parquet")
        rows = world.interactions.height
        del world
        print(f"interactions: {rows:,} rows", flush=True)
        batched = run_fresh(work, BATCH_ROWS, work)
        whole = run_fresh(work, max(rows, BATCH_ROWS), work)
    gib = 2**30
    print(f"{'':<30}{'batches of ' + format(BATCH_ROWS, ','):>20}{'one batch':>14}{'ratio':>8}")
    figures = (
        ("seconds", "seconds", 1),
        ("peak RSS of the process GiB", "peak_rss", gib),
        ("  above loading's peak GiB", "extra_rss", gib),
    )
    for label, key, scale in figures:
        a, b = batched[key] / scale, whole[key] / scale
        print(f"{label:<30}{a:>20.2f}{b:>14.2f}{a / b if b else float('nan'):>8.2f}")
    same = batched["verdicts"] == whole["verdicts"]
    print(f"verdicts agree: {same} ({len(whole['verdicts'])} expectations)")
    if not same:
        sys.exit("the batched verdicts differ from the whole table's")


if __name__ == "__main__":
    main()
