"""The on-disk layout of the two folders the stages meet through, and whether one is ready.

An index folder is written by `python -m indexing build` and read by training, the assistant and
the UI; a model folder is written by `python -m training` and read by the assistant and the UI.
Each file name is written here once: the readers and writers name files through
:class:`IndexFiles` and :class:`ModelFiles`. Both folders are written whole (``core.atomic``); the
readiness checks are cheap (which files exist) and name the command that fixes what they find.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

# where `make index` and `make train` write (the Makefile's INDEX and MODEL): their hints need no folder
DEFAULT_INDEX_DIR = Path("data/index")
DEFAULT_MODEL_DIR = Path("models/finetuned")


@dataclasses.dataclass(frozen=True)
class IndexFiles:
    """The files of one index folder. Line i of the chunks file is row i of the FAISS index and of
    the embeddings."""

    CHUNKS: ClassVar[str] = "chunks.jsonl"  # one Chunk per line; the only text training reads
    EMBEDDINGS: ClassVar[str] = "embeddings.npy"  # (n, dim) float32, unit rows; reused by incremental builds
    FAISS: ClassVar[str] = "index.faiss"  # flat, or HNSW above approx_threshold chunks
    MANIFEST: ClassVar[str] = "manifest.json"  # how it was made; written last, so it marks a finished folder

    folder: Path

    def __init__(self, folder: str | Path) -> None:
        object.__setattr__(self, "folder", Path(folder))

    @property
    def chunks(self) -> Path:
        return self.folder / self.CHUNKS

    @property
    def embeddings(self) -> Path:
        return self.folder / self.EMBEDDINGS

    @property
    def faiss(self) -> Path:
        return self.folder / self.FAISS

    @property
    def manifest(self) -> Path:
        return self.folder / self.MANIFEST

    def data(self) -> tuple[Path, ...]:
        """The files a search reads besides the manifest."""
        return self.chunks, self.embeddings, self.faiss

    def stamp(self) -> tuple[int, int, bytes] | None:
        """Which build the folder at this path is, None when there is none: a build swaps in a new
        folder (a new inode) with a new manifest. The same stamp before and after reading every file
        means they all came from one build (``indexing.store.Store.load``)."""
        try:
            st = os.stat(self.folder)
            return st.st_dev, st.st_ino, self.manifest.read_bytes()
        except OSError:
            return None


def rebuild_hint(index_dir: str | Path) -> str:
    """The command that builds (or rebuilds) the index folder ``index_dir``."""
    if Path(index_dir) == DEFAULT_INDEX_DIR:
        return "run `make index`"
    return (
        f"run `python -m indexing build --corpus DIR --index {index_dir}` (or `make index INDEX={index_dir}`)"
    )


def index_ready(index_dir: str | Path) -> str | None:
    """None when ``index_dir`` holds a finished index with all its files; else what is missing and
    the command that builds it. Reads nothing: loading checks that the files agree."""
    files = IndexFiles(index_dir)
    if not files.manifest.is_file():
        what = "no index" if not files.folder.exists() else f"an unfinished index (no {IndexFiles.MANIFEST})"
    elif missing := [path.name for path in files.data() if not path.is_file()]:
        what = f"an incomplete index (no {', '.join(missing)})"
    else:
        return None
    return f"{what} at {index_dir}: {rebuild_hint(index_dir)}"


@dataclasses.dataclass(frozen=True)
class ModelFiles:
    """The files of one model folder: a transformers model and tokenizer (``save_pretrained``), and
    what bookworm's training adds beside them."""

    CONFIG: ClassVar[str] = "config.json"  # transformers' model config: a folder with one holds a model
    MANIFEST: ClassVar[str] = "training_manifest.json"  # how it was trained (training.manifest)
    LOSS_CURVE: ClassVar[str] = "loss_curve.png"  # training and held-out loss per step

    folder: Path

    def __init__(self, folder: str | Path) -> None:
        object.__setattr__(self, "folder", Path(folder))

    @property
    def config(self) -> Path:
        return self.folder / self.CONFIG

    @property
    def manifest(self) -> Path:
        return self.folder / self.MANIFEST

    @property
    def loss_curve(self) -> Path:
        return self.folder / self.LOSS_CURVE

    def holds_model(self) -> bool:
        return self.config.is_file()

    def read_manifest(self) -> dict[str, Any] | None:
        """The training manifest, or None when missing, unreadable or not a JSON object: a model
        folder need not come from bookworm's training."""
        try:
            manifest = json.loads(self.manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) else None


def train_hint(model_dir: str | Path | None) -> str:
    """The command that fine-tunes a model into ``model_dir``."""
    if not model_dir or Path(model_dir) == DEFAULT_MODEL_DIR:
        return "run `make train`"
    return f"run `python -m training --output {model_dir}` (or `make train MODEL={model_dir}`)"


def model_ready(model_dir: str | Path | None) -> str | None:
    """None when ``model_dir`` holds a model; else that it does not, and the command that trains one."""
    if model_dir and ModelFiles(model_dir).holds_model():
        return None
    return f"no fine-tuned model at {model_dir}: {train_hint(model_dir)}"
