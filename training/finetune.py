"""Fine-tune a causal LM on the index's chunks with the Hugging Face Trainer.

Flow: read chunks -> split -> resolve + load the base model -> tokenise (cached) -> pack ->
score the base model on the held-out blocks -> plan the steps that fit the time budget ->
Trainer.train (evaluate + checkpoint each epoch, keep the best) -> write the model folder
atomically (rank 0 only): model + tokenizer + loss_curve.png + training_manifest.json.

Checkpoints live in a work folder beside the output (``models/.finetuned.work/``) so that a
rerun continues an interrupted run (:mod:`training.runs`) and a failed run never touches the
output folder.
Runs unchanged under ``torchrun``/``accelerate launch`` (DDP): the Trainer shards batches,
the stop decision is shared across ranks, and only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.atomic import atomic_dir, atomic_write_json, recover_dir
from core.errors import BookwormError, ConfigError, ModelError
from core.hardware import cpu_supports_bf16
from core.sources import LMSource, context_window, load_lm, resolve_lm
from training.chunks import body_chunks, read_index
from training.data import pack, separator_id, split_chunks, spread, tokenize_texts
from training.evaluate import eval_blocks
from training.plots import plot_loss_curve
from training.runs import (
    RUN_FILE,
    read_run_state,
    resume_key,
    resume_or_start_over,
    run_key,
    start_work_dir,
    work_dir,
)

MANIFEST_NAME = "training_manifest.json"
# 2: chunks packed with the document separator; format 1 models learned to end their turn after book text
MANIFEST_FORMAT = 2
LOSS_CURVE_NAME = "loss_curve.png"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# Planning the steps that fit a time budget from the measured eval speed:
EVAL_SHARE = 0.08  # most of the budget one held-out evaluation may take (there are two: before, after)
TRAIN_OVER_EVAL = 2.2  # a training step per block costs ~2 evaluation forwards (measured 2.0 on CPU bf16)
SAVE_BYTES_PER_PARAM = 24  # checkpoint (weights + 2 Adam moments) + best-model reload + final save
DISK_BYTES_PER_S = 150e6  # pessimistic write speed, for the time kept back to save


class TrainingInterrupted(BookwormError):
    """Ctrl-C: a checkpoint was saved to the work folder, the output folder left as it was."""


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """What a run was asked to do; recorded in the manifest and compared by ``--if-stale``."""

    epochs: float  # passes over the training blocks
    batch_size: int  # blocks per device per micro-step
    grad_accum: int  # micro-steps per optimizer step
    learning_rate: float
    warmup_ratio: float  # share of the planned steps with rising learning rate
    lr_scheduler: str  # transformers scheduler name, e.g. "cosine"
    weight_decay: float
    block_size: int  # requested; capped at the model's context window
    eval_fraction: float  # held-out share of each file's chunks
    eval_blocks: int  # held-out blocks scored (0 = all)
    max_steps: int  # -1 = epochs decide
    time_budget: float  # minutes for the whole run, 0 = none
    gradient_checkpointing: bool
    precision: str  # auto, bf16, fp16, fp32
    seed: int

    def __post_init__(self) -> None:
        checks = {
            "epochs must be > 0": self.epochs > 0,
            "batch_size must be >= 1": self.batch_size >= 1,
            "grad_accum must be >= 1": self.grad_accum >= 1,
            "learning_rate must be > 0": self.learning_rate > 0,
            "warmup_ratio must be in [0, 1)": 0 <= self.warmup_ratio < 1,
            "weight_decay must be >= 0": self.weight_decay >= 0,
            "block_size must be >= 2": self.block_size >= 2,
            "eval_fraction must be in (0, 1)": 0 < self.eval_fraction < 1,
            "eval_blocks must be >= 0": self.eval_blocks >= 0,
            "max_steps must be -1 or >= 1": self.max_steps == -1 or self.max_steps >= 1,
            "time_budget must be >= 0": self.time_budget >= 0,
            f"precision must be one of {', '.join(PRECISIONS)}": self.precision in PRECISIONS,
        }
        failed = [msg for msg, ok in checks.items() if not ok]
        if failed:
            raise ConfigError("; ".join(failed))

    @classmethod
    def from_settings(cls, settings: Any) -> Hyperparameters:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})


# --- the index -------------------------------------------------------------------


def stale_reason(
    output_dir: str | Path, index_dir: str | Path, base_model: str, hp: Hyperparameters
) -> str | None:
    """None when ``output_dir`` already holds a model trained on these chunks with these settings."""
    manifest_path = Path(output_dir) / MANIFEST_NAME
    if not manifest_path.exists():
        return f"no trained model in {output_dir}"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return f"{manifest_path} is not valid JSON"
    if manifest.get("format", 1) < MANIFEST_FORMAT:
        return "it was trained by an older bookworm that packed chunks with the chat end-of-turn token"
    _, digest, _ = read_index(Path(index_dir))
    want = run_key(digest, base_model, hp)
    have = run_key(
        manifest.get("data", {}).get("chunks_sha256", ""),
        manifest.get("base_model", {}).get("requested", ""),
        hp,
    )
    have["hyperparameters"] = manifest.get("hyperparameters", {})
    if have["chunks_sha256"] != want["chunks_sha256"]:
        return "the index's chunks changed since the model was trained"
    if have["base_model"] != want["base_model"]:
        return f"base model {base_model!r} differs from the trained one's {have['base_model']!r}"
    changed = sorted(
        k for k in want["hyperparameters"] if have["hyperparameters"].get(k) != want["hyperparameters"][k]
    )
    if changed:
        return f"hyper-parameters changed: {', '.join(changed)}"
    if manifest.get("base_model", {}).get("fallback_reason") and _loadable_without_fallback(base_model):
        return f"it was trained on the offline fallback, and {base_model!r} can be loaded now"
    return None


def _loadable_without_fallback(name: str) -> bool:
    try:
        resolve_lm(name, offline_fallback=False)
    except ModelError:
        return False
    return True


# --- device and precision -----------------------------------------------------------


def choose_device_precision(requested: str) -> tuple[str, str]:
    """(device type, precision): CUDA bf16 (fp16 where unsupported), CPU bf16 autocast where native."""
    import torch

    if torch.cuda.is_available():
        device, bf16_ok, fp16_ok = "cuda", torch.cuda.is_bf16_supported(), True
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, bf16_ok, fp16_ok = "mps", False, False
    else:
        device, bf16_ok, fp16_ok = "cpu", cpu_supports_bf16(), False
    if requested == "auto":
        return device, "bf16" if bf16_ok else ("fp16" if fp16_ok else "fp32")
    if (requested == "bf16" and not bf16_ok and device != "cpu") or (requested == "fp16" and not fp16_ok):
        raise ConfigError(f"precision {requested} is not supported on this {device}; use auto or fp32")
    return device, requested


# --- datasets and callbacks ---------------------------------------------------------


class BlockDataset:
    """Packed blocks as a map-style dataset; labels are the input ids (the model shifts them).

    Batches go through ``default_data_collator``, not ``DataCollatorForLanguageModeling``:
    the latter masks pad tokens in the labels, and GPT-2's pad *is* EOS, our chunk separator.
    """

    def __init__(self, blocks: Sequence[Sequence[int]]):
        import torch

        lengths = {len(b) for b in blocks}
        assert len(lengths) <= 1, "blocks must share one length (only the short-stream case is short)"
        self.ids = torch.tensor(blocks, dtype=torch.long)  # (n_blocks, block_size)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _make_stop_callback():
    from transformers import TrainerCallback

    class StopCallback(TrainerCallback):
        """Ends training cleanly on a time budget or Ctrl-C, the same step on every rank.

        Stopping mid-epoch runs the epoch-end evaluation and checkpoint; a Ctrl-C skips the
        evaluation (a second Ctrl-C kills at once).
        """

        def __init__(self) -> None:
            self.deadline: float | None = None  # time.time() by which training must stop
            self.reserve = 0.0  # seconds kept back for the final evaluation and saves (as planned)
            self.eval_reserve = 0.0  # the final evaluation's share of it, at the planned speed
            self.save_reserve = 0.0  # the checkpoint and model saves' share of it
            self.expected_step = 0.0  # planned seconds per step; slower steps scale eval_reserve
            self.steps_per_epoch = 0  # optimizer steps per epoch: each epoch's end evaluates and saves
            self.reason: str | None = None  # "time_budget" | "interrupt"
            self.interrupted = False
            self.step_seconds: list[float] = []
            self.tokens_at_start = 0
            self._began = 0.0
            self._old_handler: Any = None

        def arm(self) -> None:
            import threading

            if threading.current_thread() is threading.main_thread():
                self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)

        def disarm(self) -> None:
            if self._old_handler is not None:
                signal.signal(signal.SIGINT, self._old_handler)
                self._old_handler = None

        def _on_sigint(self, signum: int, frame: Any) -> None:
            self.interrupted = True
            print(
                "\nInterrupted: saving a checkpoint after this step (Ctrl-C again to abort).", file=sys.stderr
            )
            self.disarm()

        def on_train_begin(self, args, state, control, **kwargs):
            self.tokens_at_start = state.num_input_tokens_seen

        def on_step_begin(self, args, state, control, **kwargs):
            self._began = time.time()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.time()
            self.step_seconds.append(now - self._began)
            code = 2 if self.interrupted else 0
            if self.deadline is not None and not code:
                recent = statistics.mean(self.step_seconds[-5:])
                # steps slower than planned (a busier machine) make the final evaluation slower too
                slowdown = max(1.0, recent / self.expected_step) if self.expected_step else 1.0
                end = self.eval_reserve * slowdown + self.save_reserve  # the final evaluation + saves
                if self.steps_per_epoch and state.global_step % self.steps_per_epoch == 0:
                    end *= 2  # an epoch ends here: its evaluation + checkpoint now, then the final ones
                if now + 1.1 * recent + end > self.deadline:
                    code = 1
            code = _max_across_ranks(code, args)
            if code:
                self.reason = "interrupt" if code == 2 else "time_budget"
                control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.reason == "interrupt":
                control.should_evaluate = False  # keep the checkpoint, skip the wait
                control.should_save = True
            return control

    return StopCallback()


def _max_across_ranks(value: int, args: Any) -> int:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    import torch

    t = torch.tensor([value], device=args.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


# --- the run --------------------------------------------------------------------------


def finetune(
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

    Raises:
        BookwormError: missing index, unusable model or settings, nothing to resume; on Ctrl-C
        :class:`TrainingInterrupted` after a checkpoint was saved. ``output_dir`` is only ever
        replaced by a complete folder.
    """
    t0 = started_at or time.time()
    if os.environ.get("RANK", "0") != "0":  # torchrun / accelerate: rank 0 speaks for all
        log = _silent
    deadline = t0 + hp.time_budget * 60 if hp.time_budget > 0 else None
    index_dir, output_dir = Path(index_dir), Path(output_dir)
    work = work_dir(output_dir)
    recover_dir(output_dir)

    all_chunks, chunks_sha, index_manifest = read_index(index_dir)
    chunks = body_chunks(all_chunks)  # contents and index pages: neither training nor held-out text
    split = split_chunks(chunks, hp.eval_fraction)
    if not split.train or not split.eval:
        raise ConfigError(
            f"cannot hold out {hp.eval_fraction:.0%} of {len(chunks)} body chunks: every file needs 2+ chunks"
        )

    import torch  # heavy imports after the cheap checks, so a missing index fails fast
    from transformers import Trainer, TrainingArguments, default_data_collator

    source = resolve_lm(base_model, offline_fallback=offline_fallback, cache_dir=cache_dir)
    note = f" (instead of {base_model!r}: {source.fallback_reason})" if source.fallback_reason else ""
    log(f"Base model: {source.description}{note}")
    model, tokenizer = load_lm(source, dtype=torch.float32)  # fp32 master weights; autocast does bf16
    device, precision = choose_device_precision(hp.precision)
    block_size = min(hp.block_size, context_window(model, tokenizer))
    key = run_key(chunks_sha, base_model, hp)
    want = resume_key(key, source.name)

    args = TrainingArguments(
        output_dir=str(work),
        num_train_epochs=hp.epochs,
        max_steps=hp.max_steps,  # replaced by the planned steps below
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.grad_accum,
        learning_rate=hp.learning_rate,
        warmup_steps=hp.warmup_ratio,  # < 1 means a share of the steps
        lr_scheduler_type=hp.lr_scheduler,
        weight_decay=hp.weight_decay,
        eval_strategy="epoch",  # a stop mid-epoch (budget, max_steps) also ends with one
        save_strategy="epoch",
        save_total_limit=2,  # the best and the latest
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=25,  # set from the planned steps below
        logging_first_step=True,
        include_num_input_tokens_seen="all",  # packed: every token is a useful one
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        **_checkpointing_kwargs(hp.gradient_checkpointing),
        seed=hp.seed,
        data_seed=hp.seed,
        report_to="none",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )  # creating it starts the distributed state under torchrun
    main_rank = args.process_index == 0

    with args.main_process_first(desc="tokenise"):  # rank 0 fills the cache, the others read it
        decision = resume_or_start_over(work, resume, want)  # after rank 0 emptied it: the same choice
        if main_rank:
            start_work_dir(work, decision)
        tok_cache = _tok_cache_dir(cache_dir)
        train_ids = tokenize_texts([c.text for c in split.train], tokenizer, tok_cache)
        eval_ids = tokenize_texts([c.text for c in split.eval], tokenizer, tok_cache)
    separator = separator_id(tokenizer)  # the document separator, never the chat end-of-turn
    train_blocks = pack(train_ids, block_size, separator)
    held_out = eval_blocks(eval_ids, block_size, separator, hp.eval_blocks)
    n_train_tokens = sum(len(b) for b in train_blocks)
    log(
        f"Data: {len(split.train)} training chunks -> {len(train_blocks)} blocks "
        f"of {len(train_blocks[0])} tokens; "
        f"{len(split.eval)} held-out chunks -> {len(held_out)} blocks scored"
    )

    model.config.use_cache = False  # no generation while training; required with checkpointing
    stop = _make_stop_callback()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=BlockDataset(train_blocks),
        eval_dataset=BlockDataset(held_out),
        data_collator=default_data_collator,
        processing_class=tokenizer,
        callbacks=[stop, *callbacks],
    )

    last = decision.checkpoint
    log(decision.message)
    run_state = read_run_state(work) if last else {}
    if run_state.get("eval_blocks_used"):
        held_out = [held_out[i] for i in spread(len(held_out), run_state["eval_blocks_used"])]
    elif deadline is not None:  # each evaluation may take EVAL_SHARE of the budget
        per_block = _seconds_per_block(trainer.model, held_out[0], args.device, precision)
        fit = -_max_across_ranks(-max(2, int(EVAL_SHARE * hp.time_budget * 60 / per_block)), args)  # min
        if fit < len(held_out):
            log(
                f"Scoring {fit} of {len(held_out)} held-out blocks (~{per_block:.1f} s each) "
                "to fit the time budget"
            )
            held_out = [held_out[i] for i in spread(len(held_out), fit)]
    trainer.eval_dataset = BlockDataset(held_out)
    if "base_eval_loss" in run_state:
        base_loss, eval_seconds = run_state["base_eval_loss"], run_state["eval_seconds"]
    else:
        log("Scoring the base model on the held-out blocks...")
        t = time.time()
        base_loss = trainer.evaluate()["eval_loss"]
        eval_seconds = time.time() - t
    log(f"Perplexity before: {math.exp(base_loss):.2f} ({eval_seconds:.0f} s to score)")

    world = args.world_size
    micro_batches = math.ceil(len(train_blocks) / (hp.batch_size * world))
    steps_per_epoch = max(1, math.ceil(micro_batches / hp.grad_accum))
    full_steps = hp.max_steps if hp.max_steps > 0 else math.ceil(hp.epochs * steps_per_epoch)
    n_params = sum(p.numel() for p in model.parameters())
    stop.eval_reserve = 1.3 * eval_seconds
    stop.save_reserve = SAVE_BYTES_PER_PARAM * n_params / DISK_BYTES_PER_S + 5
    stop.reserve = stop.eval_reserve + stop.save_reserve
    step_guess = TRAIN_OVER_EVAL * eval_seconds / len(held_out) * hp.batch_size * hp.grad_accum
    step_guess *= 4 / 3 if hp.gradient_checkpointing else 1
    stop.expected_step = step_guess
    stop.steps_per_epoch = steps_per_epoch
    if last and run_state.get("planned_steps") and hp.max_steps in (-1, run_state.get("max_steps_asked")):
        planned = run_state["planned_steps"]
    else:
        planned = full_steps
        if deadline is not None:
            room = deadline - time.time() - stop.reserve
            if room < step_guess:
                raise ConfigError(
                    f"the time budget of {hp.time_budget:g} min is spent before training can start "
                    f"({time.time() - t0:.0f} s loading and scoring, {stop.reserve:.0f} s kept to save); "
                    "raise --time-budget"
                )
            planned = min(full_steps, max(1, int(room / step_guess)))
            if planned < full_steps:
                log(
                    f"Time budget {hp.time_budget:g} min: planning {planned} of {full_steps} steps "
                    f"(~{step_guess:.1f} s each); the schedule spans the planned steps"
                )
    args.max_steps = planned = -_max_across_ranks(-planned, args)  # every rank runs the same steps
    args.logging_steps = max(1, min(25, planned // 40))  # ~40 points on the loss curve, every step if short
    stop.deadline = deadline
    if main_rank:
        atomic_write_json(
            work / RUN_FILE,
            {
                "key": want,
                "base_eval_loss": base_loss,
                "eval_seconds": eval_seconds,
                "planned_steps": planned,
                "max_steps_asked": hp.max_steps,
                "eval_blocks_used": len(held_out),
            },
        )

    t_train = time.time()
    stop.arm()
    try:
        trainer.train(resume_from_checkpoint=last)
    finally:
        stop.disarm()
    train_wall = time.time() - t_train
    state = trainer.state
    if stop.reason == "interrupt":
        raise TrainingInterrupted(
            f"interrupted at step {state.global_step}; checkpoint saved in {work}. "
            f"Run again (or with --resume) to continue. {output_dir} was left as it was."
        )

    best_loss = state.best_metric if state.best_metric is not None else trainer.evaluate()["eval_loss"]
    if stop.reason:
        stopped_by = stop.reason
    elif planned < full_steps:
        stopped_by = "time_budget (planned steps done)"
    else:
        stopped_by = "max_steps" if hp.max_steps > 0 else "epochs"
    tokens_run = state.num_input_tokens_seen - stop.tokens_at_start
    train_losses = [e["loss"] for e in state.log_history if "loss" in e]
    step_time = sum(stop.step_seconds)
    manifest = {
        "format": MANIFEST_FORMAT,
        "base_model": {
            "requested": base_model,
            "used": source.name,
            "description": source.description,
            "fallback_reason": source.fallback_reason,
        },
        "data": {
            "index_dir": str(index_dir),
            "chunks_sha256": chunks_sha,
            "index_manifest_built_at": index_manifest.get("built_at"),
            "index_counts": index_manifest.get("counts"),
            "non_body_chunks": len(all_chunks) - len(chunks),
            "train_chunks": len(split.train),
            "eval_chunks": len(split.eval),
            "train_blocks": len(train_blocks),
            "train_tokens": n_train_tokens,
            "separator": tokenizer.convert_ids_to_tokens(separator),
            "eval_blocks": len(held_out),
            "split": split.describe(hp.eval_fraction),
        },
        "hyperparameters": dataclasses.asdict(hp),
        "schedule": {
            "block_size": len(train_blocks[0]),
            "steps_per_epoch": steps_per_epoch,
            "planned_steps": planned,
            "warmup_steps": args.get_warmup_steps(planned),
            "blocks_per_step": hp.batch_size * hp.grad_accum * world,
            "world_size": world,
        },
        "device": device,
        "device_name": _device_name(device),
        "precision": precision,
        "steps": state.global_step,
        "epochs_done": round(state.epoch or 0.0, 4),
        "stopped_by": stopped_by,
        "best_checkpoint_step": _step_of(state.best_model_checkpoint),
        "tokens_seen": state.num_input_tokens_seen,
        "wall_seconds": round(time.time() - t0, 1),
        "train_seconds": round(step_time, 1),
        "train_wall_seconds": round(train_wall, 1),
        "useful_tokens_per_s": round(tokens_run / step_time, 1) if step_time else None,
        "loss": {"train_first": train_losses[0], "train_last": train_losses[-1]} if train_losses else None,
        "perplexity": {
            "base": round(math.exp(base_loss), 4),
            "finetuned": round(math.exp(best_loss), 4),
            "eval_blocks": len(held_out),
            "block_size": len(held_out[0]),
        },
        "versions": _versions(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if trainer.is_world_process_zero():
        _write_output(output_dir, trainer.model, tokenizer, state.log_history, base_loss, manifest, source)
        manifest["wall_seconds"] = round(time.time() - t0, 1)
        atomic_write_json(output_dir / MANIFEST_NAME, manifest)  # the final wall time, same folder
        if stop.reason is None:  # finished: nothing left to resume, free the checkpoints' disk
            shutil.rmtree(work, ignore_errors=True)
        else:  # a rerun starts afresh; --resume continues the remaining planned steps
            atomic_write_json(work / RUN_FILE, {**read_run_state(work), "finished": True})
            log(f"Checkpoints kept in {work}: --resume continues the remaining planned steps")
    return manifest


def _silent(*args: Any, **kwargs: Any) -> None:
    pass


def _write_output(
    output_dir: Path,
    model: Any,
    tokenizer: Any,
    log_history: list[dict[str, Any]],
    base_loss: float,
    manifest: dict[str, Any],
    source: LMSource,
) -> None:
    model.config.use_cache = True  # generation wants its KV cache back
    with atomic_dir(output_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        plot_loss_curve(
            log_history,
            tmp / LOSS_CURVE_NAME,
            base_eval_loss=base_loss,
            title=f"fine-tuning {source.name} on the indexed chunks",
        )
        atomic_write_json(tmp / MANIFEST_NAME, manifest)


def _tok_cache_dir(cache_dir: str | Path | None) -> Path:
    from core.sources import cache_root

    return cache_root(cache_dir) / "tokenized"


def _seconds_per_block(model: Any, block: list[int], device: Any, precision: str) -> float:
    """Time one forward pass over one block, as the evaluation will run it."""
    import contextlib

    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext()
    ids = torch.tensor([block], device=device)
    was_training = model.training
    model.eval()
    t = time.time()
    with torch.no_grad(), autocast:
        model(input_ids=ids)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    model.train(was_training)
    return max(time.time() - t, 1e-3)


def _checkpointing_kwargs(enabled: bool) -> dict[str, bool]:
    """transformers 5.x renamed gradient_checkpointing to activation_checkpointing (old name warns)."""
    if not enabled:
        return {}
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {
        "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": True
    }


def _step_of(checkpoint: str | None) -> int | None:
    if not checkpoint:
        return None
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return None


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{device} ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "datasets", "accelerate", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out
