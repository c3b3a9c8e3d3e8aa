"""training.runs: continue an interrupted run, start over otherwise; run.json read safely. Fast, no model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.errors import ConfigError
from training.runs import RUN_FILE, decide_resume, read_run_state, resume_or_start_over, start_work_dir

WORK = Path("models/.finetuned.work")
KEY = {"chunks_sha256": "abc", "base_model_used": "gpt2", "hp": {"learning_rate": 5e-5, "seed": 0}}
OTHER_LR = {**KEY, "hp": {"learning_rate": 1e-4, "seed": 0}}
CKPT = str(WORK / "checkpoint-3")


@pytest.mark.parametrize(
    ("asked", "state", "checkpoint", "resumes", "message"),
    [
        (False, {}, None, False, "Starting a new run"),
        (False, {"key": KEY}, CKPT, True, "Continuing the interrupted run from checkpoint-3"),
        (True, {"key": KEY}, CKPT, True, r"Resuming from checkpoint-3 \(--resume\)"),
        (False, {"key": OTHER_LR}, CKPT, False, "Starting over: the checkpoints .* other learning_rate"),
        (False, {"key": {**KEY, "chunks_sha256": "new"}}, CKPT, False, "other chunks_sha256"),
        (False, {"key": KEY}, None, False, "saved no checkpoint"),
        (False, {"key": KEY, "finished": True}, CKPT, False, "earlier one finished; --resume continues"),
        (True, {"key": KEY, "finished": True}, CKPT, True, "Resuming from checkpoint-3"),
    ],
)
def test_decide_resume_table(asked, state, checkpoint, resumes, message):
    decision = decide_resume(asked, state, KEY, checkpoint, WORK)
    assert (decision.checkpoint == checkpoint) if resumes else decision.checkpoint is None
    assert re.search(message, decision.message)


@pytest.mark.parametrize(
    ("state", "checkpoint", "error"),
    [
        ({}, None, "nothing to resume: no earlier run"),
        ({"key": OTHER_LR}, CKPT, "cannot resume: .* other learning_rate; run without --resume"),
        ({"key": KEY}, None, "nothing to resume: no checkpoint"),
    ],
)
def test_resume_asked_but_impossible_is_an_error(state, checkpoint, error):
    with pytest.raises(ConfigError, match=error):
        decide_resume(True, state, KEY, checkpoint, WORK)


@pytest.mark.parametrize("text", ['{"key": ', "[1, 2]", "\xff\xfe"])
def test_malformed_run_json_is_a_message(tmp_path, text):
    work = tmp_path / ".finetuned.work"
    (work / "checkpoint-3").mkdir(parents=True)
    (work / RUN_FILE).write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"delete .*\.finetuned\.work or run `python -m training` without"):
        read_run_state(work)
    with pytest.raises(ConfigError, match="without --resume"):
        resume_or_start_over(work, True, KEY)
    decision = resume_or_start_over(work, False, KEY)  # without --resume: start over, and say so
    assert decision.checkpoint is None and "run.json is unreadable" in decision.message
    start_work_dir(work, decision)
    assert work.is_dir() and not any(work.iterdir())


def test_an_interrupted_run_is_kept_and_found(tmp_path):
    work = tmp_path / ".finetuned.work"
    for step in (3, 5):
        (work / f"checkpoint-{step}").mkdir(parents=True)
    (work / "checkpoint-3" / "trainer_state.json").write_text("{}")  # written last: complete
    (work / RUN_FILE).write_text(json.dumps({"key": KEY}))
    decision = resume_or_start_over(work, False, KEY)
    assert decision.checkpoint == str(work / "checkpoint-3")  # checkpoint-5 was cut short by a kill
    start_work_dir(work, decision)
    assert (work / "checkpoint-3").is_dir()  # continuing: nothing deleted
