"""One causalrec pipeline as Dagster definitions, built from a ``PipelineSpec``.

The root code location builds one pipeline from the environment (no key prefix, the resource
key ``io_manager``). The ``CausalRecPipeline`` Component builds one per YAML instance: its assets
and checks under a key prefix, its own storage behind its own IO-manager key, its own plugin
defaults in the launchpad, its own jobs, schedule and sensors, so several live in one project
without clashing. The stage assets are written once (``causalrec_assets.stages``); this module
re-binds them per instance.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import dagster as dg

from causalrec_assets.automation import dataset_sensor, refresh_schedule, with_downstream_automation
from causalrec_assets.publish import build_publish_asset, build_publish_sensor
from causalrec_assets.stage_config import config_stage, with_stage_defaults
from causalrec_resources.defaults import shared_resources
from causalrec_resources.settings import CausalrecSettings, current_settings
from causalrec_resources.storage import STORAGE_TAG, CausalrecIOManager

INGESTED = {"users", "items", "interactions", "ground_truth", "true_uplift"}
OPTIONAL = {"ground_truth", "true_uplift"}  # only simulated worlds have them: publishing must not wait on them
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StageChoice:
    """The plugin a stage runs by default, and that plugin's parameters."""

    plugin: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSpec:
    """What distinguishes one pipeline from another in the same Dagster project.

    ``settings`` supplies the dataset, storage, partitions, cron and executor (the root
    location: the environment's); ``key_prefix`` namespaces every asset, check, job, schedule,
    sensor and resource key; ``stages`` sets each stage's default plugin and parameters;
    ``dataset_assets`` replaces the ingest plugin by assets of the user's own project."""

    settings: CausalrecSettings = field(default_factory=current_settings)
    key_prefix: tuple[str, ...] = ()
    stages: Mapping[str, StageChoice] = field(default_factory=dict)
    schedule: bool = True
    dataset_assets: Mapping[str, dg.AssetKey] | None = None  # users/items/interactions from the project's assets

    @property
    def name(self) -> str:
        """The prefix as one identifier ('' for the root pipeline)."""
        return "_".join(self.key_prefix)

    def named(self, base: str) -> str:
        return f"{self.name}_{base}" if self.name else base

    @property
    def io_manager_key(self) -> str:
        return self.named("io_manager")


def check_spec(spec: PipelineSpec) -> None:
    """Refuse a prefix that cannot name Dagster jobs and resources, naming the bad part."""
    for part in spec.key_prefix:
        if not NAME.match(part):
            raise ValueError(f"key_prefix part {part!r} must be a Python identifier (letters, digits, _)")
    if spec.dataset_assets and spec.settings.partitions == "daily":
        raise ValueError("daily partitions need the ingest stage's own log: not available with dataset_assets")


