"""The embed stage: item text embeddings and the user profiles derived from them."""

import time

import dagster as dg
import polars as pl

from causalrec_assets import embeddings as emb
from causalrec_assets.contracts import train_rows
from causalrec_assets.metadata import OWNERS
from causalrec_assets.stage_config import plugin_context, plugin_from_config, stage_config_class

EmbedStageConfig = stage_config_class("embed")


@dg.asset(group_name="embed", owners=OWNERS, compute_kind="onnxruntime")
def item_embeddings(context: dg.AssetExecutionContext, config: EmbedStageConfig, items: pl.DataFrame):  # type: ignore[valid-type]
    """Item text embedded by the embed plugin (items without text: their attributes, see
    ``embeddings.item_texts``)."""
    plugin = plugin_from_config("embed", config, context.log)
    start = time.perf_counter()
    texts = emb.item_texts(items)
    vectors = plugin.embed(texts, plugin_context(context))  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    frame = emb.embedding_frame(items["item_id"], texts, vectors, plugin.model_key())  # type: ignore[attr-defined]
    runtime = {k: str(v) for k, v in plugin.describe_runtime().items()}  # type: ignore[attr-defined]
    return dg.Output(
        frame,
        metadata={
            "dagster/row_count": frame.height,
            "dimension": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
            "seconds": round(seconds, 3),
            "texts_per_second": round(len(texts) / max(seconds, 1e-9), 1),
            "items_without_text": emb.count_missing_text(items),
            **runtime,
        },
    )


@dg.asset(group_name="embed", owners=OWNERS)
def user_embeddings(interactions: pl.DataFrame, item_embeddings: pl.DataFrame) -> dg.Output:
    """Each user's mean item embedding over what they engaged with in the training log."""
    frame, engaged_users = emb.user_profiles(train_rows(interactions), item_embeddings)
    return dg.Output(frame, metadata={"dagster/row_count": frame.height, "users_with_engagement": engaged_users})
