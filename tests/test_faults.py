"""Fault injection (issue 11 part 2), ``make test-faults``: kill -9 index builds and training runs,
two builds into one folder at once, concurrent questions through one Assistant, 200 mutated PDFs.

Skipped unless BOOKWORM_FAULTS=1 (the Makefile target sets it): about 25 s on an idle 2-core box.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.grounding.prompt import continue_text
from core.layout import IndexFiles
from indexing.build import build_index
from indexing.store import Store
from tests.conftest import make_pdf
from tests.test_indexing_build import FakeEmbedder, filler

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        not os.environ.get("BOOKWORM_FAULTS"), reason="fault injection: run `make test-faults`"
    ),
]

REPO = Path(__file__).resolve().parents[1]
KILL_TRIALS = 20
TIMING_KEYS = {"built_at", "build_seconds", "extract_seconds"}  # differ between two identical builds

_BUILD = """
import sys, time
from indexing.build import build_index
from tests.test_indexing_build import FakeEmbedder
print("start", flush=True)
t0 = time.perf_counter()
build_index(sys.argv[1], sys.argv[2], embedder=FakeEmbedder(), workers=1, chunk_tokens=64,
            chunk_overlap=8, progress=False, log=lambda _: None)
print(time.perf_counter() - t0, flush=True)
"""


def _build(corpus: Path, index: Path) -> None:
    build_index(
        corpus, index, embedder=FakeEmbedder(), workers=1, chunk_tokens=64, chunk_overlap=8,
        progress=False, log=lambda _: None,
    )  # fmt: skip


def _without_timings(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    return obj


def _fingerprint(index: Path) -> tuple[list[str], bytes, str]:
    """Chunk ids, vectors and manifest of the build a reader sees (timings left out)."""
    store = Store.load(index)
    folder = store.index_dir
    vectors = np.load(IndexFiles(folder).embeddings).tobytes()
    manifest = json.loads(IndexFiles(folder).manifest.read_text())
    return [c.chunk_id for c in store.chunks], vectors, json.dumps(_without_timings(manifest), sort_keys=True)


def _start_build(corpus: Path, index: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _BUILD, str(corpus), str(index)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "start"  # imports done
    return child


def test_kill_9_during_an_index_build_leaves_the_old_or_the_new_index(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    make_pdf(corpus / "shell.pdf", filler("shell"))
    make_pdf(corpus / "lisp.pdf", filler("lisp"))
    old_index = tmp_path / "old"
    _build(corpus, old_index)
    old = _fingerprint(old_index)
    make_pdf(corpus / "regex.pdf", filler("regex", 4))  # new files added to an existing index
    make_pdf(corpus / "sub" / "awk.pdf", filler("awk", 4))
    new_index = tmp_path / "new"
    shutil.copytree(old_index, new_index)
    child = _start_build(corpus, new_index)
    assert child.stdout is not None
    build_s = float(child.stdout.readline())
    assert child.wait() == 0
    new = _fingerprint(new_index)
    assert new != old

    rng = random.Random(11)
    outcomes = {"old": 0, "new": 0}
    for trial in range(KILL_TRIALS):
        index = tmp_path / f"trial-{trial}" / "index"
        shutil.copytree(old_index, index)
        child = _start_build(corpus, index)
        # one random moment in each of KILL_TRIALS slices of 1.3 builds: spread over the whole build,
        # and a few after its swap, where the new index must hold
        time.sleep((trial + rng.random()) / KILL_TRIALS * 1.3 * build_s)
        child.send_signal(signal.SIGKILL)
        child.wait()
        seen = _fingerprint(index)
        assert seen in (old, new), f"trial {trial}: the index is neither the old nor the new build"
        outcomes["old" if seen == old else "new"] += 1
        _build(corpus, index)  # a rerun completes it
        assert _fingerprint(index) == new, f"trial {trial}: the rerun did not complete the build"
        leftovers = sorted(p.name for p in index.parent.iterdir() if p.name != "index")
        assert leftovers == [], f"trial {trial}: left behind {leftovers}"
    kept = f"old index kept {outcomes['old']}, new index {outcomes['new']}"
    print(f"kill -9 trials: {KILL_TRIALS} over a {build_s:.2f} s build; {kept}")


MUTANTS = 200
MUTATE_LIMIT_S = 150  # the whole build; indexing has no per-file time limit yet, so a hang fails here

_BUILD_REPORT = """
import json, sys
from indexing.build import build_index
from tests.test_indexing_build import FakeEmbedder
report = build_index(sys.argv[1], sys.argv[2], embedder=FakeEmbedder(), extractor=sys.argv[3], workers=2,
                     chunk_tokens=64, chunk_overlap=8, progress=False, log=lambda _: None)
