"""Atomic writes: a crash mid-write never leaves a half-written file or folder in place.

Files: write a temp file beside the target, fsync, then ``os.replace`` (atomic on POSIX).
Folders: build in a temp folder beside the target, fsync every file and folder in it, then
swap it in with two renames and fsync the parent before the old folder is deleted, so after
a power loss the folder is the complete old one or the complete new one.
``os.replace`` cannot replace a non-empty folder, so the old one is first renamed to
``.<name>.old``; :func:`recover_dir` restores it if a crash fell between the two renames.

One writer per folder: :func:`folder_lock` (an ``flock`` on ``.<name>.lock`` beside the folder)
is held by :func:`atomic_dir` for the build and the swap; a writer that reads the previous
folder before writing the next holds it around both, since the lock is re-entrant per thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import BookwormError

LOCK_WAIT_S = 10.0  # a second writer waits this long for the first, then refuses


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
    """Finish a swap that a crash interrupted.

    A crash between the two renames left only ``.old``: put it back. A crash after them left
    ``final`` and a (maybe half-deleted) ``.old`` that no reader looks at: delete it, or a rerun
    with nothing to rebuild would leave it behind for good.
    Writers call it (before reading what they replace); readers must not, or a reader could
    move ``.old`` back in the middle of a writer's swap.
    """
    final = Path(final)
    old = _old_path(final)
    if not old.exists():
        return
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(old, final)


def readable_dir(final: str | Path) -> Path:
    """The folder a reader should read: ``final``, or in the crash window of a swap the old one."""
    final = Path(final)
    old = _old_path(final)
    return old if not final.exists() and old.exists() else final


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and folder under ``root`` (itself included), children before parents."""
    for folder, _dirs, names in os.walk(root, topdown=False):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink():
                _fsync_path(path)
        _fsync_path(Path(folder))


def swap_in_dir(tmp: str | Path, final: str | Path) -> None:
    """Replace folder ``final`` with folder ``tmp`` (same file system), durably."""
    tmp, final = Path(tmp), Path(final)
    fsync_tree(tmp)  # the renames below must never reach the disk before the files' contents
    recover_dir(final)
    old = _old_path(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_path(final.parent)  # the renames are on disk before the fallback is deleted
    shutil.rmtree(old, ignore_errors=True)


# --- one writer per folder ---------------------------------------------------------------


class FolderBusyError(BookwormError):
    """Another process (or thread) is writing the folder."""


def _lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}.lock"


class _Held:
    def __init__(self) -> None:
        self.thread_lock = threading.RLock()  # threads of this process queue here, not on flock
        self.fd: int | None = None
        self.depth = 0


_HELD: dict[Path, _Held] = {}
_HELD_GUARD = threading.Lock()


def _holder_pid(lock: Path) -> str:
    try:
        return lock.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def _busy(final: Path, pid: str) -> FolderBusyError:
    return FolderBusyError(f"another build is writing {final} (pid {pid}); wait for it or stop it")


def _flock(lock: Path, final: Path, deadline: float) -> int:
    """An fd holding an exclusive flock on the file now at ``lock``."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                        raise _busy(final, _holder_pid(lock)) from e
                    time.sleep(0.05)
            # the holder before us unlinks the file on release; a lock on that unlinked inode
            # would not exclude a writer that creates a new file, so lock the current one
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


@contextlib.contextmanager
def folder_lock(final: str | Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold the writers' lock of folder ``final`` (re-entrant in one thread).

    Waits up to ``wait_s`` (default :data:`LOCK_WAIT_S`) for another writer, then raises
    :class:`FolderBusyError` naming its pid. Readers do not take it: they see whole folders.
    """
    final = Path(os.path.abspath(final))
    deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
    with _HELD_GUARD:
        held = _HELD.setdefault(final, _Held())
    if not held.thread_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise _busy(final, str(os.getpid()))
    try:
        if held.depth == 0:
            final.parent.mkdir(parents=True, exist_ok=True)
            held.fd = _flock(_lock_path(final), final, deadline)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_lock_path(final))  # while still locked: see _flock
                os.close(held.fd)
                held.fd = None
    finally:
        held.thread_lock.release()


def _remove_stale_temps(final: Path) -> None:
    """Temp folders of writers killed before their swap (only called under the folder's lock)."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final: str | Path, lock_wait_s: float | None = None) -> Iterator[Path]:
    """Yield an empty temp folder; on success it replaces ``final``, on error it is removed.

    The folder's writer lock (:func:`folder_lock`, waiting up to ``lock_wait_s``) is held throughout.

    >>> with atomic_dir("data/index") as tmp:
    ...     (tmp / "manifest.json").write_text("{}")
    """
    final = Path(final)
    with folder_lock(final, lock_wait_s):
        _remove_stale_temps(final)
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            swap_in_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