def stage_assets(
    daily: bool, upstream: Mapping[str, dg.AssetKey] | None = None
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """Every stage's assets (with their downstream automation) and the blocking checks, unprefixed;
    ``upstream``: ingest reads those assets instead of running an ingest plugin."""
    from causalrec_assets.stages.effects import assets as effects
    from causalrec_assets.stages.embed import assets as embed
    from causalrec_assets.stages.ingest import assets as ingest
    from causalrec_assets.stages.ranking import assets as ranking
    from causalrec_assets.stages.structure import assets as structure
    from causalrec_assets.stages.validate import assets as validate

    assets = with_downstream_automation(
        [
            *(ingest.build_upstream_ingest_assets(dict(upstream)) if upstream else ingest.build_ingest_assets(daily)),
            validate.validation_report,
            embed.item_embeddings,
            embed.user_embeddings,
            structure.item_topics,
            structure.variables,
            structure.structure,
            effects.treatment_effects,
            ranking.ranking,
            ranking.evaluation,
            ranking.policy_value,
        ],
        sources=INGESTED,
    )
    return assets, list(validate.CHECKS)


@cache
def stage_ops() -> dict[str, tuple[str, ...]]:
    """Each stage's ops whose run config selects its plugin (the validate stage's plugin runs in
    its blocking checks and its report), read off the stage definitions."""
    assets, checks = stage_assets(daily=False)
    ops: dict[str, list[str]] = {}
    for definition in [*assets, *checks]:
        stage = config_stage(definition.node_def)
        if stage is not None:
            ops.setdefault(stage, []).append(definition.node_def.name)
    return {stage: tuple(sorted(names)) for stage, names in ops.items()}


def rebind(definition: dg.AssetsDefinition, spec: PipelineSpec) -> dg.AssetsDefinition:
    """``definition`` writing through the spec's IO manager, with its stage's plugin defaults,
    its op named after the pipeline."""
    node = definition.node_def
    if not isinstance(node, dg.OpDefinition):
        return definition
    stage = config_stage(node)
    default_io = spec.io_manager_key == "io_manager"
    if (stage is None or stage not in spec.stages) and default_io:
        return definition
    outs = {
        out.name: dg.Out(
            dagster_type=out.dagster_type,
            description=out.description,
            is_required=out.is_required,
            io_manager_key=out.io_manager_key if default_io or out.dagster_type.is_nothing else spec.io_manager_key,
            metadata=out.metadata,
            code_version=out.code_version,
        )
        for out in node.output_defs
    }
    schema = with_stage_defaults(node, stage, spec.stages[stage]) if stage in spec.stages else None
    # Two pipelines' ops must not share a name: run config addresses the prefixed one (ops: {shop_ranking: …}).
    rebound = node.with_replaced_properties(name=spec.named(node.name), outs=outs, config_schema=schema)  # type: ignore[arg-type]
    with warnings.catch_warnings():  # the definition's own beta/preview parts warned once already
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetsDefinition(**{**definition.get_attributes_dict(), "node_def": rebound})


def prefixed(
    assets: Sequence[dg.AssetsDefinition], prefix: Sequence[str], groups: bool = True
) -> list[dg.AssetsDefinition]:
    """Every key (and dependency) under ``prefix``; group names too, so two pipelines' stages
    show as separate groups."""
    keys = {k for a in assets for k in [*a.keys, *(c.asset_key for c in a.check_specs)]}
    replace = {k: k.with_prefix(list(prefix)) for k in keys}
    out = []
    for a in assets:
        renamed = a.with_attributes(asset_key_replacements=replace)
        if groups and renamed.keys:
            renamed = renamed.map_asset_specs(
                lambda s: s.replace_attributes(group_name=f"{'_'.join(prefix)}_{s.group_name}")
            )
        out.append(renamed)
    return out


def sinks(assets: Sequence[dg.AssetsDefinition], stored: Sequence[dg.AssetKey]) -> list[dg.AssetKey]:
    """The stored keys no other stored asset reads: every stored asset is an ancestor of one,
    so a step that waits on these waits on all of them (and on their blocking checks)."""
    wanted = set(stored)
    read = {dep for a in assets for key in a.keys if key in wanted for dep in a.asset_deps[key] if dep in wanted}
    return [k for k in stored if k not in read]


def build_pipeline_definitions(spec: PipelineSpec, executor: dg.ExecutorDefinition | None = None) -> dg.Definitions:
    """Assets, checks, publishing step, IO manager, jobs, schedule and sensors of one pipeline.

    ``executor`` is set on this pipeline's jobs (a Component must not set the project's one)."""
    check_spec(spec)
    settings = spec.settings
    daily = settings.partitions == "daily"
    assets, checks = stage_assets(daily, spec.dataset_assets)
    stored = [k for a in assets for k in a.keys if k.to_user_string() not in OPTIONAL]
    assets.append(build_publish_asset(sinks(assets, stored), spec.io_manager_key, OPTIONAL))
    if spec.key_prefix:
        assets, checks = prefixed(assets, spec.key_prefix), prefixed(checks, spec.key_prefix, groups=False)
    assets = [rebind(a, spec) for a in assets]
    checks = [rebind(c, spec) for c in checks]
    prefix = dg.AssetSelection.key_prefixes(list(spec.key_prefix)) if spec.key_prefix else dg.AssetSelection.all()

    def key(name: str) -> dg.AssetKey:
        return dg.AssetKey([*spec.key_prefix, name])

    # The run queue runs one tagged run per storage at a time (README, "One run at a time").
    tags = {STORAGE_TAG: str(settings.storage_dir)}
    job = dg.define_asset_job(
        spec.named("causalrec"),
        selection=prefix,
        description="Every stage, ingest to evaluation.",
        tags=tags,
        executor_def=executor,
    )
    # Daily partitions arrive through the sensor; the schedule refreshes everything else.
    refresh = dg.define_asset_job(
        spec.named("causalrec_refresh"),
        selection=prefix - dg.AssetSelection.assets(key("interactions")) if daily else prefix,
        description="What the schedule refreshes (with daily partitions: all but the interactions log).",
        tags=tags,
        executor_def=executor,
    )
    downstream = [k for a in assets for k in a.keys if k.path[-1] not in INGESTED]
    sensors = [
        dataset_sensor(job, downstream, settings, spec.key_prefix, spec.named("causalrec_dataset_changed")),
        build_publish_sensor(spec.named("publish_sensor"), None if not spec.name else settings.storage_dir),
    ]
    # The root pipeline reads its storage from the environment at run time, as before.
    storage = str(settings.storage_dir) if spec.name else ""
    io_manager = CausalrecIOManager(base_dir=storage, key_prefix=list(spec.key_prefix))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[job, refresh],
        schedules=[refresh_schedule(refresh, settings.refresh_cron, spec.named("causalrec_refresh"))]
        if spec.schedule
        else [],
        sensors=sensors,
        resources={spec.io_manager_key: io_manager, **shared_resources()},
    )
