"""Regression tests for issue 11's defects: damaged logs, folder swaps, locks, config, CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from assistant import monitor
from core import atomic
from core.errors import BookwormError


def _answer_line(answer_id: str, total_ms: float) -> str:
    return json.dumps({"type": "answer", "answer_id": answer_id, "total_ms": total_ms}) + "\n"


# --- a. a damaged answers log -------------------------------------------------------------


def test_read_log_skips_and_counts_damaged_lines(tmp_path: Path) -> None:
    log = tmp_path / "answers.jsonl"
    log.write_bytes(
        _answer_line("a1", 100).encode()
        + b'{"type": "answer", "answer_id": "a2", "tot\n'  # a kill during an append
        + b"[1, 2]\n"  # JSON, but not a record
        + b'{"type": "feedback", "answer_id": "a1", "rating": "x\xe2\x9c\n'  # cut inside a character
        + _answer_line("a3", 300).encode()
        + b'{"type": "feedback", "answer_id": "a1", "rating": 1}\n'
        + b'{"type": "answer", "answer_id": "a4", "total_'  # partial last line, no newline
    )
    contents = monitor.scan_log(log)
    assert [r["answer_id"] for r in contents.records] == ["a1", "a3", "a1"]
    assert contents.skipped == 4
    assert [r["answer_id"] for r in monitor.read_log(log)] == ["a1", "a3", "a1"]
    s = monitor.summary(log)
    assert (s["answers"], s["rated"], s["median_total_ms"], s["unreadable_lines"]) == (2, 1, 300, 4)


def test_summary_ignores_records_with_wrong_types(tmp_path: Path) -> None:
    log = tmp_path / "answers.jsonl"
    log.write_text(
        _answer_line("a1", 100)
        + json.dumps({"type": "answer", "answer_id": "a2", "total_ms": "slow"})
        + "\n"
        + json.dumps({"type": "feedback", "answer_id": "a1"})  # no rating
        + "\n"
    )
    s = monitor.summary(log)
    assert (s["answers"], s["rated"], s["median_total_ms"]) == (2, 0, 100)


def test_append_after_a_partial_line_starts_a_new_line(tmp_path: Path) -> None:
    log = tmp_path / "answers.jsonl"
    log.write_text('{"type": "answer", "answer_id": "cut')
    monitor.log_feedback(log, "a1", "up")
    contents = monitor.scan_log(log)
    assert [r["rating"] for r in contents.records] == [1]
    assert contents.skipped == 1


# --- b. durable folder swaps, one writer per folder ----------------------------------------


def test_atomic_dir_fsyncs_files_folder_and_parent_before_deleting_the_old(tmp_path, monkeypatch) -> None:
    final = tmp_path / "index"
    final.mkdir()
    (final / "old.txt").write_text("old")
    synced: list[tuple[str, bool]] = []  # (path, the old folder still exists)
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((path, (tmp_path / ".index.old").exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    with atomic.atomic_dir(final) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "a.txt").write_text("a")
        (tmp / "sub" / "b.txt").write_text("b")
        tmp_name = tmp.name
    paths = [p for p, _ in synced]
    for name in ("a.txt", "sub/b.txt", "sub", ""):
        assert str(tmp_path / tmp_name / name).rstrip("/") in paths, name
    # the parent is synced after the renames, while the old folder can still be recovered
    parent_syncs = [old_exists for p, old_exists in synced if p == str(tmp_path)]
    assert parent_syncs and parent_syncs[-1]
    assert paths.index(str(tmp_path)) > paths.index(str(tmp_path / tmp_name))
    assert (final / "a.txt").read_text() == "a" and not (tmp_path / ".index.old").exists()


_HOLD_LOCK = """
import sys, time
from core import atomic
with atomic.folder_lock(sys.argv[1], wait_s=5):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_lock_in_child(final: Path, seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(final), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def test_second_writer_refuses_with_the_holders_pid(tmp_path: Path) -> None:
    final = tmp_path / "index"
    child = _hold_lock_in_child(final, 30)
    try:
        busy = rf"another build is writing .*index \(pid {child.pid}\)"
        with pytest.raises(BookwormError, match=busy), atomic.folder_lock(final, wait_s=0.3):
            pass
        t0 = time.monotonic()
        with pytest.raises(BookwormError, match="wait for it"), atomic.atomic_dir(final, lock_wait_s=0.3):
            pass
        assert time.monotonic() - t0 < 5
        assert not final.exists()  # the refused writer touched nothing
        assert not list(tmp_path.glob(".index.tmp-*"))
    finally:
        child.kill()
        child.wait()
    # a killed holder's lock dies with it
    with atomic.atomic_dir(final, lock_wait_s=2) as tmp:
        (tmp / "x").write_text("x")
    assert (final / "x").read_text() == "x"


def test_second_writer_waits_for_a_short_first_one(tmp_path: Path) -> None:
    final = tmp_path / "index"
    child = _hold_lock_in_child(final, 0.5)
    try:
        with atomic.atomic_dir(final, lock_wait_s=10) as tmp:
            assert child.poll() is not None  # we got in only after the holder left
            (tmp / "x").write_text("x")
    finally:
        child.wait()
    assert not (tmp_path / ".index.lock").exists()  # removed on release: nothing left in the tree


def test_folder_lock_is_reentrant_and_serialises_threads(tmp_path: Path) -> None:
    final = tmp_path / "index"
    order: list[str] = []
    with atomic.folder_lock(final):
        with atomic.atomic_dir(final) as tmp:  # the build holds the lock around its atomic_dir
            (tmp / "x").write_text("1")

        def other() -> None:
            with atomic.atomic_dir(final, lock_wait_s=10) as tmp:
                order.append("other")
                (tmp / "x").write_text("2")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
    thread.join()
    assert order == ["first done", "other"]
    assert (final / "x").read_text() == "2"


def test_atomic_dir_removes_temp_folders_of_killed_writers(tmp_path: Path) -> None:
    final = tmp_path / "index"
    stale = tmp_path / ".index.tmp-deadbeef"
    stale.mkdir(parents=True)
    (stale / "half.npy").write_bytes(b"\0" * 10)
    with atomic.atomic_dir(final) as tmp:
        (tmp / "x").write_text("x")
    assert not stale.exists() and (final / "x").exists()
