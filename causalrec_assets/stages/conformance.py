"""The conformance kit's shared machinery; each stage's own checks are in ``stages/<stage>/checks.py``.

Like scikit-learn's ``estimator_checks``, a check is a plain function: it takes the ``Kit`` (one
plugin class, one configuration, one seed, and the inputs its stage would receive) and returns a
short detail, or raises ``CheckFailed`` / ``CheckSkipped``. A stage's ``checks`` module defines
``run``, ``same`` and its five ``check_*`` functions (``StageSuite``); the three checks every
stage shares (``protocol``, ``config``, ``determinism``) are here, and ``stage_checks`` lists a
stage's eight in order. The entry points (``check_conformance``, ``assert_conformance``) are in
``causalrec_assets.testing``.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import traceback
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import numpy as np
import polars as pl

from causalrec_assets.contracts import harmonise_id_types, train_rows
from causalrec_assets.plugin_api import Plugin, PluginConfig, PluginContext
from causalrec_assets.registry import check_plugin, declares_api_version, deprecation_notes, get_registry
from causalrec_assets.stages.effects.inputs import effect_inputs
from causalrec_assets.stages.effects.protocol import EFFECT_COLUMNS, EffectInputs
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.ranking.inputs import ranking_inputs
from causalrec_assets.stages.ranking.protocol import RankingInputs
from causalrec_assets.stages.structure.knowledge import stage_knowledge
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_resources.settings import current_settings
from causalrec_toolkit.bayesnet import cpds_to_frame, fit_network
from causalrec_toolkit.embeddings import embedding_frame, item_texts, user_profiles
from causalrec_toolkit.encoding import EncodedLog, encode_log
from causalrec_toolkit.features import PairFeaturizer
from causalrec_toolkit.topics import item_topics
from causalrec_toolkit.variables import OUTCOME, TREATMENT, VariableEncoder

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

# The small world every check runs on: big enough for every stage to have something to learn
# (both exposure arms, a randomized test slice), small enough for a plugin's test suite.
WORLD = dict(n_users=60, n_items=24, n_topics=3, pairs_per_user=10, test_pairs_per_user=4)

# ------------------------------------------------------------------ results


@dataclass
class CheckResult:
    """One check's verdict on one plugin."""

    name: str
    status: str  # "passed", "failed" or "skipped"
    detail: str = ""

    def line(self) -> str:
        mark = {"passed": "ok     ", "failed": "FAILED ", "skipped": "skipped"}[self.status]
        return f"  {mark} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class ConformanceReport:
    """The verdict of every check run on one plugin with one configuration and seed."""

    plugin: str
    stage: str
    seed: int
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed"]

    def describe(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in ("passed", "failed", "skipped")}
        head = (
            f"conformance of {self.stage} plugin {self.plugin} (seed {self.seed}): "
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        )
        return "\n".join([head, *(r.line() for r in self.results)])


class ConformanceError(AssertionError):
    """A plugin broke its stage's contract; the message is the report."""

    def __init__(self, report: ConformanceReport) -> None:
        super().__init__(report.describe())
        self.report = report


class CheckFailed(AssertionError):
    """Raised by a check: the contract is broken, and the message says how."""


class CheckSkipped(Exception):
    """Raised by a check that does not apply to this plugin; the message says why."""


class PluginRaised(Exception):
    """The plugin raised where the contract says it must not; wraps the plugin's exception."""

    def __init__(self, what: str, exc: BaseException) -> None:
        super().__init__(f"{what} raised {describe_exception(exc)}")
        self.original = exc


def describe_exception(exc: BaseException) -> str:
    """``TypeError: message (at file.py:12 in rank)``: where the plugin's code failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(exc).__name__}: {text}{where}"


def fail(message: str) -> NoReturn:
    """End the check as failed, saying how the contract is broken."""
    raise CheckFailed(message)


def expect_error(what: str, func: Callable[[], Any], names: Sequence[str]) -> str:
    """The plugin must refuse an unusable input: ``func`` raises an error whose message holds
    one of ``names`` (what is wrong). Returns the error, described."""
    try:
        result = func()
    except Exception as exc:
        if not any(n in str(exc) for n in names):
            fail(f"{what} raised without naming {names[0]}: {describe_exception(exc)}")
        return describe_exception(exc)
    fail(f"{what} returned {type(result).__name__} instead of raising an error that names the problem")


# ------------------------------------------------------------------ frames


@dataclass(frozen=True)
class Dtype:
    """What a column's dtype must be: a test, and the words a failure says it with."""

    words: str
    accepts: Callable[[Any], bool]


