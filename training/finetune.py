"""Fine-tune a causal LM on the index's chunks with the Hugging Face Trainer.

Flow: read chunks -> split -> resolve + load the base model -> continue or start over ->
tokenise (cached) -> pack -> score the base model on the held-out blocks -> plan the steps
that fit the time budget -> Trainer.train (re-planned every step; evaluate + checkpoint each
epoch, keep the best) -> write the model folder atomically (rank 0 only): model + tokenizer +
loss_curve.png + training_manifest.json.

Checkpoints live in a work folder beside the output (``models/.finetuned.work/``) so that a
rerun continues an interrupted run (:mod:`training.runs`) and a failed run never touches the
output folder. Runs unchanged under ``torchrun``/``accelerate launch`` (DDP): the Trainer
shards batches, the stop decision is shared across ranks, and only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json, folder_lock, recover_dir
from core.errors import BookwormError, ConfigError
from core.layout import ModelFiles
from core.sources import LMSource, context_window
from training.budget import SOURCES_EVAL_SHARE, end_reserve, guess_step_seconds, plan_steps, save_seconds
from training.chunks import read_index
from training.data import mix
from training.examples import Example
from training.hyperparameters import PRECISIONS, Hyperparameters
from training.lora import merged
from training.manifest import describe_run, stale_reason, write_output
from training.prepare import fit_held_out
from training.ranks import min_across_ranks
from training.run_setup import Setup, set_up
from training.runs import RUN_FILE, read_run_state, run_key, work_dir
from training.sources import Request, SourcesData, build_sources
from training.sources_eval import describe_scores, score_model
from training.stop import make_stop_callback
from training.trainer import SequenceDataset, choose_device_precision, logging_steps, make_trainer

__all__ = [  # what other packages and the tests import from here
    "PRECISIONS",
    "Hyperparameters",
    "TrainingInterrupted",
    "choose_device_precision",
    "finetune",
    "read_index",
    "run_key",
    "stale_reason",
    "work_dir",
]


class TrainingInterrupted(BookwormError):
    """Ctrl-C: a checkpoint was saved to the work folder, the output folder left as it was."""


def finetune(
    index_dir: str | Path, output_dir: str | Path, base_model: str, hp: Hyperparameters, **options: Any
) -> dict[str, Any]:
    """Fine-tune ``base_model`` on the chunks in ``index_dir``; write ``output_dir``; return its manifest.

    Holds the model folder's writers' lock (rank 0, the one that writes): a second training into the
    same folder waits, then refuses naming the first one's pid, instead of mixing its checkpoints and
    swap with the first.

    Args:
        hp: the hyper-parameters (see :class:`Hyperparameters`).
        options: keyword arguments of :func:`run_finetune`:
            offline_fallback, cache_dir: how the base model is found (see ``core.sources.resolve_lm``).
            resume: ``--resume``: continue from the last checkpoint in :func:`work_dir` or fail. Without
                it an interrupted run of the same chunks, base and settings continues too; a
                different or finished one is started over.
            started_at: ``time.time()`` the time budget counts from (default: now).
            callbacks: extra ``TrainerCallback``s (tests use one to fail mid-run).
            encoder: the index's embedder, already loaded (tests pass a fake); None = load it by name.
            log: where progress lines go (default: print).

    Raises:
        BookwormError: missing or malformed index, unusable model or settings, nothing to resume;
        on Ctrl-C :class:`TrainingInterrupted` after a checkpoint was saved. ``output_dir`` is
        only ever replaced by a complete folder.
    """
    if os.environ.get("RANK", "0") != "0":
        return run_finetune(index_dir, output_dir, base_model, hp, **options)
    with folder_lock(output_dir):
        return run_finetune(index_dir, output_dir, base_model, hp, **options)


def run_finetune(
    index_dir: str | Path,
    output_dir: str | Path,
    base_model: str,
    hp: Hyperparameters,
    *,
    offline_fallback: bool = True,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    started_at: float | None = None,
    callbacks: Sequence[Any] = (),
    encoder: Any = None,
    log: Any = print,
) -> dict[str, Any]:
    """:func:`finetune`'s run, step by step (arguments: see there), without the folder lock."""
    t0 = started_at or time.time()
    log = log if os.environ.get("RANK", "0") == "0" else _silent  # torchrun: rank 0 speaks for all
    deadline = t0 + hp.time_budget * 60 if hp.time_budget > 0 else None
    index_dir, output_dir = Path(index_dir), Path(output_dir)
    work = work_dir(output_dir)
    recover_dir(output_dir)

    run = set_up(index_dir, work, base_model, hp, resume, offline_fallback, cache_dir, log)
    sources = read_sources(index_dir, run, hp, cache_dir, encoder, log)
    train_mix = mix(run.data.train_blocks, sources.items, hp.sources_share)
    items = SequenceDataset(train_mix.items) if train_mix.examples else run.data.train_blocks
    stop = make_stop_callback(log)
    trainer = make_trainer(
        run.model,
        run.tokenizer,
        run.args,
        items,
        run.data.held_out,
        [stop, *callbacks],
        item_mean=hp.loss_average == "items",
    )
    run_state = read_run_state(work) if run.checkpoint else {}
    before, held_out = score_before(trainer, run, sources, run_state, hp, log)
    steps_per_epoch, full_steps = count_steps(len(items), hp, run.args.world_size)
    plan(stop, run, hp, before, steps_per_epoch, full_steps, deadline, t0, log)
    if run.args.process_index == 0:
        save_run_state(work, run.want, before, len(run.data.held_out))
    train_wall = train(trainer, stop, run.checkpoint, work, output_dir)
    sources_after = score_sources_after(trainer.model, run.tokenizer, held_out, before.sources, log)

    manifest = describe_run(trainer, stop, run, hp, base_model, index_dir, before.loss, t0)
    manifest["schedule"] |= {"steps_per_epoch": steps_per_epoch, "world_size": run.args.world_size}
    manifest["train_wall_seconds"] = round(train_wall, 1)
    manifest["answer_from_sources"] = sources.describe() | {
        "share": hp.sources_share,
        "train_items": train_mix.describe(),
        "held_out": {"base": before.sources, "finetuned": sources_after},
    }
    if trainer.is_world_process_zero():
        finish(trainer, run.tokenizer, stop, output_dir, work, before.loss, manifest, run.source, t0, log)
    return manifest