print(json.dumps({"indexed": report.indexed, "skipped": report.skipped}))
"""


def _mutate(data: bytes, rng: random.Random, kind: str) -> bytes:
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 40)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "duplicate":  # one object twice: two definitions of the same number
        start = rng.choice([m.start() + 1 for m in re.finditer(rb"\n\d+ 0 obj", data)])
        end = data.index(b"endobj", start) + len(b"endobj\n")
        return data[:end] + data[start:end] + data[end:]
    if kind == "stream":  # garbage inside a (compressed) content stream
        start = rng.choice([m.end() for m in re.finditer(rb"(?<!end)stream\r?\n", data)])
        end = data.index(b"endstream", start)
        junk = bytes(rng.randrange(256) for _ in range(max(1, (end - start) // 2)))
        return data[:start] + junk + data[start + len(junk) :]
    raise ValueError(kind)


@pytest.mark.parametrize("extractor", ["pypdfium2", "pypdf"])
def test_mutated_pdfs_never_crash_or_hang_the_build(tmp_path: Path, extractor: str) -> None:
    seeds = tmp_path / "seeds"
    sources = [
        make_pdf(seeds / "shell.pdf", filler("shell")),
        make_pdf(seeds / "lisp.pdf", filler("lisp", 2)),
        make_pdf(seeds / "regex.pdf", filler("regex", 1)),
    ]
    corpus = tmp_path / "corpus"
    make_pdf(corpus / "good.pdf", filler("awk"))
    rng = random.Random(200)
    kinds = ["flip", "truncate", "duplicate", "stream"]
    for i in range(MUTANTS):
        data = sources[i % len(sources)].read_bytes()
        kind = kinds[i % len(kinds)]
        (corpus / f"mutant-{i:03d}-{kind}.pdf").write_bytes(_mutate(data, rng, kind))
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _BUILD_REPORT, str(corpus), str(tmp_path / "index"), extractor],
        cwd=REPO, capture_output=True, text=True, timeout=MUTATE_LIMIT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "good.pdf" in report["indexed"]
    assert len(report["indexed"]) + len(report["skipped"]) == MUTANTS + 1
    for name, reason in report["skipped"].items():
        assert reason and "\n" not in reason and len(reason) <= 300, f"{name}: {reason!r}"
    Store.load(tmp_path / "index")
    print(
        f"mutated PDFs ({extractor}): {MUTANTS} in {time.monotonic() - t0:.0f} s; "
        f"indexed {len(report['indexed']) - 1}, skipped {len(report['skipped'])}, each with a one-line reason"
    )


# --- concurrent questions through one shared Assistant -----------------------------------

QUESTIONS = [
    "How do I send standard error to a file?",
    "What does a pipeline connect?",
    "What do variables hold in the shell?",
    "How are functions called?",
    "What is a data frame in R?",
    "How are factors encoded?",
    "What are vectors in R?",
    "How does the shell run commands?",
    "How do I send both output and error to one file?",
    "What do arrays hold?",
]
ROUNDS = 3  # a race that shows once in a few runs still shows in most runs of the test


@pytest.fixture(scope="module")
def shared_assistant(tmp_path_factory: pytest.TempPathFactory):
    """One Assistant (tiny GPT-2 with a real fast tokenizer, fake embedder) and its answers log."""
    from assistant.pipeline import Assistant
    from assistant.retrieve import Retriever
    from tests.assistant_support import BOOK, write_tiny_index
    from tests.assistant_support import FakeEmbedder as WordEmbedder
    from tests.conftest import TINY_TEXT, build_tiny_gpt2

    root = tmp_path_factory.mktemp("shared")
    texts = [TINY_TEXT, *(t for entries in BOOK.values() for _, t in entries)]
    lm = build_tiny_gpt2(root / "lm", texts, n_positions=1024)
    index = write_tiny_index(root / "index")
    log = root / "answers.jsonl"
    bot = Assistant(
        index, model_dir=root / "no-model", base_model=str(lm),
        retriever=Retriever.load(index, encoder=WordEmbedder()), log_file=log,
    )  # fmt: skip
    assert bot._tokenizer.is_fast  # the Rust tokenizer that can be "Already borrowed"
    return bot, log


def _plan(i: int) -> tuple[str, Any]:
    """(how question i is asked, its params): beams, greedy and sampled streams, cancelled streams."""
    from assistant.presets import PRESETS

    kinds = [
        ("beams", PRESETS["technical"].replace(max_new_tokens=12, num_beams=2)),
        ("stream", PRESETS["precise"].replace(max_new_tokens=40)),
        ("stream", PRESETS["creative"].replace(max_new_tokens=40, seed=i)),
        ("cancel", PRESETS["creative"].replace(max_new_tokens=200, seed=i)),
    ]
    return kinds[i % len(kinds)]


def _ask(bot: Any, question: str, how: str, params: Any) -> Any:
    """The finished Answer (None when cancelled), with its streamed pieces checked against it."""
    if how == "beams":
        return bot.ask(question, params)
    stream = bot.stream(question, params)
    pieces = iter(stream)
    if how == "cancel":
        next(pieces, None)
        pieces.close()  # the reader went away (a rerun, a new question) after the first piece
        return None
    text = "".join(pieces)
    # the stream is what was written; the answer's text then carries the verified citations
    answer = stream.answer
    assert continue_text(answer.lead, answer.model_text).strip() == text.strip(), (
        "the stream is not what was written"
    )
    return answer


def test_concurrent_questions_through_one_assistant(shared_assistant) -> None:
    from assistant import monitor

    bot, log = shared_assistant
    # alone, one after the other: what each finished answer must be when asked concurrently too
    expected = {}
    for i, q in enumerate(QUESTIONS):
        how, params = _plan(i)
        if how != "cancel":
            expected[q] = _ask(bot, q, how, params).text
    logged_before = len(monitor.read_log(log))

    finished: list[Any] = []
    errors: list[str] = []
    t0 = time.monotonic()
    for _ in range(ROUNDS):
        start = threading.Barrier(len(QUESTIONS))

        def one(i: int, start: threading.Barrier = start) -> None:
            how, params = _plan(i)
            start.wait()  # all at once: the steps before generation overlap
            try:
                answer = _ask(bot, QUESTIONS[i], how, params)
            except Exception as e:  # every failure is reported, not just the first
                errors.append(f"{QUESTIONS[i]!r} ({how}): {type(e).__name__}: {e}")
                return
            if answer is not None:
                finished.append(answer)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(QUESTIONS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a question never finished"
    assert errors == []
    n_cancel = sum(_plan(i)[0] == "cancel" for i in range(len(QUESTIONS)))
    assert len(finished) == ROUNDS * (len(QUESTIONS) - n_cancel)
    for answer in finished:
        assert answer.text == expected[answer.question], f"{answer.question!r}: not the answer it gets alone"
    logged = monitor.read_log(log)[logged_before:]
    assert sorted(r["answer_id"] for r in logged) == sorted(a.answer_id for a in finished)
    assert monitor.scan_log(log).skipped == 0  # no two appends interleaved

    # the cancelled ones let go of the model: the next question is answered at once
    how, params = _plan(1)
    t1 = time.monotonic()
    assert _ask(bot, QUESTIONS[1], how, params).text == expected[QUESTIONS[1]]
    print(
        f"concurrent questions: {ROUNDS} rounds of {len(QUESTIONS)} ({n_cancel} cancelled each) in "
        f"{t1 - t0:.1f} s; {len(finished)} finished answers all complete and logged; next answer "
        f"{time.monotonic() - t1:.2f} s"
    )


# --- kill -9 training ---------------------------------------------------------------------

# Imports torch and transformers once, then forks one training run per line of argv it reads,
# so each killed run costs its own work, not 5 s of imports. The child is the CLI's main().
_ZYGOTE = """
import json, os, sys
import torch, transformers.trainer  # noqa: F401 - the slow imports, once, before any fork
from training.__main__ import main
print("ready", flush=True)
for line in sys.stdin:
    argv, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = 1
        try:
            code = main(argv)
        except BaseException:  # a traceback: the test shows it
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""
TRAIN_KILLS = 8


