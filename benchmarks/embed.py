"""Embed-stage benchmark: sentence-transformers vs causalrec fp32 vs causalrec's default precision.

    .venv/bin/python benchmarks/embed.py              # >= 20,000 texts, side by side
    .venv/bin/python benchmarks/embed.py --million    # 1,000,000 short texts: peak RSS, progress log

Texts: the simulator's item descriptions plus, when ``../shared/data/ml-100k`` is present,
MovieLens titles with genres. Every contestant runs in its own fresh process (so peak memory
is its own), on the same texts, in interleaved rounds (so a noisy neighbour hurts everyone
alike); the best round counts. Reported: texts/s, tokens/s, the ratio to sentence-transformers,
mean and minimum cosine to sentence-transformers' embeddings, peak RSS, and the share of the
machine's fp32 compute bound reached (model FLOPs per token x tokens/s over a measured fp32
GEMM peak on the same cores). No dedup: each contestant embeds every text.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared" / "data" / "ml-100k"
CONTESTANTS = ("sentence-transformers", "causalrec fp32", "causalrec default")


def benchmark_texts(n: int) -> tuple[list[str], str]:
    """MovieLens titles with genres (when present) topped up with simulator descriptions to n."""
    from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate

    texts: list[str] = []
    sources = []
    if (ML100K / "u.item").is_file():
        from causalrec_plugins.ingest.movielens import read_items

        texts += read_items(ML100K)["text"].to_list()
        sources.append(f"{len(texts)} MovieLens titles+genres")
    rest = max(0, n - len(texts))
    sim = simulate(SimulatorConfig(n_items=rest, n_users=10, pairs_per_user=5, test_pairs_per_user=1))
    texts += sim.items["text"].to_list()
    sources.append(f"{rest} simulator descriptions")
    return texts, ", ".join(sources)


def model_dir() -> Path:
    from causalrec_plugins.embed.onnx_encoder import resolve_model

    return resolve_model("all-MiniLM-L6-v2")[1]


def flops_per_token(mean_tokens: float) -> float:
    """Forward FLOPs per token of a BERT encoder: the dense layers plus attention over the text."""
    config = json.loads((model_dir() / "config.json").read_text())
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    dense = 2 * (4 * h * h + 2 * h * i)
    attention = 2 * 2 * mean_tokens * h
    return layers * (dense + attention)


def fp32_peak_gflops() -> float:
    """Best fp32 GEMM rate on this process's cores (ONNX Runtime's MLAS, the kernel we use)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from causalrec_resources.onnx_runtime import available_cores

    n = 1024
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    options = ort.SessionOptions()
    options.intra_op_num_threads = available_cores()
    session = ort.InferenceSession(
        onnx.ModelProto.SerializeToString(model), options, providers=["CPUExecutionProvider"]
    )
    x = np.ones((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        session.run(None, {"x": x})
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def count_tokens(texts: list[str]) -> int:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    return sum(len(e.ids) for e in tok.encode_batch(texts))


# ------------------------------------------------------------------ one contestant, one process


def worker(name: str, texts_file: Path, out_file: Path) -> None:
    texts = json.loads(texts_file.read_text())
    info: dict[str, object] = {}
    if name == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_dir()), device="cpu")
        model.encode(texts[:256], batch_size=32)
        start = time.perf_counter()
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        seconds = time.perf_counter() - start
        info["precision"], info["provider"] = "fp32", "torch CPU"
    else:
        from causalrec_assets.plugin_api import PluginContext
        from causalrec_plugins.embed.onnx_encoder import OnnxEncoderEmbed

        cfg = OnnxEncoderEmbed.Config(precision="fp32") if name == "causalrec fp32" else OnnxEncoderEmbed.Config()
        plugin = OnnxEncoderEmbed(cfg)
        ctx = PluginContext(cache_dir=Path(os.environ["CAUSALREC_CACHE"]))
        plugin.embed(texts[:256], ctx)
        start = time.perf_counter()
        vectors = plugin.embed(texts, ctx)
        seconds = time.perf_counter() - start
        facts = plugin.describe_runtime()
        info["precision"], info["provider"] = facts["precision"], facts["provider"]
    np.save(out_file, np.asarray(vectors, dtype=np.float32))
    info["seconds"] = seconds
    info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(info))