@dataclasses.dataclass(frozen=True)
class BaseScores:
    """The base model's held-out scores, taken before training, and the seconds each took."""

    loss: float  # held-out blocks
    eval_seconds: float
    sources: dict[str, Any] | None  # held-out answer-from-sources examples (None: none to answer)
    sources_seconds: float  # the end of the run scores both again (the fine-tuned model): kept back


def _silent(*args: Any, **kwargs: Any) -> None:
    pass


def score_base(trainer: Any, run_state: dict[str, Any], log: Any) -> tuple[float, float]:
    """(base model's held-out loss, seconds it took); a continued run reuses its first score."""
    if "base_eval_loss" in run_state:
        base_loss, eval_seconds = run_state["base_eval_loss"], run_state["eval_seconds"]
    else:
        log("Scoring the base model on the held-out blocks...")
        t = time.time()
        base_loss = trainer.evaluate()["eval_loss"]
        eval_seconds = time.time() - t
    log(f"Perplexity before: {math.exp(base_loss):.2f} ({eval_seconds:.0f} s to score)")
    return base_loss, eval_seconds


def read_sources(
    index_dir: Path,
    run: Setup,
    hp: Hyperparameters,
    cache_dir: str | Path | None,
    encoder: Any,
    log: Any,
) -> SourcesData:
    """The answer-from-sources examples (none when ``sources_share`` is 0)."""
    if hp.sources_share <= 0 or (hp.sources_examples <= 0 and hp.sources_eval <= 0):
        return SourcesData(skipped="sources_share is 0: raw text only")
    order = [c.chunk_id for c in run.data.body]
    request = Request(
        run.data.split.train,
        run.data.split.eval,
        order,
        run.tokenizer,
        context_window(run.model, run.tokenizer),
        hp.sources_examples,
        hp.sources_eval,
        hp.seed,
    )
    with run.args.main_process_first(desc="answer-from-sources examples"):  # rank 0 fills the cache
        sources = build_sources(index_dir, run.data.index_manifest, request, cache_dir, encoder, log)
    if sources.skipped:
        log(f"No answer-from-sources examples: {sources.skipped}; training on raw text only")
    return sources