def _training_index(folder: Path) -> Path:
    """Two 'books' of shell text, 12 chunks each (as tests/test_training_run.py)."""
    from indexing.records import Chunk, write_chunks
    from tests.conftest import TINY_TEXT

    sentences = [s.strip() + "." for s in TINY_TEXT.split(".") if s.strip()][:8]
    chunks = [
        Chunk(f"{book}-{i}", book, i + 1, i + 1, " ".join(sentences[(i + k) % 8] for k in range(3)), 40)
        for book in ("bash.pdf", "shell.pdf")
        for i in range(12)
    ]
    folder.mkdir(parents=True)
    write_chunks(folder / "chunks.jsonl", chunks)
    IndexFiles(folder).manifest.write_text(json.dumps({"format": 1, "built_at": "2026-01-01T00:00:00"}))
    return folder


def _model_state(model_dir: Path) -> tuple[int, str]:
    """(steps in its manifest, digest) of the model the assistant would answer with; it must load."""
    import hashlib

    from assistant.model import resolve_model
    from core.sources import load_lm

    info, source = resolve_model(model_dir, base_model="no-such-base", offline_fallback=False)
    assert info.fine_tuned and info.manifest, f"{model_dir}: no fine-tuned model to answer with"
    model, tokenizer = load_lm(source)
    assert tokenizer("The shell")["input_ids"] and model.config.n_layer == 2
    folder = Path(source.path)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()))
    return info.manifest["steps"], digest.hexdigest()


