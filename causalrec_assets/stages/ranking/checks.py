"""The ranking stage's conformance checks: ``rank()`` recommends the top unseen items of every
user (``k`` of them when the Config has a ``k`` field) and scores every test pair once."""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl

from causalrec_assets.contracts import test_rows, train_rows
from causalrec_assets.stages.conformance import Kit
from causalrec_assets.stages.ingest.protocol import Dataset
from causalrec_assets.stages.kit_frames import (
    FLOAT,
    INTEGER,
    check_frame,
    fail,
    frame_difference,
    same_dtype,
    unused_id,
)
from causalrec_assets.stages.ranking.batches import recommend_all
from causalrec_assets.stages.ranking.protocol import EXPLANATION_COLUMNS, Ranker, RankingInputs, RankingOutput
from causalrec_resources.compute import ComputeResource

STAGE = "ranking"

COLUMNS = {"recommendations": ["user_id", "item_id", "rank", "score"], "test_scores": ["user_id", "item_id", "score"]}


def k_of(kit: Kit) -> int | None:
    """The plugin's ``k`` (recommendations per user) where its Config has one: a convention of
    the ranking plugins, not part of the protocol."""
    k = getattr(kit.config, "k", None)
    return int(k) if isinstance(k, int) else None


def rank(kit: Kit, inputs: RankingInputs, what: str) -> Any:
    plugin = kit.make()
    return kit.call(what, lambda: plugin.rank(inputs, kit.context()))


def run(kit: Kit) -> Any:
    return rank(kit, kit.inputs.ranking_inputs(), "rank()")


def same(a: RankingOutput, b: RankingOutput) -> str | None:
    for name in COLUMNS:
        diff = frame_difference(getattr(a, name), getattr(b, name))
        if diff:
            return f"{name}: {diff}"
    return None


def output(out: Any, what: str, world: Dataset | None = None) -> RankingOutput:
    """Fail unless ``out`` is a RankingOutput of two frames with the stage's columns (and, given
    the world, the stage's dtypes: the input's id dtypes, float scores, integer ranks)."""
    if not isinstance(out, RankingOutput):
        fail(f"{what} must return RankingOutput, got {type(out).__name__}")
    for name, columns in COLUMNS.items():
        dtypes = None
        if world is not None:
            ids = {c: same_dtype(owner.schema[c]) for c, owner in (("user_id", world.users), ("item_id", world.items))}
            dtypes = {**ids, "rank": INTEGER, "score": FLOAT}
        check_frame(getattr(out, name), f"{what}.{name}", columns, dtypes=dtypes)
    return out


def check_output_schema(kit: Kit) -> str:
    out = output(kit.main_or_fail(), "rank()")
    return f"{out.recommendations.height} recommendations, {out.test_scores.height} test scores"


def check_dtypes(kit: Kit) -> str:
    output(kit.main_or_fail(), "rank()", kit.world)
    return ""


def check_rankings(kit: Kit, out: RankingOutput, inputs: RankingInputs, what: str) -> None:
    """Fail unless ``out`` is a valid answer to ``inputs``: known ids, nothing already seen,
    ranks 1..n with non-increasing scores, ``k`` per user, one finite score per test pair."""
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
    k = k_of(kit)
    unseen = inputs.users.select("user_id").join(inputs.items.select("item_id"), how="cross")
    unseen = unseen.join(seen, on=["user_id", "item_id"], how="anti").group_by("user_id").len()
    got = unseen.join(recs.group_by("user_id").len().rename({"len": "got"}), on="user_id", how="left")
    got = got.with_columns(pl.col("got").fill_null(0))
    if k is None:
        short = got.filter(pl.col("got") < pl.min_horizontal("len", 1))
    else:
        short = got.filter(pl.col("got") != pl.min_horizontal("len", pl.lit(k)))
    if short.height:
        row = short.row(0, named=True)
        expected = f"{min(row['len'], k)} (k={k})" if k is not None else "at least 1"
        fail(f"{what}: user {row['user_id']!r} got {row['got']} recommendations, expected {expected}")
    tests = test_rows(inputs.interactions).select("user_id", "item_id")
    if scores.height != tests.height or scores.select("user_id", "item_id").is_duplicated().any():
        fail(f"{what}: test_scores must hold one row per test pair ({tests.height}), got {scores.height}")
    unscored = tests.join(scores, on=["user_id", "item_id"], how="anti")
    if unscored.height:
        fail(f"{what}: {unscored.height} test pair(s) without a score, e.g. {unscored.row(0)}")
    if scores["score"].null_count() or scores["score"].is_nan().any() or scores["score"].is_infinite().any():
        fail(f"{what}: test_scores hold null, NaN or infinite scores")


