"""The ``Definitions`` object: every stage's assets, the blocking checks, the IO manager, the
job, its schedule and sensor, and the executor chosen by ``CAUSALREC_EXECUTOR``."""

from __future__ import annotations

import dagster as dg

from causalrec_assets.automation import dataset_sensor, refresh_schedule, with_downstream_automation
from causalrec_assets.partitions import partitioned
from causalrec_assets.stages.effects import assets as effects
from causalrec_assets.stages.embed import assets as embed
from causalrec_assets.stages.ingest import assets as ingest
from causalrec_assets.stages.ranking import assets as ranking
from causalrec_assets.stages.structure import assets as structure
from causalrec_assets.stages.validate import assets as validate
from causalrec_resources.defaults import default_resources
from causalrec_resources.executors import executor_from_env

INGESTED = {"users", "items", "interactions", "ground_truth", "true_uplift"}


def build_definitions() -> dg.Definitions:
    """Everything, built from the environment (``CAUSALREC_PARTITIONS``, ``CAUSALREC_EXECUTOR``)."""
    daily = partitioned()
    assets = with_downstream_automation(
        [
            *ingest.build_ingest_assets(daily),
            validate.validation_report,
            embed.item_embeddings,
            embed.user_embeddings,
            structure.item_topics,
            structure.variables,
            structure.structure,
            effects.treatment_effects,
            ranking.ranking,
            ranking.evaluation,
        ],
        sources=INGESTED,
    )
    job = dg.define_asset_job(
        "causalrec", selection=dg.AssetSelection.all(), description="Every stage, ingest to evaluation."
    )
    # Daily partitions arrive through the sensor; the schedule refreshes everything else.
    refresh = dg.define_asset_job(
        "causalrec_refresh",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets("interactions")
        if daily
        else dg.AssetSelection.all(),
        description="What the schedule refreshes (with daily partitions: all but the interactions log).",
    )
    downstream = [k for a in assets for k in a.keys if k.to_user_string() not in INGESTED]
    return dg.Definitions(
        assets=assets,
        asset_checks=validate.CHECKS,
        jobs=[job, refresh, embed.embed_shards_job],
        schedules=[refresh_schedule(refresh)],
        sensors=[dataset_sensor(job, downstream=downstream)],
        executor=executor_from_env(),
        resources=default_resources(),
    )


defs = build_definitions()
