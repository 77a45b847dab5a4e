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
and seed, and the checks share that run. What each check asks of each stage is written in
docs/plugins.md ("The conformance kit").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import traceback
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from causalrec_assets.bayesnet import fit_network
from causalrec_assets.contracts import KEY_COLUMNS, REQUIRED_COLUMNS, SPLITS, harmonise_id_types, train_rows
from causalrec_assets.contracts import test_rows as _test_rows
from causalrec_assets.embeddings import embedding_frame, item_texts, user_profiles
from causalrec_assets.features import PairFeaturizer
from causalrec_assets.plugin_api import STAGE_BASES, Plugin, PluginConfig, PluginContext
from causalrec_assets.stages.effects.protocol import EFFECT_COLUMNS, EffectInputs
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.ranking.protocol import RankingInputs, RankingOutput
from causalrec_assets.stages.structure.protocol import Knowledge
from causalrec_assets.stages.validate.protocol import ExpectationOutcome, ValidationOutcome
from causalrec_assets.topics import item_topics
from causalrec_assets.variables import OUTCOME, TREATMENT, VariableEncoder

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

MAX_DAMAGED_FILES = 6  # the ingest malformed_input check damages at most this many files, largest first

RECOMMENDATION_COLUMNS = ["user_id", "item_id", "rank", "score"]
TEST_SCORE_COLUMNS = ["user_id", "item_id", "score"]

# The small world every check runs on: big enough for every stage to have something to learn
# (both exposure arms, a randomized test slice), small enough for a plugin's test suite.
WORLD = dict(n_users=60, n_items=24, n_topics=3, pairs_per_user=10, test_pairs_per_user=4)


# ------------------------------------------------------------------ results


@dataclass
class CheckResult:
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
    """``TypeError: message (at file.py:12 in rank)`` — where the plugin's code failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(exc).__name__}: {text}{where}"


def fail(message: str) -> None:
    raise CheckFailed(message)


# ------------------------------------------------------------------ small generated inputs


@lru_cache(maxsize=4)
def small_world(seed: int = 0) -> Dataset:
    """The simulator's small world for ``seed``, as the ingest stage stores it."""
    from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate

    data = simulate(SimulatorConfig(seed=seed, **WORLD))
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
    """Everything the stages downstream of ingest receive, built for the small world."""

    world: Dataset
    item_embeddings: pl.DataFrame
    user_embeddings: pl.DataFrame
    item_topics: pl.DataFrame
    encoder: VariableEncoder
    variables: pl.DataFrame
    knowledge: Knowledge
    edges: list[tuple[str, str]]

    def effect_inputs(self) -> EffectInputs:
        """As the pipeline builds them: the discrete table, the network, and the same training
        pairs as row-level features, plus the test slice's pairs."""
        log = self.world.interactions
        featurizer = PairFeaturizer().fit(
            self.world.users, self.world.items, train_rows(log), self.item_embeddings, self.item_topics
        )
        test = _test_rows(log)
        return EffectInputs(
            variables=self.variables,
            edges=list(self.edges),
            network=fit_network(self.variables, self.edges),
            features=featurizer.features(train_rows(log)),
            test=featurizer.features(test) if test.height else None,
        )

    def ranking_inputs(self) -> RankingInputs:
        interactions = self.world.interactions
        treatment_effects = pl.DataFrame(
            [[TREATMENT, OUTCOME, "ATE", "naive", _naive_effect(self.variables), float("nan"), float("nan")]],
            schema=EFFECT_COLUMNS,
            orient="row",
        )
        return RankingInputs(
            users=self.world.users,
            items=self.world.items,
            interactions=interactions,
            item_embeddings=self.item_embeddings,
            user_embeddings=self.user_embeddings,
            variables=self.variables,
            variable_encoder=self.encoder,
            edges=list(self.edges),
            network=fit_network(self.variables, self.edges),
            treatment_effects=treatment_effects,
            pair_featurizer=PairFeaturizer().fit(
                self.world.users, self.world.items, train_rows(interactions), self.item_embeddings, self.item_topics
            ),
        )


def _naive_effect(variables: pl.DataFrame) -> float:
    y = variables[OUTCOME].cast(pl.Int64)
    t = variables[TREATMENT] == "1"
    return float(y.filter(t).mean() - y.filter(~t).mean())  # type: ignore[operator]


@lru_cache(maxsize=4)
def stage_inputs(seed: int = 0) -> StageInputs:
    """The small world of ``seed`` turned into every stage's inputs (see ``build_stage_inputs``)."""
    return build_stage_inputs(small_world(seed), seed)


def build_stage_inputs(world: Dataset, seed: int = 0) -> StageInputs:
    """A world turned into every stage's inputs, as the pipeline builds them: hashed item
    embeddings, user profiles, topics, the causal variable table, the stage's knowledge
    (attributes before exposure before outcome), and the world's true graph (else exposure ->
    outcome)."""
    texts = item_texts(world.items)
    items_emb = embedding_frame(world.items["item_id"], texts, hashed_embeddings(texts), "kit-hashed-32")
    users_emb, _ = user_profiles(train_rows(world.interactions), items_emb)
    topics = item_topics(items_emb, k=min(WORLD["n_topics"], world.items.height), seed=seed)
    train = train_rows(world.interactions)
    encoder = VariableEncoder().fit(world.users, world.items, train, topics)
    variables = encoder.transform(train)
    attrs = [c for c in variables.columns if c not in (TREATMENT, OUTCOME)]
    knowledge = Knowledge(tiers=[attrs, [TREATMENT], [OUTCOME]], exogenous=attrs)
    truth = world.truth.edges if world.truth is not None else [(TREATMENT, OUTCOME)]
    edges = [(a, b) for a, b in truth if a in variables.columns and b in variables.columns]
    return StageInputs(world, items_emb, users_emb, topics, encoder, variables, knowledge, edges)


