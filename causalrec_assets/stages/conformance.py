"""The conformance kit's shared machinery; each stage's own checks are in ``stages/<stage>/checks.py``.

Like scikit-learn's ``estimator_checks``, a check is a plain function: it takes the ``Kit`` (one
plugin class, one configuration, one seed, and the inputs its stage would receive) and returns a
short detail, or raises ``CheckFailed`` / ``CheckSkipped``. A stage's ``checks`` module defines
``run``, ``same`` and its five ``check_*`` functions (``StageSuite``); the three checks every
stage shares (``protocol``, ``config``, ``determinism``) are here, and ``stage_checks`` lists a
stage's eight in order. What a check returns or raises and the frame checks are in
``kit_frames``, the small world and each stage's inputs in ``kit_inputs``; the entry points
(``check_conformance``, ``assert_conformance``) are in ``causalrec_assets.testing``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

from causalrec_assets.plugin_api import Plugin, PluginConfig, PluginContext
from causalrec_assets.registry import check_plugin, declares_api_version, deprecation_notes
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.kit_frames import (
    CheckFailed,
    CheckResult,
    CheckSkipped,
    PluginRaised,
    describe_exception,
    fail,
)
from causalrec_assets.stages.kit_inputs import StageInputs, build_stage_inputs, small_world, stage_inputs
from causalrec_resources.settings import current_settings

T = TypeVar("T")

CHECKS: tuple[str, ...] = (
    "protocol",
    "config",
    "output_schema",
    "dtypes",
    "row_invariants",
    "determinism",
    "empty_input",
    "malformed_input",
)
"""The checks every stage's plugins go through, in order."""

# ------------------------------------------------------------------ the kit

Check = Callable[["Kit"], "str | None"]


class StageSuite(Protocol):
    """One stage's share of the kit: its ``checks`` module. ``run`` calls the plugin the way the
    stage does on the regular input, ``same`` says where two such outputs differ (None when they
    agree), and the five ``check_*`` functions are the checks each stage answers its own way."""

    STAGE: str

    def run(self, kit: Kit) -> Any: ...
    def same(self, a: Any, b: Any) -> str | None: ...
    def check_output_schema(self, kit: Kit) -> str | None: ...
    def check_dtypes(self, kit: Kit) -> str | None: ...
    def check_row_invariants(self, kit: Kit) -> str | None: ...
    def check_empty_input(self, kit: Kit) -> str | None: ...
    def check_malformed_input(self, kit: Kit) -> str | None: ...


def stage_checks(suite: StageSuite) -> dict[str, Check]:
    """Every check of ``CHECKS`` for one stage, in order: the shared ones and the stage's own."""
    return {
        "protocol": check_protocol,
        "config": check_config,
        "output_schema": suite.check_output_schema,
        "dtypes": suite.check_dtypes,
        "row_invariants": suite.check_row_invariants,
        "determinism": check_determinism,
        "empty_input": suite.check_empty_input,
        "malformed_input": suite.check_malformed_input,
    }


