"""``CausalRecPipeline``: causalrec as a Dagster Component, declared in a project's ``defs.yaml``.

.. code-block:: yaml

    type: causalrec_assets.CausalRecPipeline
    attributes:
      key_prefix: shop                  # every asset, check, job and sensor under shop/…
      dataset: /data/shop               # a canonical directory, a built-in name ("coat"), "" = simulator
      # dataset_assets: {users: raw/users, items: raw/items, interactions: raw/events}  # or the project's assets
      stages:                           # per stage: the default plugin and its parameters
        ranking: {plugin: causal, params: {k: 20}}
      schedule: "0 4 * * *"             # the refresh cron; null: no schedule
      partitions: daily                 # interactions by day ("" : one table)

Each instance has its own storage (``storage``, default ``$DAGSTER_HOME/causalrec_<prefix>``),
its own write-audit-publish lease and its own jobs (``<prefix>_causalrec``), so several live
in one project without clashing. Everything not set comes from the ``CAUSALREC_*`` environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from causalrec_assets.pipeline import PipelineSpec, StageChoice, build_pipeline_definitions
from causalrec_assets.stage_config import DEFAULT_PLUGINS
from causalrec_resources.executors import executor_for
from causalrec_resources.settings import EXECUTORS, current_settings


class StagePlugin(dg.Resolvable, dg.Model):
    """One stage's plugin (an installed entry point's name) and its parameters."""

    plugin: str = Field(description="The plugin's name, as `causalrec plugins` lists it.")
    params: dict[str, Any] = Field(default_factory=dict, description="The plugin's own parameters.")


class CausalRecPipeline(dg.Component, dg.Resolvable, dg.Model):
    """A causalrec pipeline — ingest, validate, embed, structure, effects, ranking — as assets
    under a key prefix, with its own storage, jobs, schedule and sensors."""

    key_prefix: str | list[str] = Field(description="Asset key prefix of this pipeline, e.g. `shop` or `[team, shop]`.")
    dataset: str = Field(
        default="", description="A canonical dataset directory or a built-in name (coat, ml-100k…); '': the simulator."
    )
    dataset_assets: dict[str, str] | None = Field(
        default=None,
        description="Instead of `dataset`: this project's assets as the tables, {users: key, items: key, "
        "interactions: key} (keys like `raw/users`), read through their own IO managers.",
    )
    storage: str = Field(default="", description="Where outputs live; '': $DAGSTER_HOME/causalrec_<prefix>.")
    stages: dict[str, StagePlugin] = Field(
        default_factory=dict, description="Per stage (" + ", ".join(DEFAULT_PLUGINS) + "): plugin and parameters."
    )
    schedule: str | None = Field(default="0 3 * * *", description="Cron of the refresh schedule; null: none.")
    partitions: Literal["", "daily"] = Field(default="", description="'daily': the interactions log by day.")
    executor: str = Field(default="auto", description="The jobs' executor: " + ", ".join(EXECUTORS) + ".")

    def spec(self) -> PipelineSpec:
        """The pipeline this YAML declares, checked (stage names, executor)."""
        prefix = (self.key_prefix,) if isinstance(self.key_prefix, str) else tuple(self.key_prefix)
        unknown = sorted(set(self.stages) - set(DEFAULT_PLUGINS))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}: the stages are {', '.join(DEFAULT_PLUGINS)}")
        if self.dataset and self.dataset_assets:
            raise ValueError("set dataset or dataset_assets, not both")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        base = current_settings()
        name = "_".join(prefix)
        storage = self.storage or str(Path(base.dagster_home or Path.home() / ".dagster") / f"causalrec_{name}")
        settings = base.model_copy(
            update={
                "data": self.dataset,
                "storage": storage,
                "partitions": self.partitions,
                "refresh_cron": self.schedule or base.refresh_cron,
                "executor": self.executor,
            }
        )
        stages = {stage: StageChoice(choice.plugin, choice.params) for stage, choice in self.stages.items()}
        if self.dataset and "ingest" not in stages:  # the auto plugin reads a directory or a built-in name
            stages["ingest"] = StageChoice("auto", {"data": self.dataset})
        upstream = {t: dg.AssetKey.from_user_string(k) for t, k in (self.dataset_assets or {}).items()}
        return PipelineSpec(
            settings=settings,
            key_prefix=prefix,
            stages=stages,
            schedule=self.schedule is not None,
            dataset_assets=upstream or None,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        spec = self.spec()
        return build_pipeline_definitions(spec, executor=executor_for(spec.settings))