def test_kill_9_during_training_keeps_the_previous_model_and_a_rerun_completes(
    tmp_path: Path, tiny_gpt2_dir: Path
) -> None:
    index = _training_index(tmp_path / "index")
    out = tmp_path / "models" / "finetuned"
    common = ["--index", str(index), "--output", str(out), "--base-model", str(tiny_gpt2_dir),
              "--cache-dir", str(tmp_path / "cache"), "--block-size", "64", "--learning-rate", "3e-3",
              "--warmup-ratio", "0", "--eval-fraction", "0.1", "--eval-blocks", "4"]  # fmt: skip
    zygote = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    assert zygote.stdout.readline().strip() == "ready"

    def start(argv: list[str], log: Path) -> int:
        zygote.stdin.write(json.dumps([argv, str(log)]) + "\n")  # type: ignore[union-attr]
        zygote.stdin.flush()  # type: ignore[union-attr]
        return int(zygote.stdout.readline())  # type: ignore[union-attr]

    def exit_code() -> int:
        return int(zygote.stdout.readline())  # type: ignore[union-attr]

    try:
        assert start([*common, "--max-steps", "4"], tmp_path / "first.log") > 0
        assert exit_code() == 0, (tmp_path / "first.log").read_text()[-2000:]
        previous = _model_state(out)
        assert previous[0] == 4
        work = out.parent / f".{out.name}.work"
        # the run that gets killed: 3 steps an epoch, so a checkpoint every 3 steps and at the end
        argv = [*common, "--max-steps", "24", "--batch-size", "4", "--seed", "7"]
        rng = random.Random(9)
        moments = ["step", "checkpoint", "final save"] * 3
        seen: dict[str, int] = {}
        t0 = time.monotonic()
        for trial in range(TRAIN_KILLS):
            log = tmp_path / f"kill-{trial}.log"
            pid = start(argv, log)
            moment = _kill_at(moments[trial], pid, log, work, out, rng, first=trial < 3)
            if moment is None:  # finished before the moment came: the kill found nothing to stop
                assert exit_code() == 0, log.read_text()[-2000:]
                moment = "after the run"
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                code = exit_code()
                assert code in (-signal.SIGKILL, 0), log.read_text()[-2000:]
                moment = moment if code else "after the run"
            seen[moment] = seen.get(moment, 0) + 1
            steps, digest = _model_state(out)  # the previous model, or the finished new one
            assert (steps, digest) == previous or steps == 24, (
                f"kill {trial} ({moment}): a model of {steps} steps"
            )
        log = tmp_path / "rerun.log"
        start(argv, log)  # a plain rerun continues the interrupted run
        assert exit_code() == 0, log.read_text()[-3000:]
        assert _model_state(out)[0] == 24
        assert not work.exists()
        leftovers = sorted(p.name for p in out.parent.iterdir() if p.name not in ("finetuned", "cache"))
        assert leftovers == [], leftovers
        print(f"training kill -9: {TRAIN_KILLS} kills ({seen}) in {time.monotonic() - t0:.0f} s; "
              "the previous model loaded after each, the rerun completed")  # fmt: skip
    finally:
        zygote.kill()
        zygote.wait()


