"""The ``Definitions`` object: every stage's assets, the blocking checks, the IO manager, the job."""

from __future__ import annotations

import dagster as dg

from causalrec_assets.stages import effects, embed, ingest, ranking, structure, validate
from causalrec_resources.storage import CausalrecIOManager
from causalrec_resources.variables import CausalVariablesResource

ALL_ASSETS = [
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
]

causalrec_job = dg.define_asset_job(
    "causalrec", selection=dg.AssetSelection.all(), description="Every stage, ingest to evaluation."
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=validate.CHECKS,
    jobs=[causalrec_job],
    resources={"io_manager": CausalrecIOManager(), "variable_settings": CausalVariablesResource()},
)
