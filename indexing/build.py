"""Corpus folder -> index folder, incrementally.

A file whose content (sha256) was indexed before with the same embedder and chunk
settings keeps its chunks and vectors from the previous ``embeddings.npy``: only new or
changed files are extracted and embedded, removed files are dropped, and an unchanged
corpus writes nothing at all. The folder is replaced atomically, so a crash at any point
leaves the previous index loadable.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import folder_lock, recover_dir
from core.errors import ConfigError, StoreError
from core.layout import IndexFiles
from core.sources import DEFAULT_EMBEDDER, embedder_id
from indexing.chunking import chunk_id, chunk_pages
from indexing.clean import CLEAN_VERSION
from indexing.embed import EMBED_BATCH_SIZE, TextEncoder, load_encoder, resolve_backend
from indexing.pdf import DEFAULT_EXTRACTOR, NORMALIZE_VERSION, extract_files, file_sha256, find_pdfs
from indexing.records import Chunk, read_chunks
from indexing.store import read_manifest, write_store

# bump when chunk_pages or what is embedded changes: old chunks are then rebuilt (2: one kind per
# chunk; 3: each chunk's section heading, embedded with it)
CHUNKER_VERSION = 3


@dataclasses.dataclass
class BuildReport:
    index_dir: str
    files: dict[str, dict[str, Any]]  # relpath -> manifest entry (status, reason, pages, chunks, ...)
    pages: int
    chunks: int
    seconds: float
    extracted: int  # files read from PDF in this build
    embedded: int  # chunks encoded in this build (0 for an unchanged corpus)
    reused: int  # chunks whose vectors came from the previous index
    index_type: str
    written: bool  # False when the index was already up to date, or nothing could be indexed

    @property
    def indexed(self) -> list[str]:
        return [f for f, e in self.files.items() if e["status"] == "indexed"]

    @property
    def skipped(self) -> dict[str, str]:
        return {f: e["reason"] for f, e in self.files.items() if e["status"] == "skipped"}

    def summary(self) -> str:
        lines = [f"Files indexed: {len(self.indexed)}"]
        for f in self.indexed:
            warning = self.files[f].get("warning")
            if warning:
                lines.append(f"  {f}: {warning}")
        lines.append(f"Files skipped: {len(self.skipped)}")
        lines += [f"  {f}: {reason}" for f, reason in self.skipped.items()]
        if not self.indexed:
            state = "nothing could be indexed; any previous index was left as it was"
        elif self.written:
            state = f"written to {self.index_dir} ({self.index_type} index)"
        else:
            state = f"{self.index_dir} already up to date, nothing written"
        lines += [
            f"Pages: {self.pages}",
            f"Chunks: {self.chunks} ({self.embedded} embedded, {self.reused} reused)",
            f"Seconds: {self.seconds:.1f}",
            f"Index: {state}",
        ]
        return "\n".join(lines)


@dataclasses.dataclass
class _Previous:
    files: dict[str, dict[str, Any]]  # relpath -> entry
    rows: dict[str, list[int]]  # relpath -> rows in chunks/embeddings
    chunks: list[Chunk]
    embeddings: np.ndarray
    manifest: dict[str, Any]


def _load_previous(
    index_dir: Path, embedder: str, backend: str, chunking: dict, log: Callable[[str], None]
) -> _Previous | None:
    """The previous index, if its vectors can be reused for this build's settings."""
    try:
        manifest = read_manifest(index_dir)
    except StoreError:
        return None
    old = manifest.get("embedder", {})
    if (
        old.get("name") != embedder
        or old.get("backend", "torch") != backend
        or manifest.get("chunking") != chunking
    ):
        log(
            "Embedder, embed backend or chunk settings changed since the last build: re-embedding everything."
        )
        return None
    try:
        files = IndexFiles(index_dir)
        chunks = read_chunks(files.chunks)
        embeddings = np.load(files.embeddings)
    except (OSError, ValueError, TypeError, KeyError) as e:
        log(f"Previous index unreadable ({e}): re-embedding everything.")
        return None
    if len(chunks) != len(embeddings):
        log("Previous index inconsistent: re-embedding everything.")
        return None
    rows: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        rows.setdefault(c.file, []).append(i)
    return _Previous(manifest.get("files", {}), rows, chunks, embeddings, manifest)


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="extract", unit="file", file=sys.stderr)


