"""The ingest stage: the dataset read into the canonical users, items and interactions tables.

With ``CAUSALREC_PARTITIONS=daily`` (see ``causalrec_assets.partitions``) ``interactions`` is
its own asset, partitioned by day, so a refresh reads and stores only the new days.
"""

import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from causalrec_assets import metadata as md
from causalrec_assets.contracts import (
    Log,
    cap_texts,
    check_reserved_columns,
    collected,
    harmonise_id_types,
    one_row_per_pair,
    parse_timestamps,
)
from causalrec_assets.metadata import OWNERS
from causalrec_assets.partitions import interaction_days, rows_of_day
from causalrec_assets.stage_config import check_run_config, plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.ingest.protocol import Dataset, IngestPlugin
from causalrec_resources.settings import current_settings

IngestStageConfig = stage_config_class("ingest")

INTERACTIONS_DESCRIPTION = "The log: user_id, item_id, exposure, outcome, timestamp, split."
INTERACTIONS_OUT = dg.AssetOut(
    description=INTERACTIONS_DESCRIPTION, group_name="ingest", owners=OWNERS, kinds={"polars"}
)
TABLE_OUTS = {
    "users": dg.AssetOut(
        description="One row per user: user_id and attributes.", group_name="ingest", owners=OWNERS, kinds={"polars"}
    ),
    "items": dg.AssetOut(
        description="One row per item: item_id, text, attributes.", group_name="ingest", owners=OWNERS, kinds={"polars"}
    ),
    "ground_truth": dg.AssetOut(
        description="Simulated worlds only: the true DAG, confounders and ATE.",
        group_name="ingest",
        owners=OWNERS,
        is_required=False,
        kinds={"polars"},
    ),
    "true_uplift": dg.AssetOut(
        description="Simulated worlds only: the true uplift of every (user, item) pair.",
        group_name="ingest",
        owners=OWNERS,
        is_required=False,
        kinds={"polars"},
    ),
}


def load_dataset(context, config) -> tuple[Dataset, dict]:
    """Run the configured ingest plugin; the dataset with harmonised id types, and metadata."""
    check_run_config(context.job_def, context.run_config)
    plugin = plugin_from_config(IngestPlugin, config, context.log)
    start = time.perf_counter()
    data = plugin.load(plugin_context(context))
    data.users, data.items, data.interactions = normalise(data, context.log)
    source = {
        **md.plugin_metadata("ingest", config.plugin),
        "plugin_class": type(plugin).__name__,
        "dataset": data.name,
        "seconds": md.rounded(time.perf_counter() - start),
    }
    return data, source


def normalise(data: Dataset, log: Log) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | pl.LazyFrame]:
    """Every plugin's tables under the contract's ingest rules (README, "Data contract"): reserved
    names refused, ids of one type, ISO timestamps parsed, texts capped, one row per pair. A lazy
    log stays lazy (the IO manager streams it into storage)."""
    check_reserved_columns(data.users, data.items)
    users, items, interactions = harmonise_id_types(data.users, data.items, data.interactions)
    items = cap_texts(items, current_settings().max_text_chars, log)
    interactions = one_row_per_pair(parse_timestamps(interactions, log), log)
    return users, items, interactions


def table_outputs(data: Dataset, source: dict) -> Iterator[dg.Output]:
    yield dg.Output(data.users, "users", metadata={**source, **md.table_metadata(data.users)})
    yield dg.Output(data.items, "items", metadata={**source, **md.table_metadata(data.items)})
    if data.truth is not None:
        yield dg.Output(data.truth.as_json(), "ground_truth", metadata={"true_ate": md.rounded(data.truth.ate)})
        yield dg.Output(data.truth.uplift, "true_uplift", metadata=md.table_metadata(data.truth.uplift, preview=False))


def dataset_outputs(data: Dataset, source: dict) -> Iterator[dg.Output]:
    """Every table of an unpartitioned dataset, the log included (a lazy log is written streaming)."""
    yield from table_outputs(data, source)
    log = data.interactions
    yield dg.Output(log, "interactions", metadata={**source, **md.interaction_metadata(log)})


