"""The ONNX embed plugin against real torch and real ONNX Runtime (no mocks, no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import AutoModel, BertConfig, BertModel

from causalrec_assets.plugin_api import PluginContext
from causalrec_plugins.embed import onnx_export
from causalrec_plugins.embed.onnx_encoder import OnnxEncoderEmbed, resolve_model
from causalrec_resources import onnx_runtime
from causalrec_toolkit.files import sha256_file

WORDS = "the a cat dog sat on mat movie good bad red shoe ##s ##ing run item price cheap".split()
TEXTS = [
    "a cheap red shoe",
    "The cat sat on the mat",
    "movie",
    "good dogs running on a mat with a cheap price tag and a red item",
    "",
]


def _reference(model_dir: Path, texts: list[str], pooling: str = "mean") -> np.ndarray:
    """PyTorch model + pooling + L2 normalisation, one text at a time (no padding at all)."""
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            enc = tok.encode(text)
            ids = torch.tensor([enc.ids])
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
            vec = hidden[0] if pooling == "cls" else hidden.mean(0)
            rows.append(torch.nn.functional.normalize(vec, dim=0).numpy())
    return np.stack(rows)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with its own WordPiece tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + WORDS + list("abcdefghijklmnopqrstuvwxyz"))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tok.enable_padding(pad_id=0, pad_token="[PAD]", length=128)  # like MiniLM's: must be undone
    tok.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def cache() -> Path:
    """The session's CAUSALREC_CACHE (conftest): the MiniLM export and its int8 graph are built
    once and shared with the pipeline tests."""
    return Path(os.environ["CAUSALREC_CACHE"])


@pytest.fixture(scope="session")
def minilm(cache) -> OnnxEncoderEmbed:
    """The default configuration (precision auto: int8 on CPU where it passes the floor)."""
    plugin = OnnxEncoderEmbed()
    plugin.embed(["warm up"], PluginContext(cache_dir=cache))  # the one MiniLM export of the session
    return plugin


@pytest.fixture(scope="session")
def minilm_fp32(cache) -> OnnxEncoderEmbed:
    plugin = OnnxEncoderEmbed(OnnxEncoderEmbed.Config(precision="fp32"))
    plugin.embed(["warm up"], PluginContext(cache_dir=cache))
    return plugin


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_tiny_bert_matches_pytorch(tiny_bert, tmp_path):
    plugin = OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(tiny_bert), batch_size=3, precision="fp32"))
    got = plugin.embed(TEXTS, PluginContext(cache_dir=tmp_path))
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 32)
    assert _cos(got, _reference(tiny_bert, TEXTS)).min() > 0.9999


def test_tiny_bert_cls_pooling(tiny_bert, tmp_path):
    plugin = OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(tiny_bert), pooling="cls", precision="fp32"))
    got = plugin.embed(TEXTS, PluginContext(cache_dir=tmp_path))
    assert _cos(got, _reference(tiny_bert, TEXTS, pooling="cls")).min() > 0.9999


MINILM_TEXTS = [
    "A thrilling space adventure.",
    "Red running shoes, size 42",
    "Cheap kitchen knife set",
    "The quick brown fox jumps over the lazy dog.",
    "romantic comedy set in Paris",
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "Returns the number of elements; raises ValueError when the list is empty.",
    "这款手机的电池续航时间很长",
    "كتاب عن تاريخ العلوم",
    "🎬🍿 great movie!! 👍",
    "Portable electric ukulele for live performance",
    "The committee postponed the vote until the budget figures are confirmed by the auditors next spring.",
]


def test_minilm_fp32_matches_pytorch(minilm_fp32, cache):
    got = minilm_fp32.embed(MINILM_TEXTS, PluginContext(cache_dir=cache))
    assert got.shape == (len(MINILM_TEXTS), 384)
    _, model_dir = resolve_model("all-MiniLM-L6-v2")
    assert _cos(got, _reference(model_dir, MINILM_TEXTS)).min() > 0.999
    assert minilm_fp32.describe_runtime()["precision"] == "fp32"


def test_minilm_default_precision_meets_the_floor(minilm, cache):
    """The default (auto) is int8 on a CPU, and holds mean >= 0.99, min >= 0.97 to PyTorch."""
    got = minilm.embed(MINILM_TEXTS, PluginContext(cache_dir=cache))
    _, model_dir = resolve_model("all-MiniLM-L6-v2")
    cos = _cos(got, _reference(model_dir, MINILM_TEXTS))
    assert cos.mean() >= 0.99 and cos.min() >= 0.97, cos
    facts = minilm.describe_runtime()
    if not onnx_runtime.cuda_device_present():
        assert facts["precision"] == "int8" and facts["onnx_path"].endswith(".onnx")
        assert facts["probe_min_cosine_to_fp32"] >= 0.98


def test_default_precision_vectors_do_not_depend_on_the_batch(minilm, cache):
    """int8 activation scales are calibrated, not taken from each batch: a text embedded alone,
    in a batch or in another order gets the same vector (so reused and recomputed vectors agree)."""
    ctx = PluginContext(cache_dir=cache)
    batch = minilm.embed(MINILM_TEXTS, ctx)
    alone = np.concatenate([minilm.embed([t], ctx) for t in MINILM_TEXTS])
    reversed_ = minilm.embed(MINILM_TEXTS[::-1], ctx)[::-1]
    assert np.abs(alone - batch).max() < 1e-5
    assert np.abs(reversed_ - batch).max() < 1e-5


def test_export_cache_reuses_and_rekeys(tiny_bert, tmp_path):
    first = onnx_export.export_encoder(tiny_bert, tmp_path)
    assert first.parent == tmp_path / "onnx" and first.suffix == ".onnx"
    stamp = first.stat().st_mtime_ns
    again = onnx_export.export_encoder(tiny_bert, tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    cls = onnx_export.export_encoder(tiny_bert, tmp_path, pooling="cls")
    opset = onnx_export.export_encoder(tiny_bert, tmp_path, opset=18)
    assert len({first, cls, opset}) == 3 and all(p.is_file() for p in (cls, opset))
    assert all(p.with_suffix(".json").is_file() for p in (first, cls, opset))  # each with its manifest
    assert not list((tmp_path / "onnx").glob("*.tmp*"))  # nothing half-written left behind


def test_model_key_stable_and_sensitive(tiny_bert):
    def key(**kw) -> str:
        return OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(tiny_bert), **kw)).model_key()

    assert key() == key() == key(batch_size=7, threads=1)
    variants = [key(), key(pooling="cls"), key(max_length=32), key(normalize=False), key(precision="fp32")]
    assert len(set(variants)) == len(variants)
    with pytest.raises(ValueError, match="precision"):
        key(precision="int4")
    assert OnnxEncoderEmbed().model_key().startswith("all-MiniLM-L6-v2-")


def test_ready_onnx_file(tiny_bert, tmp_path):
    path = onnx_export.export_encoder(tiny_bert, tmp_path)
    (path.parent / "tokenizer.json").write_bytes((tiny_bert / "tokenizer.json").read_bytes())
    plugin = OnnxEncoderEmbed(OnnxEncoderEmbed.Config(model=str(path), precision="fp32"))
    got = plugin.embed(TEXTS, PluginContext(cache_dir=tmp_path))
    assert _cos(got, _reference(tiny_bert, TEXTS)).min() > 0.9999
    used = Path(plugin.describe_runtime()["onnx_path"])  # the file's fused fp32 variant, keyed by its content
    assert used.name.startswith(sha256_file(path)[:20]) and used.is_file()


def test_edge_texts_and_bucketing(minilm, minilm_fp32, cache):
    ctx = PluginContext(cache_dir=cache)
    edge = [
        "",
        " ".join(["word"] * 10_000),
        "推荐系统的因果推断",
        "نظام التوصية السببي",
        "🎬🍿 great movie!! 👍",
        None,
    ]
    vectors = minilm.embed(edge, ctx)
    assert vectors.shape == (len(edge), 384) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([], ctx).shape == (0, 384)

    mixed = edge + [" ".join(["item"] * n) + f" number {n}" for n in (1, 30, 3, 90, 7, 12, 2, 45)]
    np.testing.assert_allclose(vectors[-1], vectors[0], atol=1e-6)  # None embeds as ""
    batched = OnnxEncoderEmbed(OnnxEncoderEmbed.Config(batch_size=4, precision="fp32")).embed(mixed, ctx)
    single = np.concatenate([minilm_fp32.embed([t], ctx) for t in mixed])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_providers_cpu_here(minilm):
    gpu = onnx_runtime.cuda_device_present()
    assert onnx_runtime.choose_providers(prefer_gpu=False) == ["CPUExecutionProvider"]
    assert onnx_runtime.choose_providers() == (
        ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu else ["CPUExecutionProvider"]
    )
    facts = minilm.describe_runtime()
    if not gpu:
        assert facts["providers"] == ["CPUExecutionProvider"]
    assert facts["dim"] == 384 and facts["onnx_path"].endswith(".onnx")
    resource = onnx_runtime.OnnxRuntimeResource(prefer_gpu=False, intra_op_threads=1)
    session = resource.make_session(facts["onnx_path"])
    assert onnx_runtime.session_providers(session) == ["CPUExecutionProvider"]


def test_model_without_token_types(tmp_path):
    """DistilBERT takes no token_type_ids: the graph must not ask for them."""
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=50, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    model = DistilBertModel(config).eval()
    model.save_pretrained(tmp_path / "distil")
    path = onnx_export.export_encoder(tmp_path / "distil", tmp_path / "cache")
    session = onnx_runtime.make_session(path, ["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    ids = np.array([[2, 5, 7, 9, 3], [2, 8, 3, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    with torch.no_grad():
        short = model(input_ids=torch.tensor(ids[1:, :3])).last_hidden_state[0].mean(0)
    assert float(got[1] @ torch.nn.functional.normalize(short, dim=0).numpy()) > 0.9999