def build_index(corpus_dir: str | Path, index_dir: str | Path, **options: Any) -> BuildReport:
    """:func:`build_folder` holding the index folder's writers' lock from first read to swap: a
    second build into the same folder waits, then refuses naming the first one's pid, instead of
    interleaving its files with the first (options: see :func:`build_folder`)."""
    with folder_lock(index_dir):
        return build_folder(corpus_dir, index_dir, **options)


def build_folder(
    corpus_dir: str | Path,
    index_dir: str | Path,
    *,
    embedder: str | TextEncoder = DEFAULT_EMBEDDER,
    embed_backend: str = "torch",
    extractor: str = DEFAULT_EXTRACTOR,
    workers: int = 2,
    chunk_tokens: int = 200,
    chunk_overlap: int = 32,
    batch_size: int = EMBED_BATCH_SIZE,
    approx_threshold: int = 50_000,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build or update the index folder from the PDFs under ``corpus_dir``.

    Args:
        embedder: a sentence-transformers name/folder (loaded only if some file needs
            embedding), or a loaded :class:`~indexing.embed.TextEncoder`.
        embed_backend: "torch", "onnx", "onnx-int8", "openvino-int8" or "auto" for a named
            embedder (a loaded one says its own); a change re-embeds every file.
        progress: progress bars on stderr.
        log: one-line messages (default: stderr).

    Returns:
        A :class:`BuildReport`; ``report.indexed`` is empty when no file could be indexed
        (the previous index, if any, is then left untouched).
    """
    t0 = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    name = embedder_id(embedder if isinstance(embedder, str) else embedder.name)
    if isinstance(embedder, str):
        backend = resolve_backend(embed_backend, embedder)
    else:
        backend = getattr(embedder, "backend", "torch")
    chunking = _chunking(extractor, chunk_tokens, chunk_overlap)
    shas, current = _scan(corpus_dir)
    recover_dir(index_dir)  # a crash mid-swap left .<name>.old: put it back, or delete it
    previous = _load_previous(index_dir, name, backend, chunking, log)
    work = _reuse(previous, current, shas)
    encoder: TextEncoder | None = None if isinstance(embedder, str) else embedder
    if work.to_extract:

        def load() -> TextEncoder:  # only once some file is readable: the tokenizer is needed to chunk
            log(f"Loading the embedder {name}...")
            return load_encoder(str(embedder), backend, batch_size=batch_size)

        encoder = _extract_and_embed(work, shas, encoder, load, extractor, workers, chunking, progress, log)
    all_chunks, embeddings = _assemble(work, encoder, previous)
    indexed = [rel for rel, e in work.files.items() if e["status"] == "indexed"]
    index_type = "hnsw" if len(all_chunks) > approx_threshold else "flat"
    pages = sum(work.files[rel]["pages"] for rel in indexed)

    def report(written: bool) -> BuildReport:
        return BuildReport(
            str(index_dir), work.files, pages, len(all_chunks), time.perf_counter() - t0,
            len(work.to_extract), work.embedded, work.reused, index_type, written,
        )  # fmt: skip

    if not indexed:
        return report(False)
    if (
        previous is not None
        and _unchanged(work, previous, shas)
        and previous.manifest.get("index_type") == index_type
    ):
        return report(False)
    embedder_entry = _embedder_entry(name, backend, encoder, previous, embeddings.shape[1])
    manifest = _manifest(
        embedder_entry, chunking, corpus_dir, work.files, indexed, len(all_chunks), pages, t0
    )
    write_store(index_dir, all_chunks, embeddings, manifest, approx_threshold)
    return report(True)


def _chunking(extractor: str, chunk_tokens: int, chunk_overlap: int) -> dict[str, Any]:
    """What the chunks depend on besides the bytes: a change re-embeds everything."""
    if chunk_tokens < 8 or not 0 <= chunk_overlap < chunk_tokens // 2:
        raise ConfigError(
            f"chunk_tokens must be >= 8 and chunk_overlap in [0, chunk_tokens/2); "
            f"got chunk_tokens={chunk_tokens}, chunk_overlap={chunk_overlap}"
        )
    return {
        "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap,
        "extractor": extractor,
        "normalize_version": NORMALIZE_VERSION,
        "chunker_version": CHUNKER_VERSION,
        "clean_version": CLEAN_VERSION,  # header/footer removal and page kinds (indexing.clean)
        "embedded_kinds": ["body"],  # contents and index chunks get zero vectors (see embed_body)
    }


def _scan(corpus_dir: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """(relpath -> sha256, relpath -> path) of every PDF under the corpus folder."""
    pdfs = find_pdfs(corpus_dir)
    if not pdfs:
        raise ConfigError(f"no PDF files under {corpus_dir}: add some, or run `make sample-corpus`")
    current = {p.relative_to(corpus_dir).as_posix(): p for p in pdfs}
    return {rel: file_sha256(p) for rel, p in current.items()}, current


@dataclasses.dataclass
class _Work:
    """One build's files: their manifest entries, the chunks and vectors of each indexed one."""

    files: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    vectors: dict[str, tuple[list[Chunk], np.ndarray]] = dataclasses.field(default_factory=dict)
    to_extract: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    reused: int = 0  # chunks whose vectors came from the previous index
    embedded: int = 0  # chunks encoded in this build (body chunks: see embed_body)


def _reuse(previous: _Previous | None, current: dict[str, Path], shas: dict[str, str]) -> _Work:
    """Keep what the previous build made from the same bytes (renamed files too); list the rest."""
    work = _Work()
    by_sha = {e["sha256"]: rel for rel, e in (previous.files if previous else {}).items()}
    for rel, path in current.items():
        old_rel = by_sha.get(shas[rel])
        # skipped files are tried again: the cause may be gone (e.g. a missing library); cheap
        if previous is None or old_rel is None or previous.files[old_rel]["status"] != "indexed":
            work.to_extract.append((path, rel))
            continue
        work.files[rel] = dict(previous.files[old_rel])
        rows = previous.rows.get(old_rel, [])
        chunks = [previous.chunks[i] for i in rows]
        if old_rel != rel:  # renamed or copied: same text, new name
            chunks = [
                dataclasses.replace(c, file=rel, chunk_id=chunk_id(rel, i, c.text))
                for i, c in enumerate(chunks)
            ]
        work.vectors[rel] = (chunks, previous.embeddings[rows])
        work.reused += len(chunks)
    return work


def _extract_and_embed(
    work: _Work,
    shas: dict[str, str],
    encoder: TextEncoder | None,
    load: Callable[[], TextEncoder],
    extractor: str,
    workers: int,
    chunking: dict[str, Any],
    progress: bool,
    log: Callable[[str], None],
) -> TextEncoder | None:
    """Extract the listed files and embed each one's chunks as soon as it arrives: the worker
    processes read the next files while this one embeds, so a build with several files costs
    about the slower of the two, not their sum. Without ``encoder``, ``load`` makes one when the
    first readable file arrives. Returns the encoder, or None when it was never needed."""
    enc = encoder
    n = len(work.to_extract)
    log(f"Extracting {n} file(s) with {extractor} ({workers} worker(s)), embedding each as it arrives...")
    for ex in _progress(extract_files(work.to_extract, extractor, workers), n, progress):
        entry: dict[str, Any] = {"sha256": shas[ex.file], "status": "indexed" if ex.ok else "skipped"}
        entry["reason"] = ex.reason
        if ex.warning:
            entry["warning"] = ex.warning
        chunks: list[Chunk] = []
        if ex.ok:
            enc = enc or load()
            _check_fits(enc, chunking["chunk_tokens"])
            chunks = chunk_pages(
                ex.pages, enc.count_tokens_many, chunking["chunk_tokens"], chunking["chunk_overlap"]
            )
            big = progress and len(chunks) > 500  # a long book: show its batches
            work.vectors[ex.file] = (chunks, embed_body(enc, chunks, progress=big))
        body = sum(c.kind == "body" for c in chunks)
        work.embedded += body
        entry |= {"pages": ex.n_pages, "chunks": len(chunks), "extract_seconds": round(ex.seconds, 3)}
        work.files[ex.file] = entry
        done = (
            f"{ex.n_pages} pages, {len(chunks)} chunks ({body} embedded)"
            if ex.ok
            else f"skipped: {ex.reason}"
        )
        log(f"  {ex.file}: {done}")
    return enc


def embed_body(encoder: TextEncoder, chunks: list[Chunk], progress: bool = False) -> np.ndarray:
    """(len(chunks), dim) vectors: the body chunks embedded, contents and index chunks zero rows.

    Retrieval moves a listing LISTING_DEMOTION places down, so on the sample corpus 6 of 360 top-5
    hits were listings and over the four books none; yet they are 26% of the sample corpus's chunks
    (6% of the books'), and embedding is most of a build. A zero row scores 0 against every query,
    so dense search ranks listings last, BM25 still finds them, and the rows stay aligned.
    """
    vectors = np.zeros((len(chunks), encoder.dim), dtype=np.float32)
    rows = [i for i, c in enumerate(chunks) if c.kind == "body"]
    if rows:
        texts = embed_texts([chunks[i] for i in rows], encoder.count_tokens_many, encoder.max_tokens)
        vectors[rows] = encoder.encode(texts, progress=progress)
    return vectors


def embed_texts(chunks: list[Chunk], count: Callable[[list[str]], list[int]], max_tokens: int) -> list[str]:
    """What is embedded for each chunk: its text under its section heading ("4.1 Bourne Shell
    Builtins\nshift [n]\nShift the positional parameters ..."), the way a reader knows which
    section a paragraph is in. A manual's entries rarely repeat what they are about ("builtin",
    "bash", "AVL tree"), the heading does: over the four books, dense hit@1 0.583 -> 0.750 and
    MRR@5 0.757 -> 0.847 on the 24 questions (dev: 0.574 -> 0.648, 0.721 -> 0.753). The text alone where the
    chunk opens with its heading, has none, or would no longer fit the embedder with it (the
    heading's own line break costs no word-piece)."""
    heads = sorted({c.section for c in chunks if c.section})
    head_tokens = dict(zip(heads, count(heads), strict=True)) if heads else {}
    return [
        c.headed_text if c.section and c.n_tokens + head_tokens[c.section] <= max_tokens else c.text
        for c in chunks
    ]


def _check_fits(encoder: TextEncoder, chunk_tokens: int) -> None:
    if chunk_tokens > encoder.max_tokens:
        raise ConfigError(
            f"chunk_tokens={chunk_tokens} exceeds what {encoder.name} reads ({encoder.max_tokens} "
            f"word-pieces); the rest would be cut off silently. "
            f"Use --chunk-tokens {encoder.max_tokens} or less."
        )


def _assemble(
    work: _Work, encoder: TextEncoder | None, previous: _Previous | None
) -> tuple[list[Chunk], np.ndarray]:
    """Every indexed file's chunks and vectors, in corpus (path) order."""
    work.files = {rel: work.files[rel] for rel in sorted(work.files)}
    if encoder is not None:
        dim = encoder.dim
    elif previous is not None:
        dim = previous.manifest["embedder"]["dim"]
    else:  # every file extracted and none readable: nothing will be written
        dim = 0
    all_chunks: list[Chunk] = []
    parts: list[np.ndarray] = []
    for rel in work.files:
        if rel in work.vectors:
            chunks, vecs = work.vectors[rel]
            all_chunks.extend(chunks)
            parts.append(np.asarray(vecs, dtype=np.float32).reshape(len(chunks), dim))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    return all_chunks, embeddings


def _unchanged(work: _Work, previous: _Previous, shas: dict[str, str]) -> bool:
    """Same files as the previous build, and every retried skip failed again for the same reason."""
    if shas != {r: e["sha256"] for r, e in previous.files.items()}:
        return False
    return all(
        work.files[rel]["status"] == "skipped" and work.files[rel]["reason"] == previous.files[rel]["reason"]
        for _, rel in work.to_extract
    )


def _manifest(
    embedder: dict[str, Any],
    chunking: dict[str, Any],
    corpus_dir: Path,
    files: dict[str, dict[str, Any]],
    indexed: list[str],
    chunks: int,
    pages: int,
    t0: float,
) -> dict[str, Any]:
    """How the index was made: what loading checks (embedder, chunking) and what the UI shows."""
    return {
        "embedder": embedder,
        "chunking": chunking,
        "corpus_dir": str(corpus_dir),
        "files": files,
        "counts": {
            "files": len(indexed),
            "skipped": len(files) - len(indexed),
            "pages": pages,
            "chunks": chunks,
        },
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - t0, 2),
    }


def _embedder_entry(
    name: str, backend: str, encoder: TextEncoder | None, previous: _Previous | None, dim: int
) -> dict[str, Any]:
    old = previous.manifest["embedder"] if previous else {}
    return {
        "name": name,
        "backend": backend,  # queries are encoded on the same one (indexing.embed.encoder_for_index)
        "dim": int(dim),
        "max_tokens": int(encoder.max_tokens if encoder is not None else old["max_tokens"]),
        # how the newest vectors were computed (bf16 and fp32 vectors agree to cosine >= 0.999)
        "precision": getattr(encoder, "precision", None) or old.get("precision"),
    }
