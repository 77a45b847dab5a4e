"""The ingest stage: the dataset read into the canonical users, items and interactions tables."""

import time

import dagster as dg

from causalrec_assets import metadata as md
from causalrec_assets.contracts import harmonise_id_types
from causalrec_assets.metadata import OWNERS
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class

IngestStageConfig = stage_config_class("ingest")


@dg.multi_asset(
    outs={
        "users": dg.AssetOut(
            description="One row per user: user_id and attributes.", group_name="ingest", owners=OWNERS
        ),
        "items": dg.AssetOut(
            description="One row per item: item_id, text, attributes.", group_name="ingest", owners=OWNERS
        ),
        "interactions": dg.AssetOut(
            description="The log: user_id, item_id, exposure, outcome, timestamp, split.",
            group_name="ingest",
            owners=OWNERS,
        ),
        "ground_truth": dg.AssetOut(
            description="Simulated worlds only: the true DAG, confounders and ATE.",
            group_name="ingest",
            owners=OWNERS,
            is_required=False,
        ),
        "true_uplift": dg.AssetOut(
            description="Simulated worlds only: the true uplift of every (user, item) pair.",
            group_name="ingest",
            owners=OWNERS,
            is_required=False,
        ),
    },
    can_subset=False,
    name="ingest",
    compute_kind="polars",
)
def ingest(context: dg.AssetExecutionContext, config: IngestStageConfig):  # type: ignore[valid-type]
    """Read the dataset chosen by CAUSALREC_DATA (or the run config) into the canonical tables."""
    plugin = plugin_from_config("ingest", config, context.log)
    start = time.perf_counter()
    data = plugin.load(plugin_context(context))
    users, items, interactions = harmonise_id_types(data.users, data.items, data.interactions)
    seconds = round(time.perf_counter() - start, 3)
    source = {"plugin": type(plugin).__name__, "dataset": data.name, "seconds": seconds}
    yield dg.Output(users, "users", metadata={**source, **md.table_metadata(users)})
    yield dg.Output(items, "items", metadata={**source, **md.table_metadata(items)})
    yield dg.Output(interactions, "interactions", metadata={**source, **md.interaction_metadata(interactions)})
    if data.truth is not None:
        yield dg.Output(data.truth.as_json(), "ground_truth", metadata={"true_ate": data.truth.ate})
        yield dg.Output(data.truth.uplift, "true_uplift", metadata=md.table_metadata(data.truth.uplift, preview=False))