def _kill_at(
    moment: str, pid: int, log: Path, work: Path, out: Path, rng: random.Random, first: bool = False
) -> str | None:
    """Wait for ``moment`` of the run ``pid`` (which writes ``log``); None if it ended first.

    ``first``: no random delay, the moment's very start (a checkpoint or model folder just begun).
    """

    def alive() -> bool:  # the zygote's child, not ours: ask the kernel
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False

    def checkpoints() -> set[str]:
        try:
            return {p.name for p in work.glob("checkpoint-*")}
        except FileNotFoundError:  # not made yet, or a finished run removed it between two looks
            return set()

    deadline = time.monotonic() + 60
    if moment == "step":  # training has begun once the base model is scored
        while "Perplexity before" not in (log.read_text() if log.exists() else ""):
            if not alive() or time.monotonic() > deadline:
                return None
            time.sleep(0.005)
        time.sleep(rng.random() * 0.3)  # the tiny run's steps take ~1 s in all
        return "step"
    if moment == "checkpoint":  # a checkpoint folder appears: the Trainer is writing it
        before = checkpoints()
        while not checkpoints() - before:
            if not alive() or time.monotonic() > deadline:
                return None
            time.sleep(0.001)
        time.sleep(0 if first else rng.random() * 0.05)
        return "checkpoint"
    while not list(out.parent.glob(f".{out.name}.tmp-*")):  # the model folder is being written
        if not alive() or time.monotonic() > deadline:
            return None
        time.sleep(0.001)
    time.sleep(0 if first else rng.random() * 0.2)
    return "final save"


# --- two builds into one folder at once ---------------------------------------------------

_CLI_BUILD = """
import sys
import indexing.build
from tests.test_indexing_build import FakeEmbedder
indexing.build.Embedder = lambda name, batch_size=64: FakeEmbedder()  # the CLI, with the fast fake
from indexing.__main__ import main
print("ready", flush=True)
sys.stdin.readline()  # go: both builds start together
sys.exit(main(["build", "--corpus", sys.argv[1], "--index", sys.argv[2], "--workers", "1",
               "--chunk-tokens", "64", "--chunk-overlap", "8", "--no-progress"]))
"""


def _cli_build(corpus: Path, index: Path, cwd: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CLI_BUILD, str(corpus), str(index)], cwd=cwd,
        env=os.environ | {"PYTHONPATH": str(REPO)}, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def test_two_concurrent_builds_into_one_folder_one_waits_or_refuses(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    make_pdf(corpus / "shell.pdf", filler("shell", 4))
    make_pdf(corpus / "lisp.pdf", filler("lisp", 4))
    index = tmp_path / "index"
    outcomes: list[str] = []
    for round_, added in enumerate(["", "regex", "awk"]):  # a new folder, then incremental builds
        if added:
            make_pdf(corpus / f"{added}.pdf", filler(added, 4))
        pair = [_cli_build(corpus, index, tmp_path), _cli_build(corpus, index, tmp_path)]
        for child in pair:
            child.stdin.write("go\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
        results = [(child.wait(timeout=120), *child.communicate()) for child in pair]
        wrote = [r for r in results if r[0] == 0 and "written to" in r[1]]
        others = [r for r in results if r not in wrote]
        assert len(wrote) == 1 and len(others) == 1, f"round {round_}: {results}"
        code, out, err = others[0]
        if code == 0:  # it waited for the first, then found the index up to date
            assert "already up to date, nothing written" in out and "Extracting" not in err, (out, err)
            outcomes.append("waited")
        else:  # it refused: one line, naming the other build
            assert code == 2 and err.startswith("error: another build is writing"), (code, err)
            assert err.count("\n") == 1 and "Traceback" not in err
            outcomes.append("refused")
        reference = tmp_path / f"reference-{round_}"
        alone = _cli_build(corpus, reference, tmp_path)  # one build, alone
        assert "written to" in alone.communicate("go\n")[0] and alone.returncode == 0
        assert _fingerprint(index) == _fingerprint(reference), f"round {round_}: not one complete build"
        leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert leftovers == [], f"round {round_}: left behind {leftovers}"
    print(f"concurrent builds: 3 rounds of two at once; the second {outcomes}; the index was one whole build")
