"""Which model answers: the fine-tuned folder when it exists, else the base model.

training and the assistant meet only through the model folder (``core.layout.ModelFiles``): a
transformers model + the training manifest (base model used, data hash, perplexities).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from assistant.records import ModelInfo
from core.atomic import readable_dir
from core.hardware import cpu_supports_bf16
from core.layout import ModelFiles, model_ready
from core.sources import LMSource, resolve_lm


def resolve_model(
    model_dir: str | Path | None,
    base_model: str = "gpt2",
    *,
    offline_fallback: bool = True,
    cache_dir: str | None = None,
) -> tuple[ModelInfo, LMSource]:
    """Resolve (without loading weights) the model that will answer.

    ``model_dir`` holding a model -> that model, fine-tuned when a training manifest says so.
    Otherwise ``base_model`` resolved as training resolves it (offline fallback included),
    with a note saying why.
    """
    # a training run killed between the two renames of its swap leaves only .<name>.old: that
    # is still the fine-tuned model, not a reason to fall back to the base one
    folder = readable_dir(model_dir) if model_dir else None
    if folder is not None and ModelFiles(folder).holds_model():
        return _fine_tuned(model_dir, folder)
    return _base(model_dir, base_model, offline_fallback, cache_dir)


def _fine_tuned(model_dir: str | Path, folder: Path) -> tuple[ModelInfo, LMSource]:
    """The model in ``folder`` (``model_dir`` itself, or its ``.old`` in a swap's crash window)."""
    source = resolve_lm(str(folder))
    manifest = ModelFiles(folder).read_manifest()
    base = ((manifest or {}).get("base_model") or {}).get("used") or "unknown"
    ppl = (manifest or {}).get("perplexity") or {}
    note = "" if manifest else f"{model_dir} has no {ModelFiles.MANIFEST}; treated as a fine-tuned model"
    if folder != Path(model_dir):
        note = (
            f"{model_dir} is missing (a training run was interrupted while saving); answering with "
            f"the previous fine-tuned model in {folder}. The next `make train` puts it back. {note}"
        ).strip()
    info = ModelInfo(
        model_id=str(model_dir),
        base_model=base,
        fine_tuned=True,
        perplexity_base=ppl.get("base"),
        perplexity_finetuned=ppl.get("finetuned"),
        manifest=manifest,
        path=source.path,
        note=note,
    )
    return info, source


def _base(
    model_dir: str | Path | None, base_model: str, offline_fallback: bool, cache_dir: str | None
) -> tuple[ModelInfo, LMSource]:
    """No fine-tuned model: ``base_model`` answers, with a note saying why (and any fallback)."""
    with warnings.catch_warnings():  # the fallback warning becomes the note below, shown by CLI and UI
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_lm(base_model, offline_fallback=offline_fallback, cache_dir=cache_dir)
    note = (
        f"{model_ready(model_dir)}; answering with the base model {source.description}"
        if model_dir
        else f"answering with the base model {source.description}"
    )
    if source.fallback_reason:
        note += f" because {source.fallback_reason}"
    info = ModelInfo(
        model_id=source.name,
        base_model=source.name,
        fine_tuned=False,
        perplexity_base=None,
        perplexity_finetuned=None,
        manifest=None,
        path=source.path,
        note=note,
    )
    return info, source


def resolve_lead(lead: str, info: ModelInfo) -> str:
    """ "auto" -> "quote" for a model trained on answer-from-sources examples, else "none".

    Those models learned to quote then stop, so an answer opened with the best quote is their own
    format (dev set: F1 0.185 -> 0.212, whole answer 2.4 -> 1.0 s); the base and raw-text models go
    on after it in their own words and scored lower with it (base 0.200 -> 0.179, raw 0.161 -> 0.148)."""
    if lead != "auto":
        return lead
    trained = ((info.manifest or {}).get("answer_from_sources") or {}).get("train_examples", 0)
    return "quote" if trained else "none"


def resolve_prefill(prefill: str, model: Any) -> str:
    """ "bf16" or "fp32": "auto" reads the prompt with bf16 matmuls (``generate.bf16_prompt_matmuls``)
    where that is fast and close to fp32: fp32 weights on a CPU with native bf16. Elsewhere bf16 is
    emulated (slower), or the weights are already half precision (CUDA), so there is nothing to gain."""
    if prefill != "auto":
        return prefill
    import torch

    weights = next(model.parameters())
    native = weights.device.type == "cpu" and cpu_supports_bf16()
    return "bf16" if native and weights.dtype == torch.float32 else "fp32"
