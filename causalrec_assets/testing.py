"""Conformance kit: put a stage plugin through its stage's contract on small generated data.

One call checks a plugin the way the pipeline will use it::

    from causalrec_assets.testing import assert_conformance

    assert_conformance(MyRanking)                     # every check; AssertionError lists failures
    assert_conformance(MyRanking, {"k": 5}, checks=["determinism"])

Every stage has the same eight named checks (``CHECKS``), so a test suite can parametrize
over them and see each verdict on its own::

    @pytest.mark.parametrize("check", CHECKS)
    def test_conformance(check):
        assert_conformance(MyRanking, checks=[check])

The inputs are what the stage hands its plugin in a pipeline run, built from a small seeded
world of the built-in simulator (60 users, 24 items); the plugin runs once per configuration
and seed, and the checks share that run. Each stage's checks are plain functions in
``causalrec_assets.stages.<stage>.checks``; the machinery they share is in
``causalrec_assets.stages.conformance``. What each check asks of each stage is written in
docs/plugins.md ("The conformance kit").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from causalrec_assets.plugin_api import Plugin, PluginConfig, stage_bases
from causalrec_assets.stages.conformance import CHECKS, Kit, StageSuite, stage_checks
from causalrec_assets.stages.effects import checks as effects_checks
from causalrec_assets.stages.embed import checks as embed_checks
from causalrec_assets.stages.ingest import checks as ingest_checks
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.kit_frames import (
    CheckFailed,
    CheckResult,
    CheckSkipped,
    ConformanceError,
    ConformanceReport,
    PluginRaised,
    describe_exception,
)
from causalrec_assets.stages.kit_inputs import (
    WORLD,
    StageInputs,
    build_stage_inputs,
    hashed_embeddings,
    small_world,
    stage_inputs,
    write_canonical,
)
from causalrec_assets.stages.ranking import checks as ranking_checks
from causalrec_assets.stages.structure import checks as structure_checks
from causalrec_assets.stages.validate import checks as validate_checks

__all__ = [
    "CHECKS",
    "WORLD",
    "CheckFailed",
    "CheckResult",
    "CheckSkipped",
    "ConformanceError",
    "ConformanceReport",
    "Kit",
    "PluginRaised",
    "SUITES",
    "StageInputs",
    "StageSuite",
    "assert_conformance",
    "build_stage_inputs",
    "check_conformance",
    "describe_exception",
    "hashed_embeddings",
    "small_world",
    "stage_checks",
    "stage_inputs",
    "write_canonical",
]

SUITES: dict[str, StageSuite] = {
    suite.STAGE: suite
    for suite in (ingest_checks, validate_checks, embed_checks, structure_checks, effects_checks, ranking_checks)
}
"""Each stage's checks module, by stage."""

PluginLike = type[Plugin] | Plugin
ConfigLike = PluginConfig | Mapping[str, Any] | None
Names = Sequence[str] | None

_KITS: dict[tuple, Kit] = {}  # one kit (one run of the plugin) per class, config, seed and world


def _kit(plugin: PluginLike, config: ConfigLike, seed: int, world: Dataset | None) -> Kit:
    cls = type(plugin) if isinstance(plugin, Plugin) else plugin
    if isinstance(plugin, Plugin) and config is None:
        config = plugin.config
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise TypeError(f"expected a causalrec plugin class or instance, got {plugin!r}")
    stage = next((s for s, base in stage_bases().items() if issubclass(cls, base)), None)
    if stage is None:
        raise TypeError(f"{cls!r} is not a causalrec stage plugin (subclass one of {', '.join(stage_bases())})")
    if config is None:
        config = cls.Config()
    resolved = cls.Config(**config) if isinstance(config, Mapping) else config
    key = (cls, type(resolved), resolved.model_dump_json(), seed, id(world) if world is not None else None)
    if key not in _KITS:
        _KITS[key] = Kit(SUITES[stage], cls, resolved, seed, world)
    return _KITS[key]


def check_conformance(
    plugin: PluginLike, config: ConfigLike = None, *, checks: Names = None, seed: int = 0, world: Dataset | None = None
) -> ConformanceReport:
    """Run ``checks`` (default: all of ``CHECKS``) on a plugin class (or instance) with
    ``config`` (default: its Config's defaults) and return the report. ``world`` replaces the
    kit's small simulated world as the ingest and validate stages' data."""
    kit = _kit(plugin, config, seed, world)
    report = ConformanceReport(plugin=kit.cls.__qualname__, stage=kit.stage, seed=seed)
    for name in checks or CHECKS:
        report.results.append(kit.run(name))
    return report


def assert_conformance(
    plugin: PluginLike, config: ConfigLike = None, *, checks: Names = None, seed: int = 0, world: Dataset | None = None
) -> ConformanceReport:
    """``check_conformance``, raising ConformanceError (an AssertionError) that lists every
    failed check when there is one."""
    report = check_conformance(plugin, config, checks=checks, seed=seed, world=world)
    if not report.ok:
        raise ConformanceError(report)
    return report