def check_batches_agree(kit: Kit, inputs: RankingInputs, out: RankingOutput) -> str:
    """A ranker that ``fit``s (plugin API 1.4) must give every user the same list whatever the
    batches and shards it is asked in: small batches over three shards equal ``rank()``'s."""
    plugin = kit.make()
    if not plugin.fits():
        return ""
    ranker = kit.call("fit()", lambda: plugin.fit(inputs, kit.context()))
    if not isinstance(ranker, Ranker):
        fail(f"fit() must return a Ranker, got {type(ranker).__name__}")
    small = ComputeResource(engine="local", shards=3)
    batched = kit.call(
        "recommend() in batches", lambda: recommend_all(ranker, inputs.users, inputs.interactions, small, 7)
    )
    diff = frame_difference(batched.sort("user_id", "rank"), out.recommendations.sort("user_id", "rank"))
    if diff:
        fail(f"lists asked in batches of 7 users over 3 shards differ from rank()'s: {diff}")
    return "; the same lists in batches of 7 users over 3 shards" + check_explanations(kit, ranker, out, inputs)


def check_explanations(kit: Kit, ranker: Ranker, out: RankingOutput, inputs: RankingInputs) -> str:
    """A ranker that explains (plugin API 1.6) must explain recommended pairs only, with the
    columns the ``explanations`` asset stores and finite contributions."""
    recommendations = out.recommendations.filter(pl.col("user_id").is_in(inputs.users["user_id"].head(5).implode()))
    reasons = kit.call("explain()", lambda: ranker.explain(recommendations))
    if reasons is None:
        return ""
    if not isinstance(reasons, pl.DataFrame):
        fail(f"explain() must return a polars DataFrame or None, got {type(reasons).__name__}")
    missing = [c for c in EXPLANATION_COLUMNS if c not in reasons.columns]
    if missing:
        fail(f"explain() returned no {', '.join(missing)} column(s) (it has {reasons.columns})")
    strangers = reasons.join(recommendations, on=["user_id", "item_id"], how="anti")
    if strangers.height:
        fail(f"explain() explained {strangers.height} pair(s) it was not asked about, e.g. {strangers.row(0)}")
    contribution = reasons["contribution"].cast(pl.Float64)
    if contribution.null_count() or contribution.is_nan().any() or contribution.is_infinite().any():
        fail("explain() returned null, NaN or infinite contributions")
    return "; explains its recommendations"


def check_row_invariants(kit: Kit) -> str:
    out = output(kit.main_or_fail(), "rank()")
    inputs = kit.inputs.ranking_inputs()
    check_rankings(kit, out, inputs, "rank()")
    return "top-k of unseen items per user; every test pair scored once" + check_batches_agree(kit, inputs, out)


def check_empty_input(kit: Kit) -> str:
    kit.main_or_fail()
    base = kit.inputs.ranking_inputs()
    inputs = dataclasses.replace(base, interactions=train_rows(base.interactions))
    what = "rank() with no test pairs"
    out = output(rank(kit, inputs, what), what)
    if out.test_scores.height:
        fail(f"{what} returned {out.test_scores.height} test scores")
    check_rankings(kit, out, inputs, what)
    return ""


def check_malformed_input(kit: Kit) -> str:
    kit.main_or_fail()
    base = kit.inputs.ranking_inputs()
    users, inter = base.users, base.interactions
    newcomer = users.head(1).with_columns(pl.lit(unused_id(users["user_id"], "newcomer")).alias("user_id"))
    stranger = unused_id(users["user_id"], "stranger")
    unknown_item = unused_id(base.items["item_id"], "unknown-item")
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
    check_rankings(kit, output(rank(kit, inputs, what), what), inputs, what)
    return "cold-start user recommended; unknown test pairs scored"
