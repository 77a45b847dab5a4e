"""The ``Definitions`` object: every stage's assets, the blocking checks, the IO manager, the job."""

from __future__ import annotations

import dagster as dg

from causalrec_assets import assets
from causalrec_assets.checks import CHECKS, validation_report
from causalrec_resources.storage import CausalrecIOManager

ALL_ASSETS = [
    assets.ingest,
    validation_report,
    assets.item_embeddings,
    assets.user_embeddings,
    assets.item_topics,
    assets.causal_variables,
    assets.structure,
    assets.treatment_effects,
    assets.ranking,
    assets.evaluation,
]

causalrec_job = dg.define_asset_job(
    "causalrec", selection=dg.AssetSelection.all(), description="Every stage, ingest to evaluation."
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=CHECKS,
    jobs=[causalrec_job],
    resources={"io_manager": CausalrecIOManager()},
)
