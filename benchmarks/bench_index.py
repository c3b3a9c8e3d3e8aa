"""Indexing benchmark: extraction pages/s per extractor, embedding chunks/s per embed backend
(torch, torch fp32, onnx, onnx-int8, openvino-int8) with each one's cosine to torch, the settings'
backend at its embed_batch_size against 64 (``ratio chunks/s batch 8/64``), full build vs
no-op rebuild, full builds on the settings' backend and on torch in the same run (``ratio full
build openvino-int8/torch``), and HNSW recall@10 against the exact flat index.

  python -m benchmarks.bench_index --corpus data/corpus [--recall-sizes 20000,60000]

Builds into a temp folder, never into data/index. The last line is
``ratio no-op/full build: X.XX``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.config import add_settings_args, settings_from_args
from core.errors import BookwormError, ConfigError
from core.layout import IndexFiles
from indexing.pdf import EXTRACTORS, extract_files, find_pdfs


def bench_extract(files: list[tuple[Path, str]]) -> dict[str, list]:
    """Pages/s of each extractor, one process (the per-core speed)."""
    pages_by = {}
    for extractor in EXTRACTORS:
        t0 = time.perf_counter()
        results = list(extract_files(files, extractor, workers=1))
        dt = time.perf_counter() - t0
        n = sum(r.n_pages for r in results)
        print(f"extract {extractor:10} {n} pages in {dt:6.2f} s = {n / dt:7.1f} pages/s")
        pages_by[extractor] = sorted((p for r in results for p in r.pages), key=lambda p: (p.file, p.page))
    return pages_by


def bench_embed(embedder, texts: list[str], label: str = "") -> float:
    embedder.encode(texts[:8])  # warm-up
    t0 = time.perf_counter()
    embedder.encode(texts)
    dt = time.perf_counter() - t0
    print(f"embed   {label:10} {len(texts)} chunks in {dt:6.2f} s = {len(texts) / dt:7.1f} chunks/s")
    return dt


def corpus_like(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors grown from the index's rows with noise as large as the vector (copies land
    at cosine ~0.7 of their source: real embeddings cluster).

    Only non-zero rows are copied: contents and index chunks are stored as zero vectors, and a noisy
    copy of one is pure noise, which made a quarter of the set random (recall@10 0.890 instead of
    1.000 at 60k). The store's own zero rows leave HNSW's recall at 1.000 (measured), so they are
    not the case to bench."""
    rows = base[np.linalg.norm(base, axis=1) > 0]
    idx = rng.integers(0, len(rows), n)
    vecs = rows[idx] + rng.normal(0, 1 / np.sqrt(rows.shape[1]), (n, rows.shape[1]))
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def bench_recall(
    base: np.ndarray, sizes: list[int], queries: int = 200, seed: int = 0, random: bool = False
) -> None:
    """recall@10 of HNSW (the store's settings) vs exact search, on :func:`corpus_like` vectors
    and on random vectors."""
    rng = np.random.default_rng(seed)
    for size in sizes:
        for label in ("corpus-like", "random") if random else ("corpus-like",):
            if label == "random":  # no structure at all: the hardest case for a graph index
                vecs = rng.normal(size=(size + queries, base.shape[1]))
                vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
            else:
                vecs = corpus_like(base, size + queries, rng)
            _recall_at(label, vecs[:size], vecs[size:])