STRING = Dtype("strings", lambda d: d == pl.String)
FLOAT = Dtype("floats", lambda d: d.is_float())
INTEGER = Dtype("integers", lambda d: d.is_integer())


def same_dtype(dtype: Any) -> Dtype:
    """The column must have exactly ``dtype``, the input's (ids keep their type downstream)."""
    return Dtype(f"the input's dtype ({dtype})", lambda d: d == dtype)


def check_frame(
    frame: Any,
    what: str,
    columns: Sequence[str],
    *,
    exact: bool = True,
    dtypes: Mapping[str, Dtype] | None = None,
) -> pl.DataFrame:
    """Fail unless ``frame`` is a polars DataFrame with ``columns`` (exactly these, in this order;
    or at least these, when not ``exact``) and, for the columns ``dtypes`` names that it has,
    those dtypes. The one schema test of every stage's output."""
    if not isinstance(frame, pl.DataFrame):
        fail(f"{what} must be a polars DataFrame, got {type(frame).__name__}")
    if exact and frame.columns != list(columns):
        fail(f"{what} must have columns {list(columns)}, got {frame.columns}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        fail(f"{what} lacks required column(s) {', '.join(missing)} (has {', '.join(frame.columns)})")
    for col, want in (dtypes or {}).items():
        if col in frame.columns and not want.accepts(frame.schema[col]):
            fail(f"{what}.{col} must be {want.words}, got {frame.schema[col]}")
    return frame


def check_no_nulls(frame: pl.DataFrame, what: str, columns: Sequence[str]) -> None:
    """Fail when one of ``columns`` holds a null."""
    for col in columns:
        if frame[col].null_count():
            fail(f"{what}.{col} has {frame[col].null_count()} null(s)")


def frame_difference(a: Any, b: Any) -> str | None:
    """Where two outputs differ (None when they agree; floats up to rounding), for determinism."""
    if not (isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame)):
        return None if a == b else "the outputs"
    if a.schema != b.schema or a.height != b.height:
        return f"shape or schema ({a.shape} {dict(a.schema)} vs {b.shape} {dict(b.schema)})"
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype.is_float():
            # Summation order may differ between runs (parallel group-bys): allow rounding, not more.
            if not np.allclose(x.to_numpy(), y.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True):
                return f"column {col}"
        elif not x.equals(y):
            return f"column {col}"
    return None


def unused_id(ids: pl.Series, stem: str) -> Any:
    """An id of the same kind as ``ids`` that none of them is (a newcomer, an unknown item)."""
    if ids.dtype.is_integer():
        return int(ids.max() or 0) + 1_000_000  # type: ignore[arg-type]
    return f"kit-{stem}"


# ------------------------------------------------------------------ small generated inputs


@lru_cache(maxsize=4)
def small_world(seed: int = 0) -> Dataset:
    """The simulator's small world for ``seed``, as the ingest stage stores it. The simulator is
    reached through the entry-point registry, like any plugin: the framework imports no plugin."""
    cls = get_registry().get("ingest", "simulator")
    context = PluginContext(log=logging.getLogger("causalrec.conformance.world"), seed=seed)
    data = cls(cls.Config(seed=seed, **WORLD)).load(context)  # type: ignore[attr-defined]
    users, items, interactions = harmonise_id_types(data.users, data.items, data.interactions)
    return Dataset(users=users, items=items, interactions=interactions, truth=data.truth, name=f"kit-world-{seed}")


