"""Incremental embedding: the content-addressed store, re-materialization through Dagster,
hash shards, streaming progress. Real ONNX Runtime on a tiny random BERT (fast), no mocks."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from test_embed_onnx import tiny_bert  # noqa: F401  (the session's tiny random encoder)

import causalrec_toolkit.embeddings as emb
from causalrec_assets.plugin_api import PluginContext
from causalrec_assets.publish import build_publish_asset
from causalrec_assets.stages.embed import assets as embed_stage
from causalrec_plugins.embed import onnx_encoder
from causalrec_plugins.embed.onnx_encoder import OnnxEncoderEmbed
from causalrec_resources.defaults import default_resources
from causalrec_resources.storage import CausalrecIOManager
from causalrec_toolkit.embedding_store import EmbeddingStore

WORDS = "the a cat dog sat on mat movie good bad red shoe run item price cheap".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) + f" {i}" for i in range(n)]


def _plugin(model: Path, **kw) -> OnnxEncoderEmbed:
    return OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(model), precision="fp32", **kw))


def test_only_changed_texts_are_recomputed(tiny_bert, tmp_path):  # noqa: F811
    ctx = PluginContext(cache_dir=tmp_path / "cache")
    texts = _texts(500)
    ids = pl.Series("item_id", range(500))
    first, s1 = emb.embed_incremental(_plugin(tiny_bert), ids, texts, ctx, ctx.cache_dir)
    assert (s1.computed, s1.reused) == (500, 0)
    changed = texts.copy()
    for i in range(0, 500, 100):  # 1 %
        changed[i] = changed[i] + " new"
    second, s2 = emb.embed_incremental(_plugin(tiny_bert), ids, changed, ctx, ctx.cache_dir)
    assert (s2.computed, s2.reused) == (5, 495)
    a, b = first["embedding"].to_numpy(), second["embedding"].to_numpy()
    same = np.ones(500, dtype=bool)
    same[::100] = False
    np.testing.assert_array_equal(a[same], b[same])  # reused bit for bit
    fresh = _plugin(tiny_bert).embed([changed[i] for i in range(0, 500, 100)], ctx)
    np.testing.assert_allclose(b[~same], fresh, atol=1e-6)
    assert second["text_hash"].to_list() == [emb.text_hash(t, s2.model_key) for t in changed]
    assert second.schema["embedding"] == pl.Array(pl.Float32, 32)


def test_no_reuse_across_model_keys(tiny_bert, tmp_path):  # noqa: F811
    ctx = PluginContext(cache_dir=tmp_path / "cache")
    texts, ids = _texts(50), pl.Series("item_id", range(50))
    mean, s1 = emb.embed_incremental(_plugin(tiny_bert), ids, texts, ctx, ctx.cache_dir)
    cls, s2 = emb.embed_incremental(_plugin(tiny_bert, pooling="cls"), ids, texts, ctx, ctx.cache_dir)
    assert s1.model_key != s2.model_key and s2.computed == 50 and s2.reused == 0
    assert not np.allclose(mean["embedding"].to_numpy(), cls["embedding"].to_numpy())
    assert set(cls["model_key"]) == {s2.model_key}
    # each key has its own folder; hashes are salted by the key as well
    assert len({p.name for p in (ctx.cache_dir / "embeddings").iterdir()}) == 2
    assert not set(mean["text_hash"]) & set(cls["text_hash"])


def test_duplicates_nulls_and_no_store(tiny_bert, tmp_path):  # noqa: F811
    ctx = PluginContext(cache_dir=tmp_path)
    texts = ["red shoe", "red shoe", "", "cat", "cat"]
    frame, stats = emb.embed_incremental(_plugin(tiny_bert), pl.Series(range(5)), texts, ctx, None)
    assert (stats.unique_texts, stats.computed) == (3, 3)
    vectors = frame["embedding"].to_numpy()
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert np.isfinite(vectors).all()
    empty, stats = emb.embed_incremental(_plugin(tiny_bert), pl.Series([], dtype=pl.Int64), [], ctx, None)
    assert empty.height == 0 and stats.computed == 0
    items = pl.DataFrame({"item_id": [1, 2], "text": [None, "数据"], "color": ["red", None]})
    assert emb.item_texts(items) == ["color: red", "数据"]


def test_broken_shard_is_ignored(tiny_bert, tmp_path):  # noqa: F811
    ctx = PluginContext(cache_dir=tmp_path)
    plugin = _plugin(tiny_bert)
    emb.embed_incremental(plugin, pl.Series(range(3)), ["a", "b", "c"], ctx, tmp_path)
    store = EmbeddingStore(tmp_path, plugin.model_key())
    (store.folder / "zz-broken.parquet").write_bytes(b"not parquet")
    _, stats = emb.embed_incremental(plugin, pl.Series(range(3)), ["a", "b", "d"], ctx, tmp_path)
    assert (stats.computed, stats.reused) == (1, 2)


def test_progress_is_logged(tiny_bert, tmp_path, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setattr(onnx_encoder, "PROGRESS_SECONDS", 0.0)
    log = logging.getLogger("causalrec.test_progress")
    plugin = _plugin(tiny_bert, batch_size=64)
    with caplog.at_level(logging.INFO, logger="causalrec.test_progress"):
        out = plugin.embed(_texts(20_000), PluginContext(log=log, cache_dir=tmp_path))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("embedded ")]
    assert out.shape == (20_000, 32) and len(lines) > 10  # streamed over background-tokenised chunks
    assert "/20000 texts" in lines[-1] and "ETA" in lines[-1] and "tokens/s" in lines[-1]


def _items_asset(frame: pl.DataFrame):
    @dg.asset(name="items")
    def items() -> pl.DataFrame:
        return frame

    return items


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    events = result.asset_materializations_for_node("item_embeddings")
    return {k: v.value for k, v in events[-1].metadata.items()}


def test_rematerialization_through_dagster(tiny_bert, tmp_path, monkeypatch):  # noqa: F811
    """Two materializations of the real asset: the second computes only the 1 % that changed,
    and the hash-shard job fills the store so the asset then computes nothing."""
    monkeypatch.setenv("CAUSALREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CAUSALREC_STORAGE", str(tmp_path / "storage"))
    io = CausalrecIOManager()
    config = {
        "ops": {"item_embeddings": {"config": {"plugin": "onnx_minilm", "onnx_minilm": {"model": str(tiny_bert)}}}}
    }
    texts = _texts(300)
    items = pl.DataFrame({"item_id": [f"i{k}" for k in range(300)], "text": texts})
    instance = dg.DagsterInstance.ephemeral()

    def run(frame):
        return dg.materialize(
            [_items_asset(frame), embed_stage.item_embeddings],
            run_config=config,
            resources=default_resources(io_manager=io),
            instance=instance,
        )

    first = _metadata(run(items))
    assert (first["texts_computed"], first["texts_reused"]) == (300, 0)
    assert first["provider"] == "CPUExecutionProvider" or "CUDA" in first["provider"]
    assert first["texts_per_second"] > 0 and first["tokens_per_second"] > 0
    changed = items.with_columns(
        pl.when(pl.int_range(300) % 100 == 7).then(pl.col("text") + " changed").otherwise(pl.col("text")).alias("text")
    )
    second = _metadata(run(changed))
    assert (second["texts_computed"], second["texts_reused"]) == (3, 297)

    # hash shards: a partitioned job embeds a fresh catalogue into the store shard by shard
    fresh = pl.DataFrame({"item_id": range(120), "text": _texts(120, seed=5)})
    fresh_items = _items_asset(fresh)
    published = build_publish_asset([fresh_items.key])  # the shard job reads the published items
    dg.materialize([fresh_items, published], resources=default_resources(io_manager=io), instance=instance)
    job = embed_stage.embed_shards_job
    shard_config = {"ops": {"embed_shard": config["ops"]["item_embeddings"]}}
    keys = embed_stage.shard_partitions.get_partition_keys()
    for key in keys:
        result = job.execute_in_process(
            run_config=shard_config, partition_key=key, instance=instance, resources=default_resources(io_manager=io)
        )
        assert result.success
    after = _metadata(run(fresh))
    assert (after["texts_computed"], after["texts_reused"]) == (0, 120)
    shares = emb.shard_of(pl.Series([emb.text_hash(t, after["model_key"]) for t in _texts(120, seed=5)]), len(keys))
    assert shares.n_unique() == len(keys)  # every shard had work


def test_precision_rules(tiny_bert, tmp_path):  # noqa: F811
    ctx = PluginContext(cache_dir=tmp_path)
    with pytest.raises(ValueError, match="fp16"):
        OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(tiny_bert), precision="fp16", prefer_gpu=False)).embed(
            ["x"], ctx
        )
    auto = OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(tiny_bert), prefer_gpu=False))
    auto.embed(["a cheap red shoe"], ctx)
    facts = auto.describe_runtime()
    assert facts["precision"] in ("int8", "fp32")
    if facts["precision"] == "int8":  # auto only picks int8 when it met the floor on the probes
        assert facts["probe_mean_cosine_to_fp32"] >= onnx_encoder.MEAN_FLOOR
        assert facts["probe_min_cosine_to_fp32"] >= onnx_encoder.MIN_FLOOR
    manifests = list((tmp_path / "onnx").glob("*-cpu-int8-*.json"))
    assert len(manifests) == 1  # the gate's verdict is cached beside the graph
