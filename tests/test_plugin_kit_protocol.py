"""The conformance kit asks only what each stage's protocol declares.

For every stage, a minimal third-party plugin written only against the documented protocol:
it subclasses the stage's protocol class, implements its abstract methods and nothing else (no
optional hook), and must pass every check of the kit. Each one is small but real: it would do
its stage's job in a pipeline run.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import Field

from causalrec_assets.plugin_api import PluginConfig, stage_bases
from causalrec_assets.stages.effects.protocol import EFFECT_COLUMNS, EffectsPlugin
from causalrec_assets.stages.embed.protocol import EmbedPlugin
from causalrec_assets.stages.ingest.protocol import Dataset, IngestPlugin
from causalrec_assets.stages.ranking.protocol import RankingOutput, RankingPlugin
from causalrec_assets.stages.structure.protocol import StructurePlugin
from causalrec_assets.stages.validate.protocol import ExpectationOutcome, ValidatePlugin, ValidationOutcome
from causalrec_assets.testing import CHECKS, assert_conformance

KEYS = {"users": "user_id", "items": "item_id", "interactions": "exposure"}
REQUIRED = {"users": ["user_id"], "items": ["item_id"], "interactions": ["user_id", "item_id", "exposure", "outcome"]}


class CsvConfig(PluginConfig):
    path: str = Field(default="", description="Directory holding users.csv, items.csv and interactions.csv.")


class CsvIngest(IngestPlugin):
    """Reads the three canonical tables from CSV files; every failure names the file."""

    Config = CsvConfig

    def load(self, context):
        tables = {}
        for table, key in KEYS.items():
            path = Path(self.config.path) / f"{table}.csv"
            try:
                tables[table] = pl.read_csv(path)
            except Exception as exc:
                raise ValueError(f"cannot read {path}: {exc}") from exc
            if key not in tables[table].columns:
                raise ValueError(f"{path} has no {key} column")
        return Dataset(**tables)


class RulesValidate(ValidatePlugin):
    """Non-empty tables, required columns present and non-null, unique keys, 0/1 exposure,
    numeric outcome, interactions of known users."""

    def validate(self, table, frame, tables, context):
        found = [ExpectationOutcome("not_empty", None, frame.height > 0)]
        for col in REQUIRED[table]:
            nulls = frame[col].null_count() if col in frame.columns else frame.height
            found.append(ExpectationOutcome("present_and_not_null", col, col in frame.columns and nulls == 0, nulls))
        if table != "interactions" and REQUIRED[table][0] in frame.columns:
            dupes = int(frame[REQUIRED[table][0]].is_duplicated().sum())
            found.append(ExpectationOutcome("unique", REQUIRED[table][0], dupes == 0, dupes))
        if table == "interactions":
            if "exposure" in frame.columns:
                bad = frame.filter(~pl.col("exposure").is_in([0, 1])).height
                found.append(ExpectationOutcome("zero_or_one", "exposure", bad == 0, bad))
            if "outcome" in frame.columns:
                found.append(ExpectationOutcome("numeric", "outcome", frame.schema["outcome"].is_numeric()))
            if "users" in tables and "user_id" in frame.columns:
                known = tables["users"].select(pl.col("user_id").cast(pl.String))
                bad = frame.select(pl.col("user_id").cast(pl.String)).join(known, on="user_id", how="anti").height
                found.append(ExpectationOutcome("known_user", "user_id", bad == 0, bad))
        return ValidationOutcome(table=table, row_count=frame.height, results=found)


class HashEmbed(EmbedPlugin):
    """A hashed bag of words in 16 dimensions, plus a constant one so that no row is zero."""

    def model_key(self):
        return "hash-16"

    def embed(self, texts, context):
        out = np.zeros((len(texts), 16), dtype=np.float32)
        out[:, 15] = 1.0
        for row, text in enumerate(texts):
            for token in str(text).lower().split():
                out[row, zlib.crc32(token.encode()) % 15] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class KnowledgeStructure(StructurePlugin):
    """Trusts the knowledge alone: its required edges, and every edge it allows from the
    earlier tiers into the last one."""

    def learn(self, data, knowledge, context):
        edges = [tuple(e) for e in knowledge.required]
        forbidden = knowledge.forbidden_edges(data.columns)
        sinks = knowledge.tiers[-1] if knowledge.tiers else []
        causes = [v for tier in knowledge.tiers[:-1] for v in tier]
        edges += [(a, b) for b in sinks for a in causes if (a, b) not in forbidden and (a, b) not in edges]
        return edges


EFFECT_SCHEMA = {c: pl.String for c in EFFECT_COLUMNS[:4]} | {c: pl.Float64 for c in EFFECT_COLUMNS[4:]}


class DifferenceInMeans(EffectsPlugin):
    """The naive difference in mean outcome between exposed and unexposed rows, with a normal
    95% interval; NaN where either arm has fewer than two rows."""

    def estimate(self, inputs, context):
        y = inputs.variables[inputs.outcome].cast(pl.Float64).to_numpy()
        t = (inputs.variables[inputs.treatment] == "1").to_numpy()
        effect = low = high = float("nan")
        if min(t.sum(), (~t).sum()) >= 2:
            effect = float(y[t].mean() - y[~t].mean())
            se = float(np.sqrt(y[t].var(ddof=1) / t.sum() + y[~t].var(ddof=1) / (~t).sum()))
            low, high = effect - 1.96 * se, effect + 1.96 * se
        row = [inputs.treatment, inputs.outcome, "ATE", "difference_in_means", effect, low, high]
        return pl.DataFrame([row], schema=EFFECT_SCHEMA, orient="row")


class PopularConfig(PluginConfig):
    k: int = Field(default=3, description="Recommendations per user.")


class PopularRanking(RankingPlugin):
    """Items by their positive outcomes in the training log; unknown items score 0."""

    Config = PopularConfig

    def rank(self, inputs, context):
        log = inputs.interactions
        train = log.filter(pl.col("split") == "train")
        popularity = train.group_by("item_id").agg(pl.col("outcome").cast(pl.Float64).sum().alias("score"))
        seen = train.select("user_id", "item_id").unique()
        pairs = inputs.users.select("user_id").join(inputs.items.select("item_id"), how="cross")
        unseen = pairs.join(seen, on=["user_id", "item_id"], how="anti")
        recs = (
            unseen.join(popularity, on="item_id", how="left")
            .with_columns(pl.col("score").fill_null(0.0))
            .sort(["user_id", "score", "item_id"], descending=[False, True, False])
            .group_by("user_id", maintain_order=True)
            .head(self.config.k)
            .with_columns(pl.int_range(1, pl.len() + 1).over("user_id").alias("rank"))
            .select("user_id", "item_id", "rank", "score")
        )
        tests = (
            log.filter(pl.col("split") == "test")
            .select("user_id", "item_id")
            .join(popularity, on="item_id", how="left")
            .with_columns(pl.col("score").fill_null(0.0))
            .sort("user_id", "item_id")
        )
        return RankingOutput(recommendations=recs, test_scores=tests)


MINIMAL = {
    "ingest": CsvIngest,
    "validate": RulesValidate,
    "embed": HashEmbed,
    "structure": KnowledgeStructure,
    "effects": DifferenceInMeans,
    "ranking": PopularRanking,
}


# Hooks a stage needs one of, none abstract: the minimal ranking plugin takes the pre-1.4 form.
ONE_OF = {"ranking": {"rank"}}


@pytest.mark.parametrize("stage", list(MINIMAL))
def test_a_plugin_written_only_against_the_protocol_passes_the_kit(stage: str) -> None:
    cls = MINIMAL[stage]
    base = stage_bases()[stage]
    assert cls.__bases__ == (base,)
    methods = {name for name, value in vars(cls).items() if callable(value) and not isinstance(value, type)}
    required = set(base.__abstractmethods__) | ONE_OF.get(stage, set())
    assert methods == required, "only the protocol's required methods"
    assert not cls.missing_methods()
    report = assert_conformance(cls)
    assert [r.name for r in report.results] == list(CHECKS)
    assert all(r.status == "passed" for r in report.results), report.describe()


def test_the_kit_imports_no_plugin() -> None:
    """The framework reaches plugins (the simulator too) through the entry-point registry only."""
    code = (
        "import sys, causalrec_assets.testing\n"
        "found = sorted(m for m in sys.modules if m.startswith('causalrec_plugins'))\n"
        "assert not found, found\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
