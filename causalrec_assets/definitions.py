"""The ``Definitions`` object: every stage's assets, the blocking checks, the IO manager, the
job, its schedule and sensor, and the executor chosen by ``CAUSALREC_EXECUTOR``."""

from __future__ import annotations

import dagster as dg

from causalrec_assets.automation import dataset_sensor, refresh_schedule, with_downstream_automation
from causalrec_assets.stages import effects, embed, ingest, ranking, structure, validate
from causalrec_resources.executors import executor_from_env
from causalrec_resources.storage import CausalrecIOManager
from causalrec_resources.variables import CausalVariablesResource

INGESTED = {"users", "items", "interactions", "ground_truth", "true_uplift"}

ALL_ASSETS = with_downstream_automation(
    [
        ingest.ingest,
        validate.validation_report,
        embed.item_embeddings,
        embed.user_embeddings,
        structure.item_topics,
        structure.causal_variables,
        structure.structure,
        effects.treatment_effects,
        ranking.ranking,
        ranking.evaluation,
    ],
    sources=INGESTED,
)

causalrec_job = dg.define_asset_job(
    "causalrec", selection=dg.AssetSelection.all(), description="Every stage, ingest to evaluation."
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=validate.CHECKS,
    jobs=[causalrec_job],
    schedules=[refresh_schedule(causalrec_job)],
    sensors=[dataset_sensor(causalrec_job)],
    executor=executor_from_env(),
    resources={"io_manager": CausalrecIOManager(), "variable_settings": CausalVariablesResource()},
)
