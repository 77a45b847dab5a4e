"""Ingest benchmark: the log scanned and streamed into storage, against read whole first.

    .venv/bin/python benchmarks/ingest.py                         # 100,000 users: ~5M interactions
    .venv/bin/python benchmarks/ingest.py --users 300000 --format csv

The simulator draws one world and writes it as the canonical dataset (Parquet or CSV). Each
ingest then runs in its own fresh process (so its peak RSS is its own) through the canonical
plugin, the stage's rules (``normalise``), the log's metadata and the IO manager's writer: once
as the plugin gives it (a lazy scan, streamed into the file) and once collected into memory
first (what the stage did before plugin API 1.5). Printed side by side: seconds, peak RSS above
the imports, whether the two stored logs are equal, and the streamed run's figures as ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TABLES = ("users", "items", "interactions")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def ingest_once(data: Path, lazy: bool, out: Path) -> None:
    """Ingest ``data`` into ``out``.parquet (streamed, or collected first); figures to ``out``."""
    import polars as pl
    from upath import UPath

    from causalrec_assets import metadata as md
    from causalrec_assets.plugin_api import PluginContext
    from causalrec_assets.stages.ingest.assets import normalise
    from causalrec_plugins.ingest.canonical import CanonicalIngest
    from causalrec_resources.storage import sink_table

    imported = _peak_rss()
    start = time.perf_counter()
    dataset = CanonicalIngest(CanonicalIngest.Config(path=str(data))).load(PluginContext())
    if not lazy:
        dataset.interactions = dataset.interactions.collect()
    _, _, log = normalise(dataset, logging.getLogger("benchmark"))
    rows = md.interaction_metadata(log)["dagster/row_count"]
    stored = out.with_suffix(".parquet")
    if isinstance(log, pl.LazyFrame):
        sink_table(log, UPath(stored), "interactions")
    else:
        log.write_parquet(stored)
    seconds = time.perf_counter() - start
    out.write_text(json.dumps({"seconds": seconds, "extra_rss": _peak_rss() - imported, "rows": rows}))


def run_fresh(data: Path, lazy: bool, work: Path) -> dict:
    out = work / ("streamed.json" if lazy else "collected.json")
    subprocess.run([sys.executable, __file__, "--one", str(data), str(int(lazy)), str(out)], check=True)
    return json.loads(out.read_text()) | {"stored": str(out.with_suffix(".parquet"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        ingest_once(Path(args.one[0]), args.one[1] == "1", Path(args.one[2]))
        return
    import polars as pl

    from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate

    with tempfile.TemporaryDirectory() as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        data.mkdir()
        world = simulate(SimulatorConfig(n_users=args.users, n_items=args.items))
        for name in TABLES:
            frame, path = getattr(world, name), data / f"{name}.{args.format}"
            frame.write_csv(path) if args.format == "csv" else frame.write_parquet(path)
        print(f"interactions: {world.interactions.height:,} rows ({args.format})", flush=True)
        del world
        streamed = run_fresh(data, True, work)
        collected = run_fresh(data, False, work)
        same = pl.read_parquet(streamed["stored"]).equals(pl.read_parquet(collected["stored"]))
    gib = 2**30
    print(f"{'':<30}{'streamed':>12}{'collected':>12}{'ratio':>8}")
    for label, key, scale in (("seconds", "seconds", 1), ("peak RSS above imports GiB", "extra_rss", gib)):
        a, b = streamed[key] / scale, collected[key] / scale
        print(f"{label:<30}{a:>12.2f}{b:>12.2f}{a / b if b else float('nan'):>8.2f}")
    print(f"stored logs equal: {same} ({streamed['rows']:,} rows)")
    if not same:
        sys.exit("the streamed log differs from the collected one")


if __name__ == "__main__":
    main()