def score_before(
    trainer: Any,
    run: Setup,
    sources: SourcesData,
    run_state: dict[str, Any],
    hp: Hyperparameters,
    log: Any,
) -> tuple[BaseScores, list[Example]]:
    """Score the base model on the held-out blocks and examples that fit the budget (a continued run:
    as before); returns the scores and the held-out examples the fine-tuned model will answer too."""
    fit_held_out(run.data, trainer, run_state, hp.time_budget, run.precision, log)
    loss, eval_seconds = score_base(trainer, run_state, log)
    held_out = sources.held_out[: hp.sources_eval]
    scores, seconds = score_sources_base(run.model, run.tokenizer, held_out, run_state, hp.time_budget, log)
    held_out = held_out[: scores["examples"]] if scores else []  # what fit the budget
    return BaseScores(loss, eval_seconds, scores, seconds), held_out


def score_sources_base(
    model: Any,
    tokenizer: Any,
    held_out: Sequence[Example],
    run_state: dict[str, Any],
    time_budget: float,
    log: Any,
) -> tuple[dict[str, Any] | None, float]:
    """The base model's held-out answer-from-sources scores and their time (a continued run: as before).

    With a time budget it answers only the examples that fit ``SOURCES_EVAL_SHARE`` of it (two at
    least): on a busy machine a rambling base model took 225 s for 12 and left no time to train."""
    if not held_out:
        return None, 0.0
    if run_state.get("sources_base"):
        scores, seconds = run_state["sources_base"], run_state["sources_seconds"]
    else:
        log(f"Answering up to {len(held_out)} held-out answer-from-sources examples with the base model...")
        limit = SOURCES_EVAL_SHARE * time_budget * 60 if time_budget > 0 else None
        scores, seconds = score_model(model, tokenizer, held_out, limit)
    log(f"Answer-from-sources before: {describe_scores(scores)} ({seconds:.0f} s)")
    return scores, seconds


def score_sources_after(
    model: Any, tokenizer: Any, held_out: Sequence[Example], before: dict[str, Any] | None, log: Any
) -> dict[str, Any] | None:
    if not held_out:
        return None
    scores, seconds = score_model(model, tokenizer, held_out)
    log(f"Answer-from-sources after:  {describe_scores(scores)} ({seconds:.0f} s)")
    if before and before["f1"] > 0:
        log(f"Answer-from-sources F1: {scores['f1'] / before['f1']:.2f}x the base model's")
    return scores


def count_steps(n_blocks: int, hp: Hyperparameters, world_size: int) -> tuple[int, int]:
    """(optimizer steps per epoch, steps asked for: max_steps or the epochs')."""
    micro_batches = math.ceil(n_blocks / (hp.batch_size * world_size))
    steps_per_epoch = max(1, math.ceil(micro_batches / hp.grad_accum))
    return steps_per_epoch, hp.max_steps if hp.max_steps > 0 else math.ceil(hp.epochs * steps_per_epoch)


