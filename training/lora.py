"""Optional LoRA (peft): train low-rank adapters instead of every weight, for bases too big to fine-tune
whole on the machine at hand. The saved model folder has the adapters merged in, so it loads like any
fine-tuned model (the assistant needs no peft). Full fine-tuning stays the default: at 124-135M
parameters it fits on a CPU, and it moves the model further within a short time budget.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError

LORA_ALPHA_PER_RANK = 2  # alpha = 2r: the update's scale stays the same whatever the rank
LORA_DROPOUT = 0.05


def with_lora(model: Any, rank: int, log: Any = print) -> Any:
    """``model`` wrapped with rank-``rank`` adapters on every linear layer (0: the model itself)."""
    if rank <= 0:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise ConfigError("lora_rank needs the peft package: pip install peft") from e
    config = LoraConfig(
        r=rank,
        lora_alpha=LORA_ALPHA_PER_RANK * rank,
        lora_dropout=LORA_DROPOUT,
        target_modules="all-linear",  # every projection, GPT-2's Conv1D included; not the LM head
        task_type="CAUSAL_LM",
    )
    wrapped = get_peft_model(model, config)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.parameters())
    log(f"LoRA rank {rank}: training {trainable:,} of {total:,} parameters ({trainable / total:.2%})")
    return wrapped


def merged(model: Any) -> Any:
    """The plain model to save: adapters folded into the weights (a model without adapters as is)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
