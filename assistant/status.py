"""What is missing or stale before the assistant can answer well: problems the UI shows.

Cheap checks only (file existence, manifests, sizes and mtimes); nothing is loaded.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

from core.layout import IndexFiles, ModelFiles, index_ready, model_ready
from core.sources import embedder_id
from indexing.pdf import file_sha256, find_pdfs

# training_manifest.json "format" from which chunks were packed with the document separator;
# training owns the number (training.manifest.MANIFEST_FORMAT) but assistant may not import it
SEPARATOR_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class Problem:
    level: Literal["error", "warning", "info"]  # error = cannot answer; warning = answers, but worse
    message: str  # one sentence for the user
    make_target: str | None = None  # the command that fixes it, e.g. "make index"


def chunks_hash(index_dir: str | Path) -> str | None:
    """sha256 of chunks.jsonl (what training records as data.chunks_sha256), None when missing."""
    path = IndexFiles(index_dir).chunks
    return _cached_sha256(path) if path.is_file() else None


_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: the UI re-checks often


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


def check_index(
    index_dir: str | Path, corpus_dir: str | Path | None = None, embedder: str | None = None
) -> list[Problem]:
    files = IndexFiles(index_dir)
    build = "make index"
    not_ready = index_ready(index_dir)
    if not_ready:
        return [Problem("error", _sentence(not_ready), build)]
    try:
        manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
    except ValueError:
        return [Problem("error", f"The index manifest {files.manifest} is unreadable; rebuild it.", build)]
    problems: list[Problem] = []
    with open(files.chunks, "rb") as f:
        n_lines = sum(1 for line in f if line.strip())
    expected = (manifest.get("counts") or {}).get("chunks")
    if expected is not None and expected != n_lines:
        problems.append(
            Problem("error", f"The index is inconsistent ({n_lines} chunks, manifest {expected}).", build)
        )
    elif n_lines == 0:
        problems.append(Problem("error", "The index holds no text (no readable PDFs?).", build))
    built_with = (manifest.get("embedder") or {}).get("name")
    if embedder and built_with and embedder_id(embedder) != embedder_id(built_with):
        problems.append(
            Problem("error", f"The index was built with {built_with}, settings say {embedder}.", build)
        )
    if corpus_dir is not None:
        # the folder this index was built from (make index CORPUS=...), else the settings' one
        problems += _stale(Path(manifest.get("corpus_dir") or corpus_dir), manifest)
    return problems


def _stale(corpus_dir: Path, manifest: dict) -> list[Problem]:
    if not corpus_dir.is_dir():
        return [Problem("warning", f"The corpus folder {corpus_dir} does not exist.", None)]
    indexed = manifest.get("files") or {}
    on_disk = {p.relative_to(corpus_dir).as_posix(): p for p in find_pdfs(corpus_dir)}  # as indexing does
    new = sorted(set(on_disk) - set(indexed))
    gone = sorted(set(indexed) - set(on_disk))
    changed = []
    for rel in sorted(set(on_disk) & set(indexed)):
        recorded = indexed[rel].get("sha256")
        if recorded and _cached_sha256(on_disk[rel]) != recorded:
            changed.append(rel)
    parts = [
        f"{len(v)} {what} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
        for what, v in (("new", new), ("changed", changed), ("removed", gone))
        if v
    ]
    if not parts:
        return []
    target = "make index" if corpus_dir == Path("data/corpus") else f"make index CORPUS={corpus_dir}"
    return [Problem("warning", "The index is out of date: " + "; ".join(parts) + " PDF(s).", target)]


def check_model(model_dir: str | Path | None, index_dir: str | Path | None = None) -> list[Problem]:
    not_ready = model_ready(model_dir)
    if not_ready:
        return [
            Problem(
                "warning",
                f"{_sentence(not_ready)} Until then answers come from the base model.",
                "make train",
            )
        ]
    manifest = ModelFiles(model_dir).read_manifest()
    if manifest is None:
        return [Problem("info", f"{model_dir} has no {ModelFiles.MANIFEST}: its origin is unknown.", None)]
    packed_with = manifest.get("format")  # absent: not written by bookworm's training, origin unknown
    if isinstance(packed_with, int) and packed_with < SEPARATOR_FORMAT:
        # retraining also picks up a newer index, so this one problem covers both
        return [
            Problem(
                "warning",
                "This model was fine-tuned with the chat end-of-turn token between book chunks: it "
                "learned to end its turn after any book text, so its answers may stop short.",
                "make train",
            )
        ]
    trained_on = (manifest.get("data") or {}).get("chunks_sha256")
    current = chunks_hash(index_dir) if index_dir else None
    if trained_on and current and trained_on != current:
        return [Problem("info", "Fine-tuned on an older index; retrain to learn new books.", "make train")]
    return []


def _sentence(reason: str) -> str:
    """A reason from core.layout ("no index at ...: run `make index`") as a sentence for the page."""
    return reason[0].upper() + reason[1:] + "."


def check(
    index_dir: str | Path,
    model_dir: str | Path | None,
    *,
    corpus_dir: str | Path | None = None,
    embedder: str | None = None,
) -> list[Problem]:
    """Problems for the UI, errors first: missing/stale/mismatched index, missing model folder.

    ``corpus_dir`` turns on the staleness check (hashes the PDFs: ~10 ms per MB).
    """
    problems = check_index(index_dir, corpus_dir, embedder) + check_model(model_dir, index_dir)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(problems, key=lambda p: order[p.level])