def plan(
    stop: Any,
    run: Setup,
    hp: Hyperparameters,
    before: BaseScores,
    steps_per_epoch: int,
    full_steps: int,
    deadline: float | None,
    t0: float,
    log: Any,
) -> None:
    """The first plan: every step asked for, or those a guessed step time fits in the budget.

    The Trainer runs up to ``full_steps``; the stop callback re-plans from measured steps.
    The held-out perplexity's time paces the guessed step time; all that the end of the run
    evaluates and answers again (``before``'s seconds) is kept back from the budget.
    """
    stop.ceiling, stop.steps_per_epoch, stop.warmup_ratio = full_steps, steps_per_epoch, hp.warmup_ratio
    stop.planned = full_steps
    if deadline is not None:
        stop.deadline, stop.eval_seconds = deadline, before.eval_seconds
        stop.answer_seconds = before.sources_seconds
        stop.save_seconds = save_seconds(sum(p.numel() for p in run.model.parameters()))
        stop.step_guess = guess_step_seconds(
            before.eval_seconds,
            len(run.data.held_out),
            hp.batch_size * hp.grad_accum,
            hp.gradient_checkpointing,
        )
        reserve = end_reserve(
            before.eval_seconds, before.sources_seconds, stop.save_seconds, 1.0, epoch_ends=False
        )
        if deadline - time.time() - reserve < stop.step_guess:
            raise ConfigError(
                f"the time budget of {hp.time_budget:g} min is spent before training can start "
                f"({time.time() - t0:.0f} s loading and scoring, {reserve:.0f} s kept to save); "
                "raise --time-budget"
            )
        stop.planned = plan_steps(0, full_steps, deadline - time.time(), stop.step_guess, reserve)
        if stop.planned < full_steps:
            log(
                f"Time budget {hp.time_budget:g} min: planning {stop.planned} of {full_steps} steps "
                f"(~{stop.step_guess:.1f} s each, guessed); re-planned from measured steps as they run"
            )
    stop.planned = min_across_ranks(stop.planned, run.args)  # every rank runs the same steps
    run.args.max_steps = full_steps
    run.args.logging_steps = logging_steps(stop.planned)


def save_run_state(work: Path, want: dict[str, Any], before: BaseScores, eval_blocks_used: int) -> None:
    """What the checkpoints are made from, and the base scores a continued run reuses."""
    state = {
        "key": want,
        "base_eval_loss": before.loss,
        "eval_seconds": before.eval_seconds,
        "eval_blocks_used": eval_blocks_used,
        "sources_base": before.sources,
        "sources_seconds": before.sources_seconds,
    }
    atomic_write_json(work / RUN_FILE, state)


def train(trainer: Any, stop: Any, checkpoint: str | None, work: Path, output_dir: Path) -> float:
    """Run the Trainer; return its wall seconds. Ctrl-C: :class:`TrainingInterrupted`."""
    t = time.time()
    stop.arm()
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        stop.disarm()
    if stop.reason == "interrupt":
        raise TrainingInterrupted(
            f"interrupted at step {trainer.state.global_step}; checkpoint saved in {work}. "
            f"Run again (or with --resume) to continue. {output_dir} was left as it was."
        )
    return time.time() - t


def finish(
    trainer: Any,
    tokenizer: Any,
    stop: Any,
    output_dir: Path,
    work: Path,
    base_loss: float,
    manifest: dict[str, Any],
    source: LMSource,
    t0: float,
    log: Any,
) -> None:
    """Write the model folder; free the checkpoints, or mark them finished when the budget cut the run."""
    model = merged(trainer.model)  # LoRA: the adapters folded in, so the folder is a plain model
    write_output(output_dir, model, tokenizer, trainer.state.log_history, base_loss, manifest, source)
    manifest["wall_seconds"] = round(time.time() - t0, 1)
    atomic_write_json(ModelFiles(output_dir).manifest, manifest)  # the final wall time, same folder
    if stop.reason is None:  # finished: nothing left to resume, free the checkpoints' disk
        shutil.rmtree(work, ignore_errors=True)
    else:  # a rerun starts afresh; --resume continues the remaining planned steps
        atomic_write_json(work / RUN_FILE, {**read_run_state(work), "finished": True})
        log(f"Checkpoints kept in {work}: --resume continues the remaining planned steps")