def write_canonical(data: Dataset, directory: Path) -> Path:
    """The dataset as a canonical directory of CSV files (DESIGN.md)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("users", "items", "interactions"):
        getattr(data, name).write_csv(directory / f"{name}.csv")
    return directory


# ------------------------------------------------------------------ the kit


def _plugin_config(cls: type[Plugin], config: PluginConfig | Mapping[str, Any] | None) -> PluginConfig:
    if config is None:
        return cls.Config()
    if isinstance(config, Mapping):
        return cls.Config(**config)
    return config


def _stage_of(cls: type[Plugin]) -> str:
    for stage, base in STAGE_BASES.items():
        if isinstance(cls, type) and issubclass(cls, base):
            return stage
    raise TypeError(f"{cls!r} is not a causalrec stage plugin (subclass one of {', '.join(STAGE_BASES)})")


class Kit:
    """One plugin class, one configuration, one seed: runs the plugin once (lazily) on the
    stage's inputs and answers every check from that run and a few variations of the input."""

    def __init__(self, cls: type[Plugin], config: PluginConfig, seed: int, world: Dataset | None = None) -> None:
        self.cls = cls
        self.stage = _stage_of(cls)
        self.config = config
        self.seed = seed
        self.custom_world = world
        self.log = logging.getLogger(f"causalrec.conformance.{self.stage}")
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._main: tuple[Any, PluginRaised | None] | None = None

    # -------------------------------------------------------- plumbing
    @property
    def world(self) -> Dataset:
        return self.custom_world or small_world(self.seed)

    @cached_property
    def inputs(self) -> StageInputs:
        if self.custom_world is None:
            return stage_inputs(self.seed)
        return build_stage_inputs(self.custom_world, self.seed)

    def context(self) -> PluginContext:
        cache = Path(os.environ.get("CAUSALREC_CACHE", Path.home() / ".cache" / "causalrec")).expanduser()
        return PluginContext(log=self.log, seed=self.seed, cache_dir=cache)

    def make(self, config: PluginConfig | None = None) -> Plugin:
        return self.cls(config if config is not None else self.config)

    def tmpdir(self, name: str) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="causalrec-kit-")
        path = Path(self._tmp.name) / name
        if path.exists():
            shutil.rmtree(path)
        return path

    def call(self, what: str, func: Callable[[], Any]) -> Any:
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
                self._main = (getattr(self, f"_{self.stage}_main")(), None)
            except PluginRaised as exc:
                self._main = (None, exc)
        output, error = self._main
        if error is not None:
            raise error
        return output

    def main_or_fail(self) -> Any:
        try:
            return self.main
        except PluginRaised as exc:
            fail(f"on the regular input, {exc}")

    def run(self, name: str) -> CheckResult:
        if name not in CHECKS:
            raise ValueError(f"unknown conformance check {name!r} (checks: {', '.join(CHECKS)})")
        method = getattr(self, f"check_{name}", None) or getattr(self, f"_{self.stage}_{name}")
        try:
            detail = method()
        except CheckSkipped as exc:
            return CheckResult(name, "skipped", str(exc))
        except (CheckFailed, PluginRaised) as exc:
            return CheckResult(name, "failed", " ".join(str(exc).split()))
        except Exception as exc:  # the kit's own checks tripped over something unexpected
            return CheckResult(name, "failed", f"while checking: {describe_exception(exc)}")
        return CheckResult(name, "passed", detail or "")

    # -------------------------------------------------------- every stage

    def check_protocol(self) -> str:
        from causalrec_assets.registry import check_plugin, declares_api_version, deprecation_notes

        reason = check_plugin(self.stage, self.cls)
        if reason:
            fail(reason)
        notes = list(deprecation_notes(self.stage, self.cls))
        if not declares_api_version(self.stage, self.cls):
            notes.append(f"api_version not declared, inherits {self.cls.api_version}")
        return "; ".join(notes)

    def check_config(self) -> str:
        cls = self.cls.Config
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
        plugin = self.call("constructing the plugin", lambda: self.make())
        if plugin.config is not self.config:
            fail("the plugin does not keep the config it was given as .config (call super().__init__(config))")
        return f"{len(fields)} typed, documented field(s)"

    def check_determinism(self) -> str:
        first = self.main_or_fail()
        second = self.call("a second instance with the same config and seed", lambda: self._rerun())
        problem = getattr(self, f"_{self.stage}_same")(first, second)
        if problem:
            fail(f"two runs with the same config and seed differ: {problem}")
        return ""

    def _rerun(self) -> Any:
        return getattr(self, f"_{self.stage}_main")()

    # -------------------------------------------------------- ingest

    def _path_field(self) -> bool:
        return "path" in self.cls.Config.model_fields

    @cached_property
    def ingest_config(self) -> PluginConfig:
        """The config, pointed at a canonical copy of the small world when the plugin reads a
        ``path`` and none was given."""
        if self._path_field() and not str(getattr(self.config, "path", "") or ""):
            directory = write_canonical(self.world, self.tmpdir("dataset"))
            return self.cls.Config(**{**self.config.model_dump(), "path": str(directory)})
        return self.config

    def _ingest_main(self) -> Any:
        plugin = self.make(self.ingest_config)
        return self.call("load()", lambda: plugin.load(self.context()))

    def _ingest_same(self, a: Dataset, b: Dataset) -> str | None:
        for name in ("users", "items", "interactions"):
            if not getattr(a, name).equals(getattr(b, name)):
                return f"the {name} tables"
        return None

    def _ingest_tables(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        data = self.main_or_fail()
        return data.users, data.items, data.interactions

    def _ingest_output_schema(self) -> str:
        data = self.main_or_fail()
        if not isinstance(data, Dataset):
            fail(f"load() must return causalrec_assets.plugin_api.Dataset, got {type(data).__name__}")
        for table, required in REQUIRED_COLUMNS.items():
            frame = getattr(data, table)
            if not isinstance(frame, pl.DataFrame):
                fail(f"Dataset.{table} must be a polars DataFrame, got {type(frame).__name__}")
            missing = [c for c in required if c not in frame.columns]
            if missing:
                fail(f"{table} lacks required column(s) {', '.join(missing)} (has {', '.join(frame.columns)})")
            if frame.is_empty():
                fail(f"{table} is empty")
        return ", ".join(f"{t}: {getattr(data, t).height} rows" for t in REQUIRED_COLUMNS)

    def _ingest_dtypes(self) -> str:
        users, items, interactions = self._ingest_tables()
        ids = [("users", users, "user_id"), ("items", items, "item_id")]
        ids += [("interactions", interactions, "user_id"), ("interactions", interactions, "item_id")]
        for table, frame, col in ids:
            dtype = frame.schema[col]
            if not (dtype == pl.String or dtype.is_integer()):
                fail(f"{table}.{col} must be strings or integers, got {dtype}")
        checks = [
            ("exposure", lambda d: d.is_integer() or d == pl.Boolean, "integer 0/1"),
            ("outcome", lambda d: d.is_numeric() or d == pl.Boolean, "numeric"),
            ("split", lambda d: d in (pl.String, pl.Categorical) or isinstance(d, pl.Enum), "strings"),
            ("timestamp", lambda d: d.is_temporal() or d.is_numeric() or d == pl.String, "a datetime, number or text"),
        ]
        for col, ok, want in checks:
            if col in interactions.columns and not ok(interactions.schema[col]):
                fail(f"interactions.{col} must be {want}, got {interactions.schema[col]}")
        if "text" in items.columns and items.schema["text"] != pl.String:
            fail(f"items.text must be strings, got {items.schema['text']}")
        return ""

    def _ingest_row_invariants(self) -> str:
        users, items, interactions = harmonise_id_types(*self._ingest_tables())
        for table, frame in (("users", users), ("items", items)):
            key = KEY_COLUMNS[table]
            if frame[key].null_count():
                fail(f"{table}.{key} has {frame[key].null_count()} null(s)")
            dupes = frame.filter(frame[key].is_duplicated())[key].unique().to_list()
            if dupes:
                fail(f"{table}.{key} is not unique, e.g. {dupes[:3]!r}")
        for col in REQUIRED_COLUMNS["interactions"]:
            if interactions[col].null_count():
                fail(f"interactions.{col} has {interactions[col].null_count()} null(s)")
        bad = interactions.filter(~pl.col("exposure").cast(pl.Int64).is_in([0, 1]))
        if bad.height:
            fail(f"interactions.exposure must be 0 or 1, found {bad['exposure'].unique().to_list()[:5]!r}")
        if "split" in interactions.columns:
            odd = set(interactions["split"].cast(pl.String).unique().to_list()) - set(SPLITS)
            if odd:
                fail(f"interactions.split must be one of {', '.join(SPLITS)}, found {sorted(map(str, odd))!r}")
        if train_rows(interactions).is_empty():
            fail("interactions has no training rows (split absent or 'train')")
        for col, owner, frame in (("user_id", "users", users), ("item_id", "items", items)):
            unknown = interactions.join(frame.select(col), on=col, how="anti")[col].unique().to_list()
            if unknown:
                fail(f"interactions.{col} has {len(unknown)} id(s) not in {owner}, e.g. {unknown[:3]!r}")
        return ""

    def _ingest_empty_input(self) -> str:
        if not self._path_field():
            raise CheckSkipped("the plugin reads no files (its Config has no `path`)")
        empty = self.tmpdir("empty")
        empty.mkdir(parents=True)
        config = self.cls.Config(**{**self.config.model_dump(), "path": str(empty)})
        exc = self._expect_raise("load() on an empty directory", lambda: self.make(config).load(self.context()))
        message = str(exc)
        if str(empty) not in message and empty.name not in message:
            fail(f"load() on an empty directory raised without naming it: {describe_exception(exc)}")
        return describe_exception(exc)

    def _ingest_malformed_input(self) -> str:
        if not self._path_field():
            raise CheckSkipped("the plugin reads no files (its Config has no `path`)")
        good = self.main_or_fail()
        source = Path(str(self.ingest_config.path))  # type: ignore[attr-defined]
        files = sorted((p for p in source.rglob("*") if p.is_file()), key=lambda p: (-p.stat().st_size, str(p)))
        refused: list[str] = []
        for original in files[:MAX_DAMAGED_FILES]:
            # Damage one file at a time: the plugin must refuse it, naming the file or its table,
            # or (a file it does not read) return exactly the undamaged data.
            broken = self.tmpdir("malformed")
            shutil.copytree(source, broken)
            victim = broken / original.relative_to(source)
            victim.write_bytes(b"\x00\xff\xfe\x89garbage\x00\x01" * 512)
            config = self.cls.Config(**{**self.ingest_config.model_dump(), "path": str(broken)})
            try:
                data = self.make(config).load(self.context())
            except Exception as exc:
                message = str(exc)
                if not any(n in message for n in (victim.name, victim.stem, *REQUIRED_COLUMNS)):
                    fail(
                        f"load() with a damaged {victim.name} raised without naming the file or its table: "
                        f"{message[:200]}"
                    )
                refused.append(victim.name)
                continue
            if self._ingest_same(good, data) is not None:
                fail(f"load() with a damaged {victim.name} returned other data instead of raising an error naming it")
        if not refused:
            raise CheckSkipped(f"damaging each of {len(files[:MAX_DAMAGED_FILES])} file(s) changed nothing")
        return f"damaged {', '.join(refused)}: refused, naming it"

    def _expect_raise(self, what: str, func: Callable[[], Any]) -> BaseException:
        try:
            result = func()
        except Exception as exc:
            return exc
        fail(f"{what} returned {type(result).__name__} instead of raising an error that names the problem")
        raise AssertionError  # unreachable

    # -------------------------------------------------------- validate

    def _validate_tables(self) -> dict[str, pl.DataFrame]:
        w = self.world
        return {"users": w.users, "items": w.items, "interactions": w.interactions}

    @staticmethod
    def _visible(table: str, tables: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
        """What the stage's blocking check of ``table`` passes as ``tables``: the users and items
        checks see their own table only, the interactions check sees all three."""
        return dict(tables) if table == "interactions" else {table: tables[table]}

    def _validate_one(self, plugin: Plugin, table: str, tables: Mapping[str, pl.DataFrame], what: str) -> Any:
        visible = self._visible(table, tables)
        ctx = self.context()
        return self.call(what, lambda: plugin.validate(table, visible[table], visible, ctx))  # type: ignore[attr-defined]

    def _validate_all(self, tables: Mapping[str, pl.DataFrame]) -> dict[str, Any]:
        plugin = self.make()
        return {
            t: self._validate_one(plugin, t, tables, f"validate({t!r})") for t in ("users", "items", "interactions")
        }

    def _validate_main(self) -> dict[str, Any]:
        return self._validate_all(self._validate_tables())

    @staticmethod
    def _verdicts(outcome: ValidationOutcome) -> list[tuple]:
        return [(r.expectation, r.column, r.success, r.unexpected_count) for r in outcome.results]

    def _validate_same(self, a: dict, b: dict) -> str | None:
        for t in a:
            if self._verdicts(a[t]) != self._verdicts(b[t]):
                return f"the verdicts on {t}"
        return None

    def _check_outcome(self, table: str, outcome: Any, frame: pl.DataFrame) -> None:
        if not isinstance(outcome, ValidationOutcome):
            fail(f"validate({table!r}) must return ValidationOutcome, got {type(outcome).__name__}")
        if outcome.table != table:
            fail(f"validate({table!r}) returned an outcome for table {outcome.table!r}")
        if not outcome.results:
            fail(f"validate({table!r}) returned no expectation results")
        if outcome.row_count != frame.height:
            fail(f"validate({table!r}).row_count is {outcome.row_count}, the table has {frame.height} rows")

    def _validate_output_schema(self) -> str:
        outcomes = self.main_or_fail()
        for table, frame in self._validate_tables().items():
            self._check_outcome(table, outcomes[table], frame)
        return ", ".join(f"{t}: {len(o.results)} expectations" for t, o in outcomes.items())

    def _validate_dtypes(self) -> str:
        for table, outcome in self.main_or_fail().items():
            if not isinstance(outcome, ValidationOutcome):
                fail(f"validate({table!r}) must return ValidationOutcome, got {type(outcome).__name__}")
            if not isinstance(outcome.row_count, int):
                fail(f"{table}: row_count must be an int, got {type(outcome.row_count).__name__}")
            for r in outcome.results:
                if not isinstance(r, ExpectationOutcome):
                    fail(f"{table}: results must be ExpectationOutcome, got {type(r).__name__}")
                if not (isinstance(r.expectation, str) and r.expectation):
                    fail(f"{table}: an expectation has no name")
                if not (r.column is None or isinstance(r.column, str)):
                    fail(f"{table}: {r.expectation}.column must be a str or None, got {type(r.column).__name__}")
                if not isinstance(r.success, bool):
                    fail(f"{table}: {r.expectation}.success must be a bool, got {type(r.success).__name__}")
                if not (isinstance(r.unexpected_count, int) and r.unexpected_count >= 0):
                    fail(f"{table}: {r.expectation}.unexpected_count must be an int >= 0")
                if not isinstance(r.sample, list):
                    fail(f"{table}: {r.expectation}.sample must be a list")
        return ""

    def _validate_row_invariants(self) -> str:
        tables = self._validate_tables()
        for table, outcome in self.main_or_fail().items():
            self._check_outcome(table, outcome, tables[table])
            if not outcome.success:
                fail(f"valid data was rejected: {outcome.describe()}")
        return "valid data passes"

    def _validate_empty_input(self) -> str:
        tables = {t: f.head(0) for t, f in self._validate_tables().items()}
        for table, outcome in self._validate_all(tables).items():
            self._check_outcome(table, outcome, tables[table])
            if outcome.success:
                fail(f"an empty {table} table passed validation (nothing downstream can use it)")
        return "empty tables are rejected"

    def _validate_malformed_input(self) -> str:
        good = self._validate_tables()
        users, inter = good["users"], good["interactions"]
        defects: list[tuple[str, str, str, pl.DataFrame]] = [
            ("interactions", "exposure", "a missing required column", inter.drop("exposure")),
            ("users", "user_id", "a duplicated key", pl.concat([users, users.head(1)])),
            (
                "users",
                "user_id",
                "a null key",
                users.with_columns(
                    pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("user_id")).alias("user_id")
                ),
            ),
            (
                "interactions",
                "exposure",
                "an exposure of 2",
                inter.with_columns(
                    pl.when(pl.int_range(pl.len()) == 0).then(2).otherwise(pl.col("exposure")).alias("exposure")
                ),
            ),
            (
                "interactions",
                "outcome",
                "a non-numeric outcome",
                inter.with_columns(pl.col("outcome").cast(pl.String).replace({"0": "no", "1": "yes"})),
            ),
            (
                "interactions",
                "user_id",
                "a user_id not in users",
                pl.concat([inter, inter.head(1).with_columns(pl.lit("no-such-user").alias("user_id"))]),
            ),
        ]
        plugin = self.make()
        missed = []
        for table, column, what, frame in defects:
            outcome = self._validate_one(plugin, table, {**good, table: frame}, f"validate({table!r}) on {what}")
            self._check_outcome(table, outcome, frame)
            named = any(f.column == column for f in outcome.failures) or column in outcome.describe()
            if outcome.success or not named:
                missed.append(f"{table} with {what} ({'passed' if outcome.success else 'not named: ' + column})")
        if missed:
            fail("defects not reported: " + "; ".join(missed))
        return f"{len(defects)} defects reported"

    # -------------------------------------------------------- embed

    @cached_property
    def texts(self) -> list[str]:
        return item_texts(self.world.items)

    def _embed_main(self) -> tuple[Any, Any]:
        plugin = self.make()
        ctx = self.context()
        vectors = self.call("embed()", lambda: plugin.embed(self.texts, ctx))  # type: ignore[attr-defined]
        key = self.call("model_key()", lambda: plugin.model_key())  # type: ignore[attr-defined]
        self._embed_plugin = plugin
        return vectors, key

    def _embed_same(self, a: tuple, b: tuple) -> str | None:
        if a[1] != b[1]:
            return f"model_key() {a[1]!r} vs {b[1]!r}"
        if np.shape(a[0]) != np.shape(b[0]) or not np.allclose(a[0], b[0], atol=1e-6, rtol=0):
            return "the vectors"
        return None

    def _vectors(self) -> np.ndarray:
        vectors, _ = self.main_or_fail()
        if not isinstance(vectors, np.ndarray):
            fail(f"embed() must return a numpy array, got {type(vectors).__name__}")
        return vectors

    def _embed_output_schema(self) -> str:
        vectors = self._vectors()
        _, key = self.main
        if vectors.ndim != 2 or vectors.shape[0] != len(self.texts) or vectors.shape[1] < 1:
            fail(f"embed() of {len(self.texts)} texts must have shape ({len(self.texts)}, dim), got {vectors.shape}")
        if not (isinstance(key, str) and key):
            fail(f"model_key() must return a non-empty str, got {key!r}")
        runtime = self.call("describe_runtime()", lambda: self._embed_plugin.describe_runtime())  # type: ignore[attr-defined]
        if not isinstance(runtime, Mapping):
            fail(f"describe_runtime() must return a dict, got {type(runtime).__name__}")
        return f"dim {vectors.shape[1]}"

    def _embed_dtypes(self) -> str:
        vectors = self._vectors()
        if vectors.dtype != np.float32:
            fail(f"embed() must return float32, got {vectors.dtype}")
        return ""

    def _unit_rows(self, vectors: np.ndarray, what: str) -> None:
        if not np.isfinite(vectors).all():
            fail(f"{what}: {int((~np.isfinite(vectors)).any(axis=1).sum())} row(s) hold NaN or inf")
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        off = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
        if off.size:
            fail(f"{what}: rows must have unit L2 norm; row {int(off[0])} has norm {norms[off[0]]:.4f}")

    def _embed_row_invariants(self) -> str:
        vectors = self._vectors()
        self._unit_rows(vectors, "embed()")
        plugin, ctx, texts = self._embed_plugin, self.context(), self.texts
        again = self.call("embed() of the texts reversed", lambda: plugin.embed(texts[::-1], ctx))  # type: ignore[attr-defined]
        if np.shape(again) != vectors.shape or not np.allclose(np.asarray(again)[::-1], vectors, atol=1e-4, rtol=0):
            fail("a text's vector depends on the other texts in the call (reversed order gave other vectors)")
        some = self.call("embed() of three texts", lambda: plugin.embed(texts[:2] + texts[:1], ctx))  # type: ignore[attr-defined]
        if not np.allclose(np.asarray(some), vectors[[0, 1, 0]], atol=1e-4, rtol=0):
            fail("a text's vector depends on the batch it is in (a subset gave other vectors)")
        return "unit rows, independent of order and batch"

    def _embed_empty_input(self) -> str:
        vectors = self._vectors()
        plugin = self._embed_plugin
        empty = self.call("embed([])", lambda: plugin.embed([], self.context()))  # type: ignore[attr-defined]
        if not isinstance(empty, np.ndarray) or empty.shape != (0, vectors.shape[1]):
            fail(f"embed([]) must return an array of shape (0, {vectors.shape[1]}), got {np.shape(empty)}")
        if empty.dtype != np.float32:
            fail(f"embed([]) must be float32, got {empty.dtype}")
        return ""

    def _embed_malformed_input(self) -> str:
        self._vectors()
        odd = ["", "   ", "word " * 4000, "😀 naïve café – 東京 Ελλάδα", "\x00\t\n\r", "12345"]
        plugin = self._embed_plugin
        vectors = self.call("embed() of empty, long and unusual texts", lambda: plugin.embed(odd, self.context()))  # type: ignore[attr-defined]
        if np.shape(vectors) != (len(odd), self.main[0].shape[1]):
            fail(f"embed() of {len(odd)} unusual texts returned shape {np.shape(vectors)}")
        self._unit_rows(np.asarray(vectors), "embed() of empty, long and unusual texts")
        return ""

    # -------------------------------------------------------- structure

    @cached_property
    def structure_knowledge(self) -> Knowledge:
        """The stage's knowledge, plus one required and one forbidden edge the plugin must honour."""
        k = self.inputs.knowledge
        first = k.tiers[0][0]
        return Knowledge(
            tiers=k.tiers, exogenous=k.exogenous, required=[(TREATMENT, OUTCOME)], forbidden=[(first, OUTCOME)]
        )

    def _learn(self, data: pl.DataFrame, what: str) -> Any:
        plugin = self.make()
        return self.call(what, lambda: plugin.learn(data, self.structure_knowledge, self.context()))  # type: ignore[attr-defined]

    def _structure_main(self) -> Any:
        return self._learn(self.inputs.variables, "learn()")

    def _structure_same(self, a: Any, b: Any) -> str | None:
        return None if sorted(map(tuple, a)) == sorted(map(tuple, b)) else "the edges"

    def _dag_problem(self, edges: Any, data: pl.DataFrame, knowledge: Knowledge | None = None) -> str | None:
        if not isinstance(edges, list | tuple):
            return f"learn() must return a list of (cause, effect) pairs, got {type(edges).__name__}"
        for e in edges:
            if not (isinstance(e, list | tuple) and len(e) == 2 and all(isinstance(v, str) for v in e)):
                return f"every edge must be a (str, str) pair, got {e!r}"
        pairs = [tuple(e) for e in edges]
        unknown = sorted({v for e in pairs for v in e} - set(data.columns))
        if unknown:
            return f"edges name variables not in the table: {unknown[:5]}"
        loops = [e for e in pairs if e[0] == e[1]]
        if loops:
            return f"self-loops: {loops[:3]}"
        if len(set(pairs)) != len(pairs):
            return "duplicated edges"
        cycle = _find_cycle(pairs)
        if cycle:
            return f"not acyclic: {' -> '.join(cycle)}"
        knowledge = knowledge or self.structure_knowledge
        against = sorted(set(pairs) & knowledge.forbidden_edges(list(data.columns)))
        if against:
            return f"edges the knowledge forbids (tiers, exogenous or forbidden list): {against[:3]}"
        missing = [e for e in knowledge.required if e not in set(pairs)]
        if missing:
            return f"required edges missing: {missing}"
        return None

    def _structure_output_schema(self) -> str:
        edges = self.main_or_fail()
        if not isinstance(edges, list | tuple):
            fail(f"learn() must return a list of (cause, effect) pairs, got {type(edges).__name__}")
        for e in edges:
            if not (isinstance(e, list | tuple) and len(e) == 2):
                fail(f"every edge must be a (cause, effect) pair, got {e!r}")
        return f"{len(edges)} edges"

    def _structure_dtypes(self) -> str:
        for e in self.main_or_fail():
            if not all(isinstance(v, str) for v in e):
                fail(f"variable names must be str, got {tuple(type(v).__name__ for v in e)} in {e!r}")
        return ""

    def _structure_row_invariants(self) -> str:
        problem = self._dag_problem(self.main_or_fail(), self.inputs.variables)
        if problem:
            fail(problem)
        return "a DAG over the table's columns that honours the knowledge"

    def _structure_empty_input(self) -> str:
        data = self.inputs.variables.head(0)
        return self._structure_survives(data, "learn() on a table with no rows", clues=("empty", "row", "sample"))

    def _structure_malformed_input(self) -> str:
        data = self.inputs.variables
        # Rating data: every logged pair was exposed. The stage passes such tables (with its own
        # knowledge: no required edge out of a constant) and a DAG is due.
        constant = data.with_columns(pl.lit("1").alias(TREATMENT))
        what = "learn() where exposure takes one value"
        verdicts = [self._structure_survives(constant, what, clues=(), knowledge=self.inputs.knowledge)]
        column = self.structure_knowledge.tiers[0][0]
        holed = data.with_columns(
            pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col(column)).alias(column)
        )
        what = f"learn() on a table with nulls in {column}"
        verdicts.append(self._structure_survives(holed, what, clues=(column, "null", "NaN", "missing")))
        return "; ".join(verdicts)

    def _structure_survives(
        self, data: pl.DataFrame, what: str, clues: Sequence[str], knowledge: Knowledge | None = None
    ) -> str:
        """A valid DAG; or, where ``clues`` allow refusing, an error whose message holds one."""
        knowledge = knowledge or self.structure_knowledge
        try:
            edges = self.make().learn(data, knowledge, self.context())  # type: ignore[attr-defined]
        except Exception as exc:
            if not clues:
                fail(f"{what} must return a DAG, but raised {describe_exception(exc)}")
            if not any(c.lower() in str(exc).lower() for c in clues):
                fail(f"{what} raised an error that does not say what is wrong: {describe_exception(exc)}")
            return f"{what}: refused ({describe_exception(exc)})"
        problem = self._dag_problem(edges, data, knowledge)
        if problem:
            fail(f"{what}: {problem}")
        return f"{what}: a valid DAG ({len(edges)} edges)"

    # -------------------------------------------------------- effects

    def _estimate(self, inputs: EffectInputs, what: str) -> Any:
        plugin = self.make()
        return self.call(what, lambda: plugin.estimate(inputs, self.context()))  # type: ignore[attr-defined]

    def _effects_main(self) -> Any:
        return self._estimate(self.inputs.effect_inputs(), "estimate()")

    def _effects_same(self, a: pl.DataFrame, b: pl.DataFrame) -> str | None:
        return _frame_difference(a, b)

    def _effect_frame(self, frame: Any, what: str) -> pl.DataFrame:
        if not isinstance(frame, pl.DataFrame):
            fail(f"{what} must return a polars DataFrame, got {type(frame).__name__}")
        if frame.columns != EFFECT_COLUMNS:
            fail(f"{what} must have columns {EFFECT_COLUMNS}, got {frame.columns}")
        if frame.filter(pl.col("estimand") == "ATE").is_empty():
            fail(f"{what} has no row with estimand 'ATE' (the first one is the headline)")
        return frame

    def _effects_output_schema(self) -> str:
        frame = self._effect_frame(self.main_or_fail(), "estimate()")
        return f"{frame.height} rows"

    def _effects_dtypes(self) -> str:
        frame = self._effect_frame(self.main_or_fail(), "estimate()")
        for col in EFFECT_COLUMNS[:4]:
            if frame.schema[col] != pl.String:
                fail(f"{col} must be a string column, got {frame.schema[col]}")
        for col in EFFECT_COLUMNS[4:]:
            if not frame.schema[col].is_float():
                fail(f"{col} must be a float column, got {frame.schema[col]}")
        return ""

    def _effects_row_invariants(self) -> str:
        frame = self._effect_frame(self.main_or_fail(), "estimate()")
        for col in EFFECT_COLUMNS[:4]:
            if frame[col].null_count():
                fail(f"{col} has null(s)")
        for col, want in (("treatment", TREATMENT), ("outcome", OUTCOME)):
            odd = set(frame[col].to_list()) - {want}
            if odd:
                fail(f"every row's {col} must be {want!r} (the input's), found {sorted(odd)}")
        head = frame.filter(pl.col("estimand") == "ATE").row(0, named=True)
        if not (head["estimate"] is not None and np.isfinite(head["estimate"]) and -1 <= head["estimate"] <= 1):
            fail(
                f"the headline ATE ({head['estimator']}) must be a finite effect in [-1, 1] on 0/1 outcomes, "
                f"got {head['estimate']}"
            )
        both = frame.filter(pl.col("ci_low").is_not_nan() & pl.col("ci_high").is_not_nan())
        inverted = both.filter(pl.col("ci_low") > pl.col("ci_high"))
        if inverted.height:
            fail(f"ci_low > ci_high in {inverted.height} row(s), e.g. {inverted.row(0, named=True)}")
        return f"headline {head['estimator']} = {head['estimate']:.4f}"

    def _check_not_identifiable(self, frame: Any, what: str) -> None:
        frame = self._effect_frame(frame, what)
        head = frame.filter(pl.col("estimand") == "ATE").row(0, named=True)
        if head["estimate"] is not None and not np.isnan(head["estimate"]):
            fail(
                f"{what}: the effect is not identifiable, so the headline estimate must be NaN, got {head['estimate']}"
            )

    def _effects_empty_input(self) -> str:
        base = self.inputs.effect_inputs()
        empty = base.take(np.arange(0))
        self._check_not_identifiable(self._estimate(empty, "estimate() on no rows"), "estimate() on no rows")
        single = base.take(np.flatnonzero((base.variables[TREATMENT] == "1").to_numpy()))
        what = "estimate() where every row is treated"
        self._check_not_identifiable(self._estimate(single, what), what)
        return "not identifiable: NaN headline"

    def _effects_malformed_input(self) -> str:
        base = self.inputs.effect_inputs()
        features = base.features
        if features is not None:
            features = dataclasses.replace(features, frame=features.frame.drop(OUTCOME))
        broken = dataclasses.replace(base, variables=base.variables.drop(OUTCOME), network=None, features=features)
        exc = self._expect_raise(
            "estimate() on a table without the outcome column",
            lambda: self.make().estimate(broken, self.context()),  # type: ignore[attr-defined]
        )
        if OUTCOME not in str(exc):
            fail(f"estimate() without the outcome column raised without naming it: {describe_exception(exc)}")
        return describe_exception(exc)

    # -------------------------------------------------------- ranking

    @cached_property
    def k(self) -> int | None:
        k = getattr(self.config, "k", None)
        return int(k) if isinstance(k, int) else None

    def _rank(self, inputs: RankingInputs, what: str) -> Any:
        plugin = self.make()
        return self.call(what, lambda: plugin.rank(inputs, self.context()))  # type: ignore[attr-defined]

    def _ranking_main(self) -> Any:
        return self._rank(self.inputs.ranking_inputs(), "rank()")

    def _ranking_same(self, a: RankingOutput, b: RankingOutput) -> str | None:
        for name in ("recommendations", "test_scores"):
            diff = _frame_difference(getattr(a, name), getattr(b, name))
            if diff:
                return f"{name}: {diff}"
        return None

    def _ranking_output(self, out: Any, what: str) -> RankingOutput:
        if not isinstance(out, RankingOutput):
            fail(f"{what} must return RankingOutput, got {type(out).__name__}")
        for name, columns in (("recommendations", RECOMMENDATION_COLUMNS), ("test_scores", TEST_SCORE_COLUMNS)):
            frame = getattr(out, name)
            if not isinstance(frame, pl.DataFrame):
                fail(f"{what}.{name} must be a polars DataFrame, got {type(frame).__name__}")
            if frame.columns != columns:
                fail(f"{what}.{name} must have columns {columns}, got {frame.columns}")
        return out

    def _ranking_output_schema(self) -> str:
        out = self._ranking_output(self.main_or_fail(), "rank()")
        return f"{out.recommendations.height} recommendations, {out.test_scores.height} test scores"

    def _ranking_dtypes(self) -> str:
        out = self._ranking_output(self.main_or_fail(), "rank()")
        users, items = self.world.users, self.world.items
        for name in ("recommendations", "test_scores"):
            frame = getattr(out, name)
            for col, owner in (("user_id", users), ("item_id", items)):
                if frame.schema[col] != owner.schema[col]:
                    fail(f"{name}.{col} must have the input's dtype ({owner.schema[col]}), got {frame.schema[col]}")
            if not frame.schema["score"].is_float():
                fail(f"{name}.score must be a float column, got {frame.schema['score']}")
        if not out.recommendations.schema["rank"].is_integer():
            fail(f"recommendations.rank must be an integer column, got {out.recommendations.schema['rank']}")
        return ""

    def _check_rankings(self, out: RankingOutput, inputs: RankingInputs, what: str) -> None:
        recs, scores = out.recommendations, out.test_scores
        if recs.select("user_id", "item_id").is_duplicated().any():
            fail(f"{what}: a (user, item) pair is recommended twice")
        for col, owner in (("user_id", inputs.users), ("item_id", inputs.items)):
            unknown = recs.join(owner.select(col), on=col, how="anti")[col].unique().to_list()
            if unknown:
                fail(f"{what}: recommendations name {col}s not in the input, e.g. {unknown[:3]!r}")
        seen = train_rows(inputs.interactions).select("user_id", "item_id").unique()
        repeat = recs.join(seen, on=["user_id", "item_id"], how="semi")
        if repeat.height:
            fail(f"{what}: {repeat.height} recommended pair(s) are in the user's training log, e.g. {repeat.row(0)}")
        if recs["score"].null_count() or recs["score"].is_nan().any():
            fail(f"{what}: recommendations have null or NaN scores")
        per_user = recs.sort("user_id", "rank").group_by("user_id", maintain_order=True).agg("rank", "score")
        for user, ranks, user_scores in per_user.iter_rows():
            if list(ranks) != list(range(1, len(ranks) + 1)):
                fail(f"{what}: user {user!r} has ranks {list(ranks)[:12]} (expected 1..{len(ranks)})")
            if any(b > a + 1e-12 for a, b in zip(user_scores, user_scores[1:], strict=False)):
                fail(f"{what}: user {user!r}'s scores rise with rank: {list(user_scores)[:6]}")
        unseen = inputs.users.select("user_id").join(inputs.items.select("item_id"), how="cross")
        unseen = unseen.join(seen, on=["user_id", "item_id"], how="anti").group_by("user_id").len()
        got = unseen.join(recs.group_by("user_id").len().rename({"len": "got"}), on="user_id", how="left")
        got = got.with_columns(pl.col("got").fill_null(0))
        want = pl.min_horizontal("len", pl.lit(self.k)) if self.k is not None else pl.min_horizontal("len", 1)
        short = got.filter(pl.col("got") < want) if self.k is None else got.filter(pl.col("got") != want)
        if short.height:
            row = short.row(0, named=True)
            expected = f"{min(row['len'], self.k)} (k={self.k})" if self.k is not None else "at least 1"
            fail(f"{what}: user {row['user_id']!r} got {row['got']} recommendations, expected {expected}")
        tests = _test_rows(inputs.interactions).select("user_id", "item_id")
        if scores.height != tests.height or scores.select("user_id", "item_id").is_duplicated().any():
            fail(f"{what}: test_scores must hold one row per test pair ({tests.height}), got {scores.height}")
        unscored = tests.join(scores, on=["user_id", "item_id"], how="anti")
        if unscored.height:
            fail(f"{what}: {unscored.height} test pair(s) without a score, e.g. {unscored.row(0)}")
        if scores["score"].null_count() or scores["score"].is_nan().any() or scores["score"].is_infinite().any():
            fail(f"{what}: test_scores hold null, NaN or infinite scores")

    def _ranking_row_invariants(self) -> str:
        out = self._ranking_output(self.main_or_fail(), "rank()")
        self._check_rankings(out, self.inputs.ranking_inputs(), "rank()")
        return "top-k of unseen items per user; every test pair scored once"

    def _ranking_empty_input(self) -> str:
        self.main_or_fail()
        base = self.inputs.ranking_inputs()
        inputs = dataclasses.replace(base, interactions=train_rows(base.interactions))
        what = "rank() with no test pairs"
        out = self._ranking_output(self._rank(inputs, what), what)
        if out.test_scores.height:
            fail(f"{what} returned {out.test_scores.height} test scores")
        self._check_rankings(out, inputs, what)
        return ""

    def _ranking_malformed_input(self) -> str:
        self.main_or_fail()
        base = self.inputs.ranking_inputs()
        users, inter = base.users, base.interactions
        newcomer = users.head(1).with_columns(pl.lit(_unused_id(users["user_id"], "newcomer")).alias("user_id"))
        stranger = _unused_id(users["user_id"], "stranger")
        unknown_item = _unused_id(base.items["item_id"], "unknown-item")
        extra = inter.filter(pl.col("split") == "test").head(2)
        extra = pl.concat(
            [
                extra.head(1).with_columns(pl.lit(stranger).cast(inter.schema["user_id"]).alias("user_id")),
                extra.tail(1).with_columns(pl.lit(unknown_item).cast(inter.schema["item_id"]).alias("item_id")),
            ]
        )
        inputs = dataclasses.replace(
            base,
            users=pl.concat([users, newcomer.cast(users.schema)]),  # type: ignore[arg-type]
            interactions=pl.concat([inter, extra]),
        )
        what = "rank() with a user who has no log and test pairs of unknown ids"
        out = self._ranking_output(self._rank(inputs, what), what)
        self._check_rankings(out, inputs, what)
        return "cold-start user recommended; unknown test pairs scored"


