"""Verified caches: the ONNX graphs and the embedding store are keyed by content and checked on
every read; a tampered or truncated file is refused with a warning and rebuilt. Real exports of
a tiny random BERT, real ONNX Runtime sessions, no mocks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
from onnx import TensorProto, helper
from test_embed_onnx import tiny_bert  # noqa: F401  (the session's tiny random encoder)

import causalrec_toolkit.embeddings as emb
from causalrec_assets.plugin_api import PluginContext
from causalrec_plugins.embed import onnx_export
from causalrec_plugins.embed.onnx_encoder import OnnxEncoderEmbed
from causalrec_resources import onnx_runtime
from causalrec_toolkit.embedding_store import EmbeddingStore
from causalrec_toolkit.files import sha256_file

TEXTS = ["a cheap red shoe", "the cat sat on the mat", "movie", "good dogs running", ""]
REPO = Path(__file__).resolve().parents[1]


def constant_graph(path: Path, dim: int = 32) -> None:
    """A valid ONNX graph with the encoder's inputs whose output is one constant unit vector
    per row: what the tester dropped into the cache."""
    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
        for n in ("input_ids", "attention_mask")
    ]
    row = np.full((1, dim), 1 / np.sqrt(dim), dtype=np.float32)
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["m"], ["r"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["r", "row"], ["sentence_embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        ints,
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])],
        [onnx.numpy_helper.from_array(row, "row")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _plugin(model: Path, **kw) -> OnnxEncoderEmbed:
    return OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(model), precision="fp32", **kw))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh CAUSALREC_CACHE for the test (``model_key`` resolves its graph there)."""
    monkeypatch.setenv("CAUSALREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "refusing" in r.getMessage()]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["constant graph", "flipped byte", "truncated", "no manifest"])
def test_tampered_graph_is_refused_and_rebuilt(tiny_bert, cache, caplog, damage):  # noqa: F811
    ctx = PluginContext(cache_dir=cache)
    clean_plugin = _plugin(tiny_bert)
    clean = clean_plugin.embed(TEXTS, ctx)
    facts = clean_plugin.describe_runtime()
    used = Path(facts["onnx_path"])
    base = onnx_export.export_encoder(tiny_bert, cache)
    assert used.parent == base.parent == cache / "onnx" and used.with_suffix(".json").is_file()
    manifest = json.loads(used.with_suffix(".json").read_text())
    assert manifest["files"][used.name]["sha256"] == sha256_file(used) == facts["onnx_sha256"]
    assert manifest["versions"]["onnxruntime"] and manifest["recipe"]["precision"] == "fp32"

    for graph in (used, base):  # the graph that runs, and the export it was rewritten from
        if damage == "constant graph":
            constant_graph(graph)
            bad = onnx_runtime.make_session(graph, ["CPUExecutionProvider"])
            vectors = bad.run(
                None, {"input_ids": np.ones((2, 3), np.int64), "attention_mask": np.ones((2, 3), np.int64)}
            )
            assert np.allclose(vectors[0][0], vectors[0][1])  # it would have run: every text the same vector
        elif damage == "flipped byte":  # same size, other content
            data = bytearray(graph.read_bytes())
            data[len(data) // 2] ^= 0xFF
            graph.write_bytes(bytes(data))
        elif damage == "truncated":
            _truncate(graph)
        else:
            graph.with_suffix(".json").unlink()
    with caplog.at_level(logging.WARNING):
        again = _plugin(tiny_bert).embed(TEXTS, ctx)
        base_again = onnx_export.export_encoder(tiny_bert, cache)
    refusals = _refusals(caplog)
    assert any(used.name in m for m in refusals) and any(base.name in m for m in refusals), refusals
    expected = {"flipped byte": "sha256", "no manifest": "no manifest"}.get(damage, "truncated or replaced")
    assert all(expected in m for m in refusals), refusals
    np.testing.assert_allclose(again, clean, atol=1e-6)  # rebuilt: the clean run's vectors
    assert base_again == base and not list((cache / "onnx").glob(".*.tmp*"))
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # verified now: used again without a word
        _plugin(tiny_bert).embed(TEXTS, ctx)
    assert not _refusals(caplog)


def test_tampered_shard_is_refused_and_recomputed(tiny_bert, cache, caplog):  # noqa: F811
    ctx = PluginContext(cache_dir=cache)
    texts, ids = [f"{t} {i}" for i, t in enumerate(TEXTS * 8)], pl.Series("item_id", range(40))
    clean, s1 = emb.embed_incremental(_plugin(tiny_bert), ids, texts, ctx, cache)
    store = EmbeddingStore(cache, s1.model_key)
    (shard,) = store.shards()
    meta = json.loads(shard.with_suffix(".json").read_text())
    assert meta["model_key"] == s1.model_key and meta["rows"] == 40 and meta["sha256"] == sha256_file(shard)

    # a valid parquet file of the right schema whose vectors are all the same
    same = np.full((40, 32), 32**-0.5, dtype=np.float32)
    forged = pl.read_parquet(shard).with_columns(pl.Series("embedding", same, dtype=pl.Array(pl.Float32, 32)))
    forged.write_parquet(shard)
    with caplog.at_level(logging.WARNING):
        again, s2 = emb.embed_incremental(_plugin(tiny_bert), ids, texts, ctx, cache)
    assert any(shard.name in m and "replaced" in m for m in _refusals(caplog)), _refusals(caplog)
    assert (s2.computed, s2.reused) == (40, 0) and s2.model_key == s1.model_key
    np.testing.assert_allclose(again["embedding"].to_numpy(), clean["embedding"].to_numpy(), atol=1e-6)
    assert not shard.exists()  # the forged shard is gone; the recomputed one replaced it

    (shard,) = store.shards()
    _truncate(shard)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _, s3 = emb.embed_incremental(_plugin(tiny_bert), ids, texts, ctx, cache)
    assert any(shard.name in m and "truncated" in m for m in _refusals(caplog))
    assert s3.computed == 40

    (shard,) = store.shards()  # one flipped byte: same size, other content
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        flipped, s4 = emb.embed_incremental(_plugin(tiny_bert), ids, texts, ctx, cache)
    assert any(shard.name in m and "sha256" in m for m in _refusals(caplog)) and s4.computed == 40
    np.testing.assert_allclose(flipped["embedding"].to_numpy(), clean["embedding"].to_numpy(), atol=1e-6)

    # a shard and sidecar copied from another model's folder: refused for its key
    other = EmbeddingStore(cache, "another-model")
    other.append(["x"], np.ones((1, 32), dtype=np.float32))
    (foreign,) = other.shards()
    for src in (foreign, foreign.with_suffix(".json")):
        shutil.copy(src, store.folder / src.name)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _, s5 = emb.embed_incremental(_plugin(tiny_bert), ids, texts, ctx, cache)
    assert any("another-model" in m for m in _refusals(caplog)) and (s5.computed, s5.reused) == (0, 40)


def _bump_weight(model_dir: Path) -> None:
    """Change one word-embedding weight in place, keeping the file's size and modification time."""
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    start = next(v["data_offsets"][0] for k, v in header.items() if "word_embeddings" in k)
    data[8 + size + start] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns


def test_keys_follow_content_and_recipe(tiny_bert, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CAUSALREC_CACHE", str(tmp_path / "cache"))
    key = onnx_export.export_key(tiny_bert)
    recipes = [
        onnx_export.export_key(tiny_bert, pooling="cls"),
        onnx_export.export_key(tiny_bert, normalize=False),
        onnx_export.export_key(tiny_bert, opset=18),
    ]
    assert len({key, *recipes}) == 4
    copy = tmp_path / "elsewhere" / tiny_bert.name
    shutil.copytree(tiny_bert, copy)
    assert onnx_export.export_key(copy) == key  # content, not path or dates
    before = _plugin(copy).model_key()
    assert before == _plugin(tiny_bert).model_key()
    assert _plugin(copy, max_length=16).model_key() != before
    _bump_weight(copy)
    assert onnx_export.export_key(copy) != key  # same size and mtime, other content: another key
    assert _plugin(copy).model_key() != before  # and another graph, so another store key


def test_concurrent_exports_do_not_collide(tiny_bert, tmp_path):  # noqa: F811
    """Two processes exporting the same model into one cache at once: one exports, the other
    waits and then uses the verified file."""
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO);"
        "from causalrec_plugins.embed import onnx_export;"
        "print(onnx_export.export_encoder(sys.argv[1], sys.argv[2]))"
    )
    args = [sys.executable, "-c", code, str(tiny_bert), str(tmp_path / "cache")]
    procs = [subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len({out.strip() for out, _ in outs}) == 1
    assert sum(err.count("exported ") for _, err in outs) == 1, outs
    assert not any("refusing" in err for _, err in outs)
    onnx.checker.check_model(outs[0][0].strip())
