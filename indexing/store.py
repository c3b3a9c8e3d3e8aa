"""The index folder (its files: ``core.layout.IndexFiles``): FAISS index, chunks, embeddings, manifest.

Written whole and atomically (:func:`write_store`); loaded with checks
(:meth:`Store.load`) that refuse a folder that does not match itself or the embedder.
"""

from __future__ import annotations

import contextlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_dir, readable_dir
from core.errors import StoreError
from core.layout import IndexFiles, index_ready, rebuild_hint
from core.sources import embedder_id
from indexing.pdf import file_sha256
from indexing.records import Chunk, read_chunks, write_chunks

FORMAT = 1  # manifest format; bump on an incompatible change of the folder
HNSW_M = 32  # graph neighbours per node: more = better recall, more memory
HNSW_EF_CONSTRUCTION = 200  # build-time beam: more = better graph, slower build
HNSW_EF_SEARCH = 128  # query-time beam; recall@10 >= 0.95 measured by benchmarks.bench_index


def build_faiss(embeddings: np.ndarray, approx_threshold: int) -> tuple[Any, str]:
    """Exact inner-product index, or HNSW once there are more than ``approx_threshold`` rows."""
    import faiss

    dim = embeddings.shape[1]
    if len(embeddings) > approx_threshold:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        kind = "hnsw"
    else:
        index = faiss.IndexFlatIP(dim)
        kind = "flat"
    if len(embeddings):
        index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    return index, kind


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("bookworm", "pypdf", "pypdfium2", "faiss-cpu", "sentence-transformers", "torch", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return versions


def write_store(
    index_dir: str | Path,
    chunks: list[Chunk],
    embeddings: np.ndarray,
    manifest: dict[str, Any],
    approx_threshold: int,
) -> dict[str, Any]:
    """Write the whole folder into a temp folder, then swap it in: a crash at any point
    leaves the previous index in place. Returns the manifest written (with ``index_type``)."""
    import faiss

    if len(chunks) != len(embeddings):
        raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    index, kind = build_faiss(embeddings, approx_threshold)
    manifest = {**manifest, "format": FORMAT, "index_type": kind}
    manifest.setdefault("versions", library_versions())
    with atomic_dir(index_dir) as tmp:
        files = IndexFiles(tmp)
        write_chunks(files.chunks, chunks)
        np.save(files.embeddings, np.ascontiguousarray(embeddings, dtype=np.float32))
        faiss.write_index(index, str(files.faiss))
        # the manifest goes last: a folder with a manifest is a finished folder
        files.manifest.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    # readers never rename folders (a reader's recover_dir could race a writer's swap);
    # writers recover before they read the previous index (indexing.build)
    index_dir = readable_dir(index_dir)
    path = IndexFiles(index_dir).manifest
    if not path.exists():
        raise StoreError(index_ready(index_dir))  # no folder, or an unfinished one
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"unreadable {path} ({e}): {rebuild_hint(index_dir)}") from e
    # a damaged manifest can still be valid JSON: its shape is checked too, so a reader gets this
    # message rather than an AttributeError deep in the loader
    shape_ok = isinstance(manifest, dict) and all(
        isinstance(manifest.get(key, {}), dict) for key in ("embedder", "counts", "chunking", "files")
    )
    if not shape_ok:
        raise StoreError(f"damaged {path} (not the manifest's layout): {rebuild_hint(index_dir)}")
    if manifest.get("format") != FORMAT:
        raise StoreError(
            f"{index_dir} has index format {manifest.get('format')!r}, this bookworm reads {FORMAT}: "
            f"{rebuild_hint(index_dir)}"
        )
    return manifest


def chunks_sha256(index_dir: str | Path) -> str:
    """sha256 of chunks.jsonl: names the exact text a model was trained on."""
    return file_sha256(IndexFiles(index_dir).chunks)