def _unused_id(ids: pl.Series, stem: str) -> Any:
    if ids.dtype.is_integer():
        return int(ids.max() or 0) + 1_000_000  # type: ignore[operator]
    return f"kit-{stem}"


def _find_cycle(edges: Iterable[tuple[str, str]]) -> list[str] | None:
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in list(graph):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def _frame_difference(a: Any, b: Any) -> str | None:
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


# ------------------------------------------------------------------ entry points

_KITS: dict[tuple, Kit] = {}


def _kit(plugin: type[Plugin] | Plugin, config: Any, seed: int, world: Dataset | None) -> Kit:
    cls = type(plugin) if isinstance(plugin, Plugin) else plugin
    if isinstance(plugin, Plugin) and config is None:
        config = plugin.config
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise TypeError(f"expected a causalrec plugin class or instance, got {plugin!r}")
    resolved = _plugin_config(cls, config)
    key = (cls, type(resolved), resolved.model_dump_json(), seed, id(world) if world is not None else None)
    if key not in _KITS:
        _KITS[key] = Kit(cls, resolved, seed, world)
    return _KITS[key]


def check_conformance(
    plugin: type[Plugin] | Plugin,
    config: PluginConfig | Mapping[str, Any] | None = None,
    *,
    checks: Sequence[str] | None = None,
    seed: int = 0,
    world: Dataset | None = None,
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
    plugin: type[Plugin] | Plugin,
    config: PluginConfig | Mapping[str, Any] | None = None,
    *,
    checks: Sequence[str] | None = None,
    seed: int = 0,
    world: Dataset | None = None,
) -> ConformanceReport:
    """``check_conformance``, raising ConformanceError (an AssertionError) that lists every
    failed check when there is one."""
    report = check_conformance(plugin, config, checks=checks, seed=seed, world=world)
    if not report.ok:
        raise ConformanceError(report)
    return report
