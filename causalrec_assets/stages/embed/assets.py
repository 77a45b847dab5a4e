"""The embed stage: item text embeddings and the user profiles derived from them.

``item_embeddings`` is incremental: vectors live in a content-addressed store under
``CAUSALREC_CACHE`` keyed by (text, model key), so a re-materialization embeds only new or
changed texts. ``embed_shards_job`` splits the embedding of a large catalogue into hash
partitions (``CAUSALREC_EMBED_SHARDS``, default 8) that a backfill spreads over workers;
each fills the store, after which ``item_embeddings`` only assembles.
"""

import time
from typing import Any

import dagster as dg
import polars as pl

import causalrec_toolkit.embeddings as emb
from causalrec_assets import metadata as md
from causalrec_assets.contracts import train_rows
from causalrec_assets.metadata import OWNERS
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class
from causalrec_assets.stages.embed.protocol import EmbedPlugin
from causalrec_resources.settings import current_settings

EmbedStageConfig = stage_config_class("embed")
EMBED_SHARDS = current_settings().embed_shards
shard_partitions = dg.StaticPartitionsDefinition([str(i) for i in range(EMBED_SHARDS)])


def _runtime_metadata(plugin) -> dict[str, Any]:
    """The plugin's runtime facts, numbers rounded; its ``dim`` is the asset's ``dimension``."""
    facts = plugin.describe_runtime()
    return {k: md.rounded(v) if isinstance(v, int | float) else str(v) for k, v in facts.items() if k != "dim"}


@dg.asset(group_name="embed", owners=OWNERS, kinds={"onnxruntime"}, required_resource_keys={"onnx_runtime"})
def item_embeddings(context: dg.AssetExecutionContext, config: EmbedStageConfig, items: pl.DataFrame):  # type: ignore[valid-type]
    """Item text embedded by the embed plugin (items without text: their attributes, see
    ``embeddings.item_texts``); only texts not embedded before under this model key are computed."""
    plugin = plugin_from_config(EmbedPlugin, config, context.log)
    ctx = plugin_context(context)
    texts = emb.item_texts(items)
    frame, stats = emb.embed_incremental(plugin, items["item_id"], texts, ctx, ctx.cache_dir)
    context.log.info(
        "item_embeddings: %d computed, %d reused (%d items) in %.1f s",
        stats.computed,
        stats.reused,
        stats.items,
        stats.seconds,
    )
    return dg.Output(
        frame,
        metadata={
            **md.plugin_metadata("embed", config.plugin),  # type: ignore[attr-defined]
            "dagster/row_count": frame.height,
            "dagster/column_schema": md.column_schema(frame),
            "dimension": int(frame.schema["embedding"].size) if frame.height else 0,
            "items_without_text": emb.count_missing_text(items),
            **md.rounded(stats.metadata()),
            **_runtime_metadata(plugin),
        },
    )


@dg.asset(group_name="embed", owners=OWNERS)
def user_embeddings(interactions: pl.DataFrame, item_embeddings: pl.DataFrame) -> dg.Output:
    """Each user's mean item embedding over what they engaged with in the training log."""
    frame, engaged_users = emb.user_profiles(train_rows(interactions), item_embeddings)
    return dg.Output(frame, metadata={**md.table_metadata(frame, preview=0), "users_with_engagement": engaged_users})


@dg.op(
    ins={
        "items": dg.In(
            metadata={"asset": "items"},
            input_manager_key="stored_asset_loader",
            description="The last materialized items, read through the IO manager.",
        )
    },
    out=dg.Out(dg.Nothing),
    required_resource_keys={"onnx_runtime"},
)
def embed_shard(context: dg.OpExecutionContext, config: EmbedStageConfig, items: pl.DataFrame) -> None:  # type: ignore[valid-type]
    """Embed the items of one hash partition into the store (``item_embeddings`` then reuses them)."""
    started = time.perf_counter()
    plugin = plugin_from_config(EmbedPlugin, config, context.log)
    ctx = plugin_context(context)
    texts = emb.item_texts(items)
    hashes = pl.Series([emb.text_hash(t, plugin.model_key()) for t in texts], dtype=pl.String)
    mine = (emb.shard_of(hashes, EMBED_SHARDS) == int(context.partition_key)).to_numpy()
    part = items.filter(pl.Series(mine))
    _, stats = emb.embed_incremental(
        plugin, part["item_id"], [t for t, m in zip(texts, mine, strict=True) if m], ctx, ctx.cache_dir
    )
    context.log.info(
        "shard %s/%d: %d items, %d computed, %d reused, %.0f texts/s, %.1f s",
        context.partition_key,
        EMBED_SHARDS,
        stats.items,
        stats.computed,
        stats.reused,
        stats.metadata()["texts_per_second"],
        time.perf_counter() - started,
    )


@dg.job(partitions_def=shard_partitions, description="Embed item texts into the store, one hash shard per partition.")
def embed_shards_job():
    embed_shard()
