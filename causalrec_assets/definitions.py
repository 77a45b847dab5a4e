"""The ``Definitions`` object: every stage's assets, the blocking checks, the publishing step,
the IO manager, the jobs, their schedule and sensors, and the executor chosen by
``CAUSALREC_EXECUTOR``."""

from __future__ import annotations

import dagster as dg

from causalrec_assets.automation import dataset_sensor, refresh_schedule, with_downstream_automation
from causalrec_assets.partitions import partitioned
from causalrec_assets.publish import build_publish_asset, publish_sensor
from causalrec_assets.stages.effects import assets as effects
from causalrec_assets.stages.embed import assets as embed
from causalrec_assets.stages.ingest import assets as ingest
from causalrec_assets.stages.ranking import assets as ranking
from causalrec_assets.stages.structure import assets as structure
from causalrec_assets.stages.validate import assets as validate
from causalrec_resources.defaults import default_resources
from causalrec_resources.executors import executor_from_env
from causalrec_resources.settings import current_settings
from causalrec_resources.storage import STORAGE_TAG

INGESTED = {"users", "items", "interactions", "ground_truth", "true_uplift"}
OPTIONAL = {"ground_truth", "true_uplift"}  # only simulated worlds have them: publishing must not wait on them


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
    stored = [k for a in assets for k in a.keys if k.to_user_string() not in OPTIONAL]
    assets.append(build_publish_asset(stored))
    # The run queue runs one tagged run per storage at a time (README, "One run at a time").
    tags = {STORAGE_TAG: str(current_settings().storage_dir)}
    job = dg.define_asset_job(
        "causalrec", selection=dg.AssetSelection.all(), description="Every stage, ingest to evaluation.", tags=tags
    )
    # Daily partitions arrive through the sensor; the schedule refreshes everything else.
    refresh = dg.define_asset_job(
        "causalrec_refresh",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets("interactions")
        if daily
        else dg.AssetSelection.all(),
        description="What the schedule refreshes (with daily partitions: all but the interactions log).",
        tags=tags,
    )
    downstream = [k for a in assets for k in a.keys if k.to_user_string() not in INGESTED]
    return dg.Definitions(
        assets=assets,
        asset_checks=validate.CHECKS,
        jobs=[job, refresh, embed.embed_shards_job],
        schedules=[refresh_schedule(refresh)],
        sensors=[dataset_sensor(job, downstream=downstream), publish_sensor],
        executor=executor_from_env(),
        resources=default_resources(),
    )


defs = build_definitions()