class Kit:
    """One plugin class, one configuration, one seed: runs the plugin once (lazily) on the
    stage's inputs, so every check answers from that run and a few variations of the input."""

    def __init__(
        self, suite: StageSuite, cls: type[Plugin], config: PluginConfig, seed: int, world: Dataset | None = None
    ) -> None:
        self.suite = suite
        self.stage = suite.STAGE
        self.cls = cls
        self.config = config
        self.seed = seed
        self.custom_world = world
        self.log = logging.getLogger(f"causalrec.conformance.{self.stage}")
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._main: tuple[Any, PluginRaised | None] | None = None
        self._memo: dict[str, Any] = {}

    @property
    def world(self) -> Dataset:
        return self.custom_world or small_world(self.seed)

    @cached_property
    def inputs(self) -> StageInputs:
        if self.custom_world is None:
            return stage_inputs(self.seed)
        return build_stage_inputs(self.custom_world, self.seed)

    def context(self) -> PluginContext:
        cache = current_settings().cache_dir
        return PluginContext(log=self.log, seed=self.seed, cache_dir=cache)

    def make(self, config: PluginConfig | None = None) -> Any:
        """A fresh plugin instance (the kit's config unless told otherwise)."""
        return self.cls(config if config is not None else self.config)

    def with_config(self, **changes: Any) -> PluginConfig:
        """The kit's config with some fields changed."""
        return self.cls.Config(**{**self.config.model_dump(), **changes})

    def remember(self, key: str, build: Callable[[], T]) -> T:
        """``build()``, computed once per kit: what a stage prepares for several checks."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def tmpdir(self, name: str) -> Path:
        """A fresh path ``name`` in the kit's temporary folder (emptied if it was used)."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="causalrec-kit-")
        path = Path(self._tmp.name) / name
        if path.exists():
            shutil.rmtree(path)
        return path

    def call(self, what: str, func: Callable[[], T]) -> T:
        """Run plugin code; an exception becomes a failure that says what raised and where."""
        try:
            return func()
        except (CheckFailed, CheckSkipped):
            raise
        except Exception as exc:
            raise PluginRaised(what, exc) from exc

    @property
    def main(self) -> Any:
        """The plugin's output on the stage's regular input: computed once, and a failure too."""
        if self._main is None:
            try:
                self._main = (self.suite.run(self), None)
            except PluginRaised as exc:
                self._main = (None, exc)
        output, error = self._main
        if error is not None:
            raise error
        return output

    def main_or_fail(self) -> Any:
        """``main``, or a failure saying that the plugin raised on the regular input."""
        try:
            return self.main
        except PluginRaised as exc:
            fail(f"on the regular input, {exc}")

    def run(self, name: str) -> CheckResult:
        """Run one check by name; whatever it raises becomes its verdict."""
        checks = stage_checks(self.suite)
        if name not in checks:
            raise ValueError(f"unknown conformance check {name!r} (checks: {', '.join(CHECKS)})")
        try:
            detail = checks[name](self)
        except CheckSkipped as exc:
            return CheckResult(name, "skipped", str(exc))
        except (CheckFailed, PluginRaised) as exc:
            return CheckResult(name, "failed", " ".join(str(exc).split()))
        except Exception as exc:  # the kit's own checks tripped over something unexpected
            return CheckResult(name, "failed", f"while checking: {describe_exception(exc)}")
        return CheckResult(name, "passed", detail or "")


# ------------------------------------------------------------------ the checks every stage shares


def check_protocol(kit: Kit) -> str:
    """The registry would accept the class: the stage's base, nothing abstract left, a
    compatible ``api_version``, a ``PluginConfig``; notes the deprecated API it uses."""
    reason = check_plugin(kit.stage, kit.cls)
    if reason:
        fail(reason)
    notes = list(deprecation_notes(kit.stage, kit.cls))
    if not declares_api_version(kit.stage, kit.cls):
        notes.append(f"api_version not declared, inherits {kit.cls.api_version}")
    return "; ".join(notes)


def check_config(kit: Kit) -> str:
    """A run without config works, the launchpad can show every field, and the plugin keeps the
    config it is given."""
    cls = kit.cls.Config
    fields = cls.model_fields
    no_default = [n for n, f in fields.items() if f.is_required()]
    if no_default:
        fail(f"{cls.__qualname__} field(s) without a default: {', '.join(no_default)} (a run without config fails)")
    undocumented = [n for n, f in fields.items() if not (f.description or "").strip()]
    if undocumented:
        fail(
            f"{cls.__qualname__} field(s) without a description: {', '.join(undocumented)} "
            "(use pydantic Field(description=...); the launchpad shows it)"
        )
    try:
        cls.to_config_schema()
    except Exception as exc:
        fail(f"{cls.__qualname__} is not a valid Dagster config: {describe_exception(exc)}")
    default = cls()
    if cls(**default.model_dump()) != default:
        fail(f"{cls.__qualname__} does not survive a round trip through run config (model_dump)")
    plugin = kit.call("constructing the plugin", kit.make)
    if plugin.config is not kit.config:
        fail("the plugin does not keep the config it was given as .config (call super().__init__(config))")
    return f"{len(fields)} typed, documented field(s)"


def check_determinism(kit: Kit) -> str:
    """A second instance with the same config and seed gives the same output."""
    first = kit.main_or_fail()
    second = kit.call("a second instance with the same config and seed", lambda: kit.suite.run(kit))
    problem = kit.suite.same(first, second)
    if problem:
        fail(f"two runs with the same config and seed differ: {problem}")
    return ""