def _recall_at(label: str, data: np.ndarray, q: np.ndarray) -> None:
    import faiss

    from indexing.store import build_faiss

    size = len(data)
    flat, _ = build_faiss(data, approx_threshold=size)  # exact
    t0 = time.perf_counter()
    hnsw, kind = build_faiss(data, approx_threshold=size - 1)
    build_s = time.perf_counter() - t0
    assert kind == "hnsw"
    t0 = time.perf_counter()
    _, exact = flat.search(q, 10)
    flat_ms = (time.perf_counter() - t0) * 1000 / len(q)
    t0 = time.perf_counter()
    _, approx = hnsw.search(q, 10)
    hnsw_ms = (time.perf_counter() - t0) * 1000 / len(q)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    print(
        f"recall  {label:11} n={size:6d}: HNSW recall@10 = {recall:.3f}  (flat {flat_ms:.2f} ms/query, "
        f"HNSW {hnsw_ms:.2f} ms/query, HNSW build {build_s:.1f} s, {faiss.omp_get_max_threads()} threads)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_settings_args(
        parser, "corpus_dir", "workers", "embedder", "chunk_tokens", "chunk_overlap", "embed_batch_size",
        "approx_threshold", "extractor", "embed_backend",
    )  # fmt: skip
    parser.add_argument("--embed-sample", type=int, default=128, help="body chunks timed for chunks/s")
    parser.add_argument(
        "--recall-sizes", default="60000", help="vector counts for the HNSW recall check; '' = skip"
    )
    parser.add_argument(
        "--recall-random", action="store_true", help="also random vectors (worst case; minutes at 60000)"
    )
    args = parser.parse_args(argv)
    try:
        s = settings_from_args(args)
        root = Path(s.corpus_dir)
        files = [(p, p.relative_to(root).as_posix()) for p in find_pdfs(root)]
        print(f"corpus {root}: {len(files)} PDF(s); embedder {s.embedder}; CPU threads {os.cpu_count()}")
        pages = bench_extract(files)[s.extractor]
        # what a build embeds (body chunks; contents and index pages get zero vectors), spread over
        # the corpus rather than the first file's opening pages
        body = [c.text for c in bench_chunk(pages, s) if c.kind == "body"]
        encoders = bench_backends(s, body[:: max(1, len(body) // args.embed_sample)][: args.embed_sample])
        from indexing.embed import resolve_backend

        main_backend = resolve_backend(s.embed_backend, s.embedder)
        other = 64 if s.embed_batch_size != 64 else 8  # 64 was the default before 2026-12-02
        sample = body[:: max(1, len(body) // (2 * args.embed_sample))][: 2 * args.embed_sample]
        bench_batch_sizes(encoders[main_backend], main_backend, sample, (s.embed_batch_size, other))
        full_s, noop_s, base = bench_builds(root, s, encoders)
        sizes = [int(x) for x in args.recall_sizes.split(",") if x.strip()]
        if sizes:
            bench_recall(base, sizes, random=args.recall_random)
        print(f"ratio no-op/full build: {noop_s / full_s:.2f}")
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def bench_chunk(pages: list, s: Any) -> list:
    from indexing.chunking import chunk_pages
    from indexing.embed import Embedder

    counter = Embedder(s.embedder, batch_size=s.embed_batch_size)
    by_file: dict[str, list] = {}
    for p in pages:
        by_file.setdefault(p.file, []).append(p)
    t0 = time.perf_counter()
    chunks = [
        c
        for file_pages in by_file.values()
        for c in chunk_pages(file_pages, counter.count_tokens_many, s.chunk_tokens, s.chunk_overlap)
    ]
    dt = time.perf_counter() - t0
    print(f"chunk   {len(chunks)} chunks in {dt:6.2f} s = {len(chunks) / max(dt, 1e-9):7.1f} chunks/s")
    return chunks


def bench_backends(s: Any, texts: list[str]) -> dict[str, Any]:
    """chunks/s of each embed backend on the same chunks: torch at the CPU's best precision (bf16
    autocast where native), torch fp32, onnxruntime fp32 / int8 and OpenVINO int8 where installed."""
    from indexing.embed import Embedder, load_encoder

    encoders: dict[str, Any] = {"torch": Embedder(s.embedder, batch_size=s.embed_batch_size)}
    if encoders["torch"].bf16:
        encoders["torch fp32"] = Embedder(s.embedder, batch_size=s.embed_batch_size, bf16=False)
    for backend in ("onnx", "onnx-int8", "openvino-int8"):
        try:
            encoders[backend] = load_encoder(s.embedder, backend, s.embed_batch_size)
        except ConfigError as e:  # onnxruntime / openvino not installed, or a model they cannot run
            print(f"embed   {backend}: skipped ({e})")
    reference = encoders["torch"].encode(texts)
    for label, encoder in encoders.items():
        dt = bench_embed(encoder, texts, label)
        cosine = (reference * encoder.encode(texts)).sum(axis=1)
        print(
            f"        {label}: cosine to torch min {cosine.min():.4f}, mean {cosine.mean():.4f} ({dt:.1f} s)"
        )
    return encoders


def bench_batch_sizes(
    encoder: Any, label: str, texts: list[str], sizes: tuple[int, int], rounds: int = 2
) -> None:
    """chunks/s of one encoder at two batch sizes (the setting's and 64), alternating ``rounds``
    times so both see the same machine state; the median of each is printed with their ratio."""
    times: dict[int, list[float]] = {n: [] for n in sizes}
    kept = encoder.batch_size
    try:
        for _ in range(rounds):
            for n in sizes:
                encoder.batch_size = n
                t0 = time.perf_counter()
                encoder.encode(texts)
                times[n].append(time.perf_counter() - t0)
    finally:
        encoder.batch_size = kept
    rate = {n: len(texts) / float(np.median(t)) for n, t in times.items()}
    a, b = sizes
    print(f"embed   {label} batch {a} / {b}: {rate[a]:.1f} / {rate[b]:.1f} chunks/s ({len(texts)} chunks)")
    print(f"ratio chunks/s batch {a}/{b}: {rate[a] / rate[b]:.2f}")


def bench_builds(root: Path, s: Any, encoders: dict[str, Any]) -> tuple[float, float, np.ndarray]:
    """Full build and no-op rebuild with the settings' backend, and a full build with the other of
    torch and the fastest int8 backend, so the ratio comes from one run on one machine state."""
    from indexing.build import build_index
    from indexing.embed import resolve_backend

    kw = dict(
        extractor=s.extractor, workers=s.workers, chunk_tokens=s.chunk_tokens, chunk_overlap=s.chunk_overlap,
        approx_threshold=s.approx_threshold, progress=False, log=lambda m: None,
    )  # fmt: skip
    main_backend = resolve_backend(s.embed_backend, s.embedder)
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        index = Path(tmp) / "index"
        t0 = time.perf_counter()
        full = build_index(root, index, embedder=encoders[main_backend], **kw)
        full_s = time.perf_counter() - t0
        print(f"build   full ({main_backend}, {s.extractor}): {full_s:7.2f} s ({full.chunks} chunks)")
        t0 = time.perf_counter()
        noop = build_index(root, index, embedder=encoders[main_backend], **kw)
        noop_s = time.perf_counter() - t0
        print(f"build   no-op: {noop_s:7.2f} s ({noop.embedded} embedded, written={noop.written})")
        base = np.load(IndexFiles(index).embeddings)
        fast = next((b for b in ("openvino-int8", "onnx-int8") if b in encoders), None)
        other = "torch" if main_backend != "torch" else fast
        if other is not None:
            t0 = time.perf_counter()
            build_index(root, Path(tmp) / "index-other", embedder=encoders[other], **kw)
            other_s = time.perf_counter() - t0
            print(f"build   full ({other}): {other_s:7.2f} s")
            fast, fast_s, torch_s = (
                (main_backend, full_s, other_s) if other == "torch" else (other, other_s, full_s)
            )
            print(f"ratio full build {fast}/torch: {fast_s / torch_s:.2f}")
    return full_s, noop_s, base


if __name__ == "__main__":
    sys.exit(main())