def run_worker(name: str, texts_file: Path, out_file: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", name, str(texts_file), str(out_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def side_by_side(n: int, rounds: int) -> None:
    from causalrec_resources.onnx_runtime import available_cores

    texts, source = benchmark_texts(n)
    tokens = count_tokens(texts)
    with tempfile.TemporaryDirectory(prefix="causalrec-bench-") as tmp:
        tmp_dir = Path(tmp)
        texts_file = tmp_dir / "texts.json"
        texts_file.write_text(json.dumps(texts))
        os.environ.setdefault("CAUSALREC_CACHE", str(REPO / ".causalrec" / "cache"))
        print(f"{len(texts)} texts ({source}), {tokens / len(texts):.1f} tokens/text, {available_cores()} cores")
        print("building graphs (cached after the first run) ...", flush=True)
        warm = tmp_dir / "warm.json"
        warm.write_text(json.dumps(texts[:300]))
        for name in CONTESTANTS[1:]:
            run_worker(name, warm, tmp_dir / "warm.npy")
        results: dict[str, list[dict]] = {name: [] for name in CONTESTANTS}
        for r in range(rounds):
            order = CONTESTANTS[r % 3 :] + CONTESTANTS[: r % 3]
            for name in order:
                results[name].append(run_worker(name, texts_file, tmp_dir / f"{name.replace(' ', '_')}.npy"))
                print(f"  round {r + 1} {name}: {len(texts) / results[name][-1]['seconds']:.0f} texts/s", flush=True)
        peak = fp32_peak_gflops()
        reference = np.load(tmp_dir / "sentence-transformers.npy")
        flops = flops_per_token(tokens / len(texts))
        base = min(x["seconds"] for x in results["sentence-transformers"])
        header = (
            f"{'':24s} {'precision':>9s} {'texts/s':>9s} {'tokens/s':>9s} {'vs ST':>6s} "
            f"{'mean cos':>9s} {'min cos':>8s} {'peak RSS':>9s} {'of fp32 bound':>13s}"
        )
        print(f"\nfp32 compute bound: {peak:.0f} GFLOP/s (measured GEMM); model: {flops / 1e6:.1f} MFLOP/token")
        print(header)
        for name in CONTESTANTS:
            best = min(results[name], key=lambda x: x["seconds"])
            vectors = np.load(tmp_dir / f"{name.replace(' ', '_')}.npy")
            cos = (vectors * reference).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
            rate = len(texts) / best["seconds"]
            print(
                f"{name:24s} {best['precision']:>9s} {rate:9.0f} {tokens / best['seconds']:9.0f} "
                f"{base / best['seconds']:5.2f}x {cos.mean():9.5f} {cos.min():8.4f} "
                f"{best['peak_rss_mb']:7.0f}MB {tokens / best['seconds'] * flops / 1e9 / peak:12.0%}"
            )
        print(f"(best of {rounds} interleaved rounds; every process had {available_cores()} cores)")
        incremental(texts, tmp_dir / "store")


def incremental(texts: list[str], store: Path) -> None:
    """Full materialization of a catalogue, then again with 1 % of the texts changed (fresh plugin
    each time, model load included), through the embed stage's function."""
    import polars as pl

    from causalrec_assets.plugin_api import PluginContext
    from causalrec_plugins.embed.onnx_encoder import OnnxEncoderEmbed
    from causalrec_toolkit.embeddings import embed_incremental

    catalogue = [f"{t} #{i}" for i, t in enumerate(texts)]  # distinct texts: every item must be embedded
    ids = pl.Series("item_id", range(len(catalogue)))
    ctx = PluginContext(cache_dir=Path(os.environ["CAUSALREC_CACHE"]))
    _, full = embed_incremental(OnnxEncoderEmbed(), ids, catalogue, ctx, store)
    changed = [t + " (new)" if i % 100 == 0 else t for i, t in enumerate(catalogue)]
    _, again = embed_incremental(OnnxEncoderEmbed(), ids, changed, ctx, store)
    print(
        f"\nincremental: full run {full.computed} computed in {full.seconds:.1f} s; 1% changed: "
        f"{again.computed} computed, {again.reused} reused in {again.seconds:.2f} s "
        f"({again.seconds / full.seconds:.1%} of the full run)"
    )


def million(n: int) -> None:
    """n short texts through the embed stage's function (store, bounded memory, progress log)."""
    import polars as pl

    from causalrec_assets.metadata import rounded
    from causalrec_assets.plugin_api import PluginContext
    from causalrec_plugins.embed.onnx_encoder import OnnxEncoderEmbed
    from causalrec_toolkit.embeddings import embed_incremental

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    log = logging.getLogger("causalrec.bench")
    rng = np.random.default_rng(0)
    words = np.array(
        "red blue cheap premium vintage portable organic wireless shoe lamp mat novel guitar drone kettle "
        "jacket chair phone case tea knife puzzle backpack for kids travel kitchen beginners outdoor".split()
    )
    lengths = rng.integers(3, 9, size=n)
    texts = [" ".join(rng.choice(words, size=k)) + f" #{i}" for i, k in enumerate(lengths)]
    cache = Path(os.environ.get("CAUSALREC_CACHE", REPO / ".causalrec" / "cache"))
    plugin = OnnxEncoderEmbed()
    plugin.embed(["warm up"], PluginContext(log=log, cache_dir=cache))
    with tempfile.TemporaryDirectory(prefix="causalrec-million-") as store:
        start = time.perf_counter()
        frame, stats = embed_incremental(
            plugin, pl.Series("item_id", np.arange(n)), texts, PluginContext(log=log, cache_dir=cache), Path(store)
        )
        seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = rounded(stats.metadata())  # as the asset's metadata shows them
    print(
        f"{n} texts -> {frame.shape} in {seconds:.0f} s ({figures['texts_per_second']} texts/s, "
        f"{figures['tokens_per_second']} tokens/s, precision {plugin.describe_runtime()['precision']}); "
        f"peak RSS {rss:.0f} MB ({'under' if rss < 3072 else 'OVER'} 3 GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000, help="at least this many texts (default 20000)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best counts")
    parser.add_argument("--million", action="store_true", help="embed 1,000,000 short texts: peak RSS, progress")
    parser.add_argument("--million-count", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))
    elif args.million:
        million(args.million_count)
    else:
        side_by_side(args.texts, args.rounds)


if __name__ == "__main__":
    main()
