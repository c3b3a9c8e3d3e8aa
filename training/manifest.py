"""The model folder's record of how it was made (``core.layout.ModelFiles.manifest``), and its freshness.

:func:`describe_run` makes it; ``--if-stale`` compares a new run with it (:func:`stale_reason`);
the output folder is written whole or not at all (:func:`write_output`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.atomic import atomic_dir, atomic_write_json
from core.errors import ModelError
from core.layout import ModelFiles
from core.sources import LMSource, resolve_lm
from training.chunks import read_index
from training.hyperparameters import Hyperparameters
from training.plots import plot_loss_curve
from training.prepare import Data
from training.run_setup import Setup
from training.runs import run_key

# 2: chunks packed with the document separator; format 1 models learned to end their turn after book text
MANIFEST_FORMAT = 2


def stale_reason(
    output_dir: str | Path, index_dir: str | Path, base_model: str, hp: Hyperparameters
) -> str | None:
    """None when ``output_dir`` already holds a model trained on these chunks with these settings."""
    manifest_path = ModelFiles(output_dir).manifest
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


def write_output(
    output_dir: Path,
    model: Any,
    tokenizer: Any,
    log_history: list[dict[str, Any]],
    base_loss: float,
    manifest: dict[str, Any],
    source: LMSource,
) -> None:
    """Replace ``output_dir`` with model + tokenizer + loss curve + manifest, all at once."""
    model.config.use_cache = True  # generation wants its KV cache back
    with atomic_dir(output_dir) as tmp:
        files = ModelFiles(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        plot_loss_curve(
            log_history,
            files.loss_curve,
            base_eval_loss=base_loss,
            title=f"fine-tuning {source.name} on the indexed chunks",
        )
        atomic_write_json(files.manifest, manifest)


def finished_at() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def step_of(checkpoint: str | None) -> int | None:
    """The step number in a checkpoint folder's name (``checkpoint-12`` -> 12)."""
    if not checkpoint:
        return None
    try:
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])
    except ValueError:
        return None


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{device} ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"


def versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "datasets", "accelerate", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def describe_run(
    trainer: Any,
    stop: Any,
    run: Setup,
    hp: Hyperparameters,
    base_model: str,
    index_dir: Path,
    base_loss: float,
    t0: float,
) -> dict[str, Any]:
    """The manifest: what was trained on, how, how long, and the held-out scores."""
    state = trainer.state
    best_loss = state.best_metric if state.best_metric is not None else trainer.evaluate()["eval_loss"]
    return {
        "format": MANIFEST_FORMAT,
        "base_model": {
            "requested": base_model,
            "used": run.source.name,
            "description": run.source.description,
            "fallback_reason": run.source.fallback_reason,
        },
        "data": _data_record(run.data, index_dir, hp, trainer.processing_class),
        "hyperparameters": dataclasses.asdict(hp),
        "schedule": {
            "block_size": len(run.data.train_blocks[0]),
            "planned_steps": stop.planned,
            "replans": stop.replans,
            "warmup_steps": math.ceil(hp.warmup_ratio * stop.planned),
            "blocks_per_step": hp.batch_size * hp.grad_accum * trainer.args.world_size,
        },
        "device": run.device,
        "device_name": device_name(run.device),
        "precision": run.precision,
        **_progress_record(state, stop, hp, t0),
        "perplexity": {
            "base": round(math.exp(base_loss), 4),
            "finetuned": round(math.exp(best_loss), 4),
            "eval_blocks": len(run.data.held_out),
            "block_size": len(run.data.held_out[0]),
        },
        "versions": versions(),
        "finished_at": finished_at(),
    }


def _data_record(data: Data, index_dir: Path, hp: Hyperparameters, tokenizer: Any) -> dict[str, Any]:
    """Which index and chunks the run read, and how they were split and packed."""
    return {
        "index_dir": str(index_dir),
        "chunks_sha256": data.chunks_sha256,
        "index_manifest_built_at": data.index_manifest.get("built_at"),
        "index_counts": data.index_manifest.get("counts"),
        "non_body_chunks": data.non_body,
        "train_chunks": len(data.split.train),
        "eval_chunks": len(data.split.eval),
        "train_blocks": len(data.train_blocks),
        "train_tokens": sum(len(b) for b in data.train_blocks),
        "separator": tokenizer.convert_ids_to_tokens(data.separator),
        "eval_blocks": len(data.held_out),
        "split": data.split.describe(hp.eval_fraction),
    }


def _progress_record(state: Any, stop: Any, hp: Hyperparameters, t0: float) -> dict[str, Any]:
    """How far the run got, why it stopped, how long it took and how fast it went."""
    tokens_run = state.num_input_tokens_seen - stop.tokens_at_start
    train_losses = [e["loss"] for e in state.log_history if "loss" in e]
    step_time = sum(stop.step_seconds)
    return {
        "steps": state.global_step,
        "epochs_done": round(state.epoch or 0.0, 4),
        "stopped_by": _stopped_by(stop, hp),
        "best_checkpoint_step": step_of(state.best_model_checkpoint),
        "tokens_seen": state.num_input_tokens_seen,
        "wall_seconds": round(time.time() - t0, 1),
        "train_seconds": round(step_time, 1),
        "useful_tokens_per_s": round(tokens_run / step_time, 1) if step_time else None,
        "loss": {"train_first": train_losses[0], "train_last": train_losses[-1]} if train_losses else None,
    }


def _stopped_by(stop: Any, hp: Hyperparameters) -> str:
    if stop.reason:
        return "time_budget (planned steps done)" if stop.reason == "time_budget" else stop.reason
    return "max_steps" if hp.max_steps > 0 else "epochs"