def hashed_embeddings(texts: Sequence[str], dim: int = 32) -> np.ndarray:
    """Cheap, deterministic text vectors (a hashed bag of words, L2-normalised): stand-ins for
    a real encoder's output wherever a stage only needs item embeddings as input."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in re.findall(r"\w+", str(text).lower()):
            out[row, zlib.crc32(token.encode()) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out[norms[:, 0] == 0, 0] = 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@dataclass
class StageInputs:
    """Everything the stages downstream of ingest receive, built for the small world by the
    stages' own builders (``encode_log``, ``stage_knowledge``, ``effect_inputs``,
    ``ranking_inputs``): only the item embeddings are stand-ins and the graph is the world's
    true one, so each stage's check does not depend on another plugin."""

    world: Dataset
    item_embeddings: pl.DataFrame
    user_embeddings: pl.DataFrame
    item_topics: pl.DataFrame
    encoded: EncodedLog
    knowledge: Knowledge
    edges: list[tuple[str, str]]

    @property
    def encoder(self) -> VariableEncoder:
        return self.encoded.encoding.encoder

    @property
    def variables(self) -> pl.DataFrame:
        return self.encoded.variables

    def pair_featurizer(self) -> PairFeaturizer:
        """Row-level features of pairs, fitted on the training log as the pipeline fits them."""
        return self.encoded.encoding.featurizer

    @cached_property
    def network(self) -> pl.DataFrame:
        """The network fitted on the true graph, as the ``bayesian_network`` asset stores it
        (fitted once: the effects and ranking checks build their inputs many times)."""
        return cpds_to_frame(fit_network(self.variables, self.edges))

    def effect_inputs(self) -> EffectInputs:
        """As the effects stage builds them: the discrete table, the network, and the same
        training pairs as row-level features, plus the test slice's pairs."""
        graph = {"edges": [list(e) for e in self.edges]}
        return effect_inputs(self.variables, graph, self.network, self.encoded.features)

    def ranking_inputs(self) -> RankingInputs:
        """As the ranking stage builds them, with the naive difference as the effects table."""
        y = self.variables[OUTCOME].cast(pl.Int64)
        exposed = self.variables[TREATMENT] == "1"
        naive = float(y.filter(exposed).mean() - y.filter(~exposed).mean())  # type: ignore[operator]
        effects = pl.DataFrame(
            [[TREATMENT, OUTCOME, "ATE", "naive", naive, float("nan"), float("nan")]],
            schema=EFFECT_COLUMNS,
            orient="row",
        )
        return ranking_inputs(
            self.world.interactions,
            self.user_embeddings,
            self.encoded.encoding,
            self.variables,
            self.network,
            effects,
        )


@lru_cache(maxsize=4)
def stage_inputs(seed: int = 0) -> StageInputs:
    """The small world of ``seed`` turned into every stage's inputs (see ``build_stage_inputs``)."""
    return build_stage_inputs(small_world(seed), seed)


def build_stage_inputs(world: Dataset, seed: int = 0) -> StageInputs:
    """A world turned into every stage's inputs, as the pipeline builds them: hashed item
    embeddings, user profiles, topics, the encoded log, the stage's knowledge (attributes
    before exposure before outcome), and the world's true graph (else exposure -> outcome)."""
    texts = item_texts(world.items)
    items_emb = embedding_frame(world.items["item_id"], texts, hashed_embeddings(texts), "kit-hashed-32")
    users_emb, _ = user_profiles(train_rows(world.interactions), items_emb)
    topics = item_topics(items_emb, k=min(WORLD["n_topics"], world.items.height), seed=seed)
    encoded = encode_log(world.users, world.items, world.interactions, topics, items_emb)
    variables = encoded.variables
    truth = world.truth.edges if world.truth is not None else [(TREATMENT, OUTCOME)]
    edges = [(a, b) for a, b in truth if a in variables.columns and b in variables.columns]
    knowledge = stage_knowledge(variables)
    return StageInputs(world, items_emb, users_emb, topics, encoded, knowledge, edges)


def write_canonical(data: Dataset, directory: Path) -> Path:
    """The dataset as a canonical directory of CSV files (docs/plugins.md, "ingest")."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("users", "items", "interactions"):
        getattr(data, name).write_csv(directory / f"{name}.csv")
    return directory


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