def build_ingest_assets(daily: bool) -> list[dg.AssetsDefinition]:
    """One multi-asset for every table, or (daily) the tables plus a partitioned log."""
    if not daily:

        @dg.multi_asset(outs={**TABLE_OUTS, "interactions": INTERACTIONS_OUT}, can_subset=False, name="ingest")
        def ingest(context: dg.AssetExecutionContext, config: IngestStageConfig):  # type: ignore[valid-type]
            """Read the dataset chosen by CAUSALREC_DATA (or the run config) into the canonical tables."""
            yield from dataset_outputs(*load_dataset(context, config))

        return [ingest]

    @dg.multi_asset(outs=TABLE_OUTS, can_subset=False, name="ingest")
    def ingest_tables(context: dg.AssetExecutionContext, config: IngestStageConfig):  # type: ignore[valid-type]
        """Read the users and items of the dataset chosen by CAUSALREC_DATA (or the run config)."""
        data, source = load_dataset(context, config)
        yield from table_outputs(data, source)

    @dg.asset(
        name="interactions",
        partitions_def=interaction_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=INTERACTIONS_DESCRIPTION + " Partitioned by the day of the timestamp.",
        group_name="ingest",
        owners=OWNERS,
        kinds={"polars"},
    )
    def interactions(context: dg.AssetExecutionContext, config: IngestStageConfig):  # type: ignore[valid-type]
        """Days of the log (the run's partition keys; a backfill reads the dataset once)."""
        data, source = load_dataset(context, config)
        log = collected(data.interactions)
        days = {day: rows_of_day(log, day) for day in context.partition_keys}
        rows = pl.concat(list(days.values()))
        metadata = {**source, "days": ", ".join(days), **md.interaction_metadata(rows)}
        return dg.Output(days if len(days) > 1 else rows, metadata=metadata)

    return [ingest_tables, interactions]


TABLES = ("users", "items", "interactions")


def as_polars(table: object, name: str) -> pl.DataFrame:
    """A table another asset produced (polars, a lazy frame, pandas or Arrow) as a polars DataFrame."""
    if isinstance(table, pl.LazyFrame | pl.DataFrame):
        return collected(table)
    module = type(table).__module__.split(".")[0]
    if module == "pandas":
        return pl.from_pandas(table)  # type: ignore[arg-type]
    if module == "pyarrow":
        return pl.from_arrow(table)  # type: ignore[arg-type, return-value]
    raise TypeError(
        f"upstream asset for {name!r} gave a {type(table).__name__}: expected a polars, pandas or Arrow table"
    )


def build_upstream_ingest_assets(upstream: dict[str, dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """Ingest from assets of the user's own project (``{"users": key, "items": key, "interactions": key}``),
    loaded through their IO managers and put under the same ingest rules as any plugin's tables."""
    missing = sorted(set(TABLES) - set(upstream))
    if missing or set(upstream) - set(TABLES):
        raise ValueError(f"dataset_assets must name exactly {', '.join(TABLES)} (missing: {', '.join(missing)})")
    outs = {"users": TABLE_OUTS["users"], "items": TABLE_OUTS["items"], "interactions": INTERACTIONS_OUT}

    @dg.multi_asset(
        outs=outs,
        ins={f"{t}_source": dg.AssetIn(key=upstream[t]) for t in TABLES},
        can_subset=False,
        name="ingest",
    )
    def ingest(context: dg.AssetExecutionContext, users_source, items_source, interactions_source):
        """The project's own users, items and interactions assets as the canonical tables."""
        start = time.perf_counter()
        tables = [
            as_polars(t, n) for t, n in zip((users_source, items_source, interactions_source), TABLES, strict=True)
        ]
        data = Dataset(*tables, name="upstream assets " + ", ".join(upstream[t].to_user_string() for t in TABLES))
        data.users, data.items, data.interactions = normalise(data, context.log)
        source = {"plugin": "upstream assets", "dataset": data.name, "seconds": md.rounded(time.perf_counter() - start)}
        yield from dataset_outputs(data, source)

    return [ingest]
