"""The work folder of a run: its checkpoints, ``run.json``, and whether a new run continues them.

A run keeps its checkpoints in ``<parent>/.<name>.work`` beside the output. A rerun with the
same chunks, base model and settings continues an interrupted run (``make demo`` after
Ctrl-C); anything else starts over, and the log line says which and why.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from core.errors import ConfigError

RUN_FILE = "run.json"  # in the work folder: what the checkpoints were made from
# May change between an interrupted run and its continuation: they set where it stops, not what it learns.
NOT_IN_RESUME_KEY = frozenset({"time_budget", "max_steps"})
START_OVER = "delete {work} or run `python -m training` without --resume"


def work_dir(output_dir: str | Path) -> Path:
    """Checkpoints of the run that writes ``output_dir``: ``<parent>/.<name>.work``."""
    output_dir = Path(output_dir)
    return output_dir.parent / f".{output_dir.name}.work"


def run_key(chunks_sha256: str, base_model: str, hp: Any) -> dict[str, Any]:
    """What makes two runs the same run (``--if-stale`` compares it with the manifest)."""
    return {
        "chunks_sha256": chunks_sha256,
        "base_model": base_model,
        "hyperparameters": dataclasses.asdict(hp),
    }


def resume_key(key: dict[str, Any], base_model_used: str) -> dict[str, Any]:
    """The run key minus what may change between an interrupted run and its continuation."""
    hp = {k: v for k, v in key["hyperparameters"].items() if k not in NOT_IN_RESUME_KEY}
    return {"chunks_sha256": key["chunks_sha256"], "base_model_used": base_model_used, "hp": hp}


def read_run_state(work: Path) -> dict[str, Any]:
    """``run.json`` of the work folder, {} when there is none.

    Raises:
        ConfigError: it is not a JSON object (a crash while writing it, or an edit).
    """
    path = work / RUN_FILE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is unreadable ({e}): {START_OVER.format(work=work)}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} is not a JSON object: {START_OVER.format(work=work)}")
    return state


@dataclasses.dataclass(frozen=True)
class ResumeDecision:
    checkpoint: str | None  # the checkpoint to continue from; None = start over (the work folder is emptied)
    message: str  # the log line that says which, and why


def decide_resume(
    asked: bool, state: dict[str, Any], want: dict[str, Any], checkpoint: str | None, work: Path
) -> ResumeDecision:
    """Continue or start over, from what the work folder holds (pure: reads and deletes nothing).

    Args:
        asked: ``--resume`` was given: anything but a continuation is an error.
        state: the work folder's ``run.json`` ({} if none); ``want``: :func:`resume_key` of this run.
        checkpoint: the last checkpoint in the work folder, if any.

    Raises:
        ConfigError: ``asked`` and there is nothing to continue, or it was made differently.
    """
    if not state:
        if asked:
            raise ConfigError(f"nothing to resume: no earlier run in {work}; run without --resume")
        return ResumeDecision(None, "Starting a new run")
    have = state.get("key", {})
    if want != have:
        diff = [k for k in ("chunks_sha256", "base_model_used") if want[k] != have.get(k)]
        diff += [k for k in want["hp"] if want["hp"][k] != have.get("hp", {}).get(k)]
        what = ", ".join(diff) or "settings"
        if asked:
            raise ConfigError(
                f"cannot resume: the checkpoints in {work} were made with other {what}; "
                "run without --resume to start over"
            )
        return ResumeDecision(None, f"Starting over: the checkpoints in {work} were made with other {what}")
    if checkpoint is None:
        if asked:
            raise ConfigError(f"nothing to resume: no checkpoint in {work}; run without --resume")
        return ResumeDecision(None, "Starting a new run (the earlier one saved no checkpoint)")
    name = Path(checkpoint).name
    if asked:
        return ResumeDecision(checkpoint, f"Resuming from {name} (--resume)")
    if state.get("finished"):
        return ResumeDecision(None, "Starting a new run (the earlier one finished; --resume continues it)")
    return ResumeDecision(
        checkpoint,
        f"Continuing the interrupted run from {name} (same chunks, base model and settings); "
        f"delete {work} to start over",
    )


def resume_or_start_over(work: Path, asked: bool, want: dict[str, Any]) -> ResumeDecision:
    """:func:`decide_resume` on what ``work`` holds (reads only).

    An unreadable ``run.json`` is an error with ``--resume``; without, the run starts over.
    """
    try:
        state = read_run_state(work)
    except ConfigError:
        if asked:
            raise
        return ResumeDecision(None, f"Starting over: {work / RUN_FILE} is unreadable")
    return decide_resume(asked, state, want, last_complete_checkpoint(work), work)


def last_complete_checkpoint(work: Path) -> str | None:
    """The newest ``checkpoint-N`` that was written to the end. The Trainer writes
    ``trainer_state.json`` last, so a folder without it was cut short by a kill and cannot be
    resumed from (transformers' own ``get_last_checkpoint`` would pick it and fail)."""
    done = [p for p in work.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    done = [p for p in done if p.name.rsplit("-", 1)[1].isdigit()]
    return str(max(done, key=lambda p: int(p.name.rsplit("-", 1)[1]))) if done else None


def start_work_dir(work: Path, decision: ResumeDecision) -> None:
    """Empty the work folder when starting over: old checkpoints would mix with the new run's."""
    if decision.checkpoint is None:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
