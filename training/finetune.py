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

import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json, folder_lock, recover_dir
from core.errors import BookwormError, ConfigError
from core.sources import LMSource, context_window, load_lm, resolve_lm
from training.budget import SOURCES_EVAL_SHARE, end_reserve, guess_step_seconds, plan_steps, save_seconds
from training.chunks import read_index
from training.data import mix
from training.examples import Example
from training.hyperparameters import PRECISIONS, Hyperparameters
from training.lora import merged, with_lora
from training.manifest import LOSS_CURVE_NAME, MANIFEST_NAME, describe_run, stale_reason, write_output
from training.prepare import Data, fit_held_out, read_data, tokenize_and_pack
from training.ranks import min_across_ranks
from training.runs import (
    RUN_FILE,
    read_run_state,
    resume_key,
    resume_or_start_over,
    run_key,
    start_work_dir,
    work_dir,
)
from training.sources import Request, SourcesData, build_sources
from training.sources_eval import describe_scores, score_model
from training.stop import make_stop_callback
from training.trainer import (
    SequenceDataset,
    choose_device_precision,
    logging_steps,
    make_trainer,
    training_arguments,
)

__all__ = [  # what other packages and the tests import from here
    "LOSS_CURVE_NAME",
    "MANIFEST_NAME",
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
    """:func:`run_finetune` holding the model folder's writers' lock (rank 0, the one that writes): a
    second training into the same folder waits, then refuses naming the first one's pid, instead of
    mixing its checkpoints and swap with the first (options: see :func:`run_finetune`)."""
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
    """Fine-tune ``base_model`` on the chunks in ``index_dir``; write ``output_dir``; return its manifest.

    Args:
        hp: the hyper-parameters (see :class:`Hyperparameters`).
        resume: ``--resume``: continue from the last checkpoint in :func:`work_dir` or fail. Without
            it an interrupted run of the same chunks, base and settings continues too; a
            different or finished one is started over.
        started_at: ``time.time()`` the time budget counts from (default: now).
        callbacks: extra ``TrainerCallback``s (tests use one to fail mid-run).
        encoder: the index's embedder, already loaded (tests pass a fake); None = load it by name.

    Raises:
        BookwormError: missing or malformed index, unusable model or settings, nothing to resume;
        on Ctrl-C :class:`TrainingInterrupted` after a checkpoint was saved. ``output_dir`` is
        only ever replaced by a complete folder.
    """
    t0 = started_at or time.time()
    log = log if os.environ.get("RANK", "0") == "0" else _silent  # torchrun: rank 0 speaks for all
    deadline = t0 + hp.time_budget * 60 if hp.time_budget > 0 else None
    index_dir, output_dir = Path(index_dir), Path(output_dir)
    work = work_dir(output_dir)
    recover_dir(output_dir)

    data = read_data(index_dir, hp.eval_fraction)
    source, model, tokenizer = load_base(base_model, offline_fallback, cache_dir, log)
    model = with_lora(model, hp.lora_rank, log)
    device, precision = choose_device_precision(hp.precision)
    args = training_arguments(hp, work, device, precision)
    want = resume_key(run_key(data.chunks_sha256, base_model, hp), source.name)
    checkpoint = open_work_dir(work, resume, want, args, log)
    block_size = min(hp.block_size, context_window(model, tokenizer))
    tokenize_and_pack(data, tokenizer, block_size, hp.eval_blocks, args, cache_dir, log)
    with args.main_process_first(desc="answer-from-sources examples"):  # rank 0 fills the cache
        sources = read_sources(
            index_dir, data, tokenizer, context_window(model, tokenizer), hp, cache_dir, encoder, log
        )
    train_mix = mix(data.train_blocks, sources.items, hp.sources_share)
    items = SequenceDataset(train_mix.items) if train_mix.examples else data.train_blocks
    stop = make_stop_callback(log)
    trainer = make_trainer(model, tokenizer, args, items, data.held_out, [stop, *callbacks])
    run_state = read_run_state(work) if checkpoint else {}
    fit_held_out(data, trainer, run_state, hp.time_budget, precision, log)
    base_loss, eval_seconds = score_base(trainer, run_state, log)
    held_out = sources.held_out[: hp.sources_eval]
    sources_before, sources_seconds = score_sources_base(
        model, tokenizer, held_out, run_state, hp.time_budget, log
    )
    held_out = held_out[: sources_before["examples"]] if sources_before else []  # what fit the budget
    steps_per_epoch, full_steps = count_steps(len(items), hp, args.world_size)
    end_seconds = eval_seconds + sources_seconds  # both evaluations run again at the end
    plan(
        stop, args, model, hp, data, eval_seconds, end_seconds, steps_per_epoch, full_steps, deadline, t0, log
    )
    if args.process_index == 0:
        save_run_state(
            work, want, base_loss, eval_seconds, len(data.held_out), sources_before, sources_seconds
        )
    train_wall = train(trainer, stop, checkpoint, work, output_dir)
    sources_after = score_sources_after(trainer.model, tokenizer, held_out, sources_before, log)

    manifest = describe_run(
        trainer, stop, data, hp, source, base_model, index_dir, device, precision, base_loss, t0
    )
    manifest["schedule"] |= {"steps_per_epoch": steps_per_epoch, "world_size": args.world_size}
    manifest["train_wall_seconds"] = round(train_wall, 1)
    manifest["answer_from_sources"] = sources.describe() | {
        "share": hp.sources_share,
        "train_items": train_mix.describe(),
        "held_out": {"base": sources_before, "finetuned": sources_after},
    }
    if trainer.is_world_process_zero():
        finish(trainer, tokenizer, stop, output_dir, work, base_loss, manifest, source, t0, log)
    return manifest


def _silent(*args: Any, **kwargs: Any) -> None:
    pass


def load_base(
    base_model: str, offline_fallback: bool, cache_dir: str | Path | None, log: Any
) -> tuple[LMSource, Any, Any]:
    import torch  # heavy imports after the cheap checks, so a missing index fails fast

    source = resolve_lm(base_model, offline_fallback=offline_fallback, cache_dir=cache_dir)
    note = f" (instead of {base_model!r}: {source.fallback_reason})" if source.fallback_reason else ""
    log(f"Base model: {source.description}{note}")
    model, tokenizer = load_lm(source, dtype=torch.float32)  # fp32 master weights; autocast does bf16
    return source, model, tokenizer


def open_work_dir(work: Path, resume: bool, want: dict[str, Any], args: Any, log: Any) -> str | None:
    """The checkpoint to continue from, or None after emptying the work folder; says which."""
    with args.main_process_first(desc="work folder"):  # rank 0 empties it first: the others then agree
        decision = resume_or_start_over(work, resume, want)
        if args.process_index == 0:
            start_work_dir(work, decision)
    log(decision.message)
    return decision.checkpoint


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
    data: Data,
    tokenizer: Any,
    window: int,
    hp: Hyperparameters,
    cache_dir: str | Path | None,
    encoder: Any,
    log: Any,
) -> SourcesData:
    """The answer-from-sources examples (none when ``sources_share`` is 0)."""
    if hp.sources_share <= 0 or (hp.sources_examples <= 0 and hp.sources_eval <= 0):
        return SourcesData(skipped="sources_share is 0: raw text only")
    order = [c.chunk_id for c in data.body]
    request = Request(
        data.split.train,
        data.split.eval,
        order,
        tokenizer,
        window,
        hp.sources_examples,
        hp.sources_eval,
        hp.seed,
    )
    sources = build_sources(index_dir, data.index_manifest, request, cache_dir, encoder, log)
    if sources.skipped:
        log(f"No answer-from-sources examples: {sources.skipped}; training on raw text only")
    return sources


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
    args: Any,
    model: Any,
    hp: Hyperparameters,
    data: Data,
    eval_seconds: float,
    end_seconds: float,
    steps_per_epoch: int,
    full_steps: int,
    deadline: float | None,
    t0: float,
    log: Any,
) -> None:
    """The first plan: every step asked for, or those a guessed step time fits in the budget.

    The Trainer runs up to ``full_steps``; the stop callback re-plans from measured steps.
    ``eval_seconds``: the held-out perplexity's time (it paces the guessed step time);
    ``end_seconds``: all that the end of the run evaluates again (kept back from the budget).
    """
    stop.ceiling, stop.steps_per_epoch, stop.warmup_ratio = full_steps, steps_per_epoch, hp.warmup_ratio
    stop.planned = full_steps
    if deadline is not None:
        stop.deadline, stop.eval_seconds = deadline, end_seconds
        stop.save_seconds = save_seconds(sum(p.numel() for p in model.parameters()))
        stop.step_guess = guess_step_seconds(
            eval_seconds, len(data.held_out), hp.batch_size * hp.grad_accum, hp.gradient_checkpointing
        )
        reserve = end_reserve(end_seconds, stop.save_seconds, 1.0, epoch_ends=False)
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
    stop.planned = min_across_ranks(stop.planned, args)  # every rank runs the same steps
    args.max_steps = full_steps
    args.logging_steps = logging_steps(stop.planned)


def save_run_state(
    work: Path,
    want: dict[str, Any],
    base_loss: float,
    eval_seconds: float,
    eval_blocks_used: int,
    sources_base: dict[str, Any] | None,
    sources_seconds: float,
) -> None:
    """What the checkpoints are made from, and the base scores a continued run reuses."""
    state = {
        "key": want,
        "base_eval_loss": base_loss,
        "eval_seconds": eval_seconds,
        "eval_blocks_used": eval_blocks_used,
        "sources_base": sources_base,
        "sources_seconds": sources_seconds,
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
    atomic_write_json(output_dir / MANIFEST_NAME, manifest)  # the final wall time, same folder
    if stop.reason is None:  # finished: nothing left to resume, free the checkpoints' disk
        shutil.rmtree(work, ignore_errors=True)
    else:  # a rerun starts afresh; --resume continues the remaining planned steps
        atomic_write_json(work / RUN_FILE, {**read_run_state(work), "finished": True})
        log(f"Checkpoints kept in {work}: --resume continues the remaining planned steps")
