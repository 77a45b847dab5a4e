"""The root code location's ``Definitions``: one pipeline built from the environment
(``CAUSALREC_DATA``, ``CAUSALREC_STORAGE``, ``CAUSALREC_PARTITIONS``, ``CAUSALREC_EXECUTOR``…),
plus the sharded embedding job. A Dagster project that wants several pipelines declares
``CausalRecPipeline`` components instead (``causalrec_assets.component``)."""

from __future__ import annotations

import dagster as dg

from causalrec_assets.pipeline import INGESTED, OPTIONAL, PipelineSpec, build_pipeline_definitions
from causalrec_assets.stages.embed.assets import embed_shards_job
from causalrec_resources.executors import executor_from_env
from causalrec_resources.settings import current_settings

__all__ = ["INGESTED", "OPTIONAL", "build_definitions", "defs"]


def build_definitions() -> dg.Definitions:
    """Everything, built from the environment (``CAUSALREC_PARTITIONS``, ``CAUSALREC_EXECUTOR``)."""
    extras = dg.Definitions(
        jobs=[embed_shards_job],
        executor=executor_from_env(),
        resources={"settings": current_settings()},
    )
    return dg.Definitions.merge(build_pipeline_definitions(PipelineSpec()), extras)


defs = build_definitions()
