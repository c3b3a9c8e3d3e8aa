"""Atomic writes: a crash mid-write never leaves a half-written file or folder in place.

Files: write a temp file beside the target, fsync, then ``os.replace`` (atomic on POSIX).
Folders: build in a temp folder beside the target, then swap it in with two renames.
``os.replace`` cannot replace a non-empty folder, so the old one is first renamed to
``.<name>.old``; :func:`recover_dir` restores it if a crash fell between the two renames.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def _old_path(final: Path) -> Path:
    return final.parent / f".{final.name}.old"


def recover_dir(final: str | Path) -> None:
    """Put back the previous folder if a crash fell between the two renames of a swap.

    Writers call it (before reading what they replace); readers must not, or a reader could
    move ``.old`` back in the middle of a writer's swap.
    """
    final = Path(final)
    old = _old_path(final)
    if not final.exists() and old.exists():
        os.replace(old, final)


def readable_dir(final: str | Path) -> Path:
    """The folder a reader should read: ``final``, or in the crash window of a swap the old one."""
    final = Path(final)
    old = _old_path(final)
    return old if not final.exists() and old.exists() else final


def swap_in_dir(tmp: str | Path, final: str | Path) -> None:
    """Replace folder ``final`` with folder ``tmp`` (same file system)."""
    tmp, final = Path(tmp), Path(final)
    recover_dir(final)
    old = _old_path(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder; on success it replaces ``final``, on error it is removed.

    >>> with atomic_dir("data/index") as tmp:
    ...     (tmp / "manifest.json").write_text("{}")
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        swap_in_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