class Store:
    """A loaded index folder. Row i of the FAISS index is ``chunks[i]``."""

    def __init__(self, index_dir: Path, chunks: list[Chunk], index: Any, manifest: dict[str, Any]):
        self.index_dir = index_dir
        self.chunks = chunks
        self.index = index
        self.manifest = manifest

    @property
    def embedder_name(self) -> str:
        return self.manifest["embedder"]["name"]

    @property
    def dim(self) -> int:
        return int(self.manifest["embedder"]["dim"])

    def __len__(self) -> int:
        return len(self.chunks)

    @classmethod
    def load(cls, index_dir: str | Path, embedder: str | None = None) -> Store:
        """Load and check an index folder: one build's files, never a mix of two.

        Args:
            index_dir: the folder written by ``python -m indexing build``.
            embedder: the embedder the caller will encode queries with; refused if the index
                was built with another. None skips that check.

        Raises:
            StoreError: missing or unfinished folder, counts that disagree, other embedder,
                or a folder swapped twice while it was read.
        """
        # the files are opened one by one, so a build swapping in a new folder meanwhile would
        # mix two builds: read everything, then check the folder is still the one we began with
        for attempt in (1, 2):
            folder = readable_dir(index_dir)  # during a swap's crash window: the previous folder
            before = IndexFiles(folder).stamp()
            try:
                store = cls._read(folder, embedder)
            except StoreError:
                if attempt == 1 and IndexFiles(readable_dir(index_dir)).stamp() != before:
                    continue  # e.g. caught between the two renames of a swap
                raise
            if before is not None and IndexFiles(folder).stamp() == before:
                return store
        raise StoreError(f"{index_dir} was replaced twice while it was read (a build is running?): try again")

    @classmethod
    def _read(cls, index_dir: Path, embedder: str | None) -> Store:
        import faiss

        manifest = read_manifest(index_dir)
        hint = rebuild_hint(index_dir)
        built_with = manifest.get("embedder", {}).get("name")
        if embedder is not None and embedder_id(embedder) != built_with:
            raise StoreError(
                f"{index_dir} was built with the embedder {built_with!r}, not {embedder_id(embedder)!r}: "
                f"search with --embedder {built_with}, or rebuild: "
                f"python -m indexing build --index {index_dir} --embedder {embedder}"
            )
        files = IndexFiles(index_dir)
        try:
            chunks = read_chunks(files.chunks)
            index = faiss.read_index(str(files.faiss))
            n_vectors = np.load(files.embeddings, mmap_mode="r").shape[0]
        except (OSError, RuntimeError, ValueError, TypeError, json.JSONDecodeError) as e:
            raise StoreError(f"{index_dir} is incomplete or damaged ({e}): {hint}") from e
        counts = {
            IndexFiles.CHUNKS: len(chunks),
            IndexFiles.FAISS: index.ntotal,
            IndexFiles.EMBEDDINGS: n_vectors,
            "manifest": manifest.get("counts", {}).get("chunks"),
        }
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{k}={v}" for k, v in counts.items())
            raise StoreError(f"{index_dir} disagrees with itself ({detail}): {hint}")
        if index.d != manifest["embedder"]["dim"]:
            raise StoreError(
                f"{index_dir}: index dim {index.d} != manifest {manifest['embedder']['dim']}: {hint}"
            )
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(index.hnsw.efSearch, HNSW_EF_SEARCH)
        return cls(index_dir, chunks, index, manifest)

    def search(self, query_vecs: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Best ``k`` rows per query: ``[[(row, score), ...], ...]``, best first."""
        query_vecs = np.ascontiguousarray(np.atleast_2d(query_vecs), dtype=np.float32)
        if query_vecs.shape[1] != self.index.d:
            raise StoreError(
                f"query vectors have {query_vecs.shape[1]} dims, the index {self.index.d}: "
                f"encode queries with {self.embedder_name}"
            )
        k = min(k, len(self.chunks))
        if k <= 0:
            return [[] for _ in range(len(query_vecs))]
        scores, rows = self.index.search(query_vecs, k)
        return [
            [(int(r), float(s)) for r, s in zip(row_ids, row_scores, strict=True) if r >= 0]
            for row_ids, row_scores in zip(rows, scores, strict=True)
        ]
