"""What a run is asked to do: the training settings as one checked, frozen record."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
LOSS_AVERAGES = ("tokens", "items")


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
    sources_share: float  # share of training items that are answer-from-sources examples (0 = raw text only)
    sources_examples: int  # answer-from-sources examples built (most; fewer when the books give fewer)
    lora_rank: int  # 0 = full fine-tuning; r > 0 = rank-r LoRA adapters (peft), merged into the saved model
    sources_eval: int  # held-out answer-from-sources examples answered before and after (0 = none)
    loss_average: str  # "tokens": mean over a batch's labelled tokens; "items": each item's mean, averaged

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
            "sources_share must be in [0, 1)": 0 <= self.sources_share < 1,
            "sources_examples must be >= 0": self.sources_examples >= 0,
            "sources_eval must be >= 0": self.sources_eval >= 0,
            "lora_rank must be >= 0": self.lora_rank >= 0,
            f"precision must be one of {', '.join(PRECISIONS)}": self.precision in PRECISIONS,
            f"loss_average must be one of {', '.join(LOSS_AVERAGES)}": self.loss_average in LOSS_AVERAGES,
        }
        failed = [msg for msg, ok in checks.items() if not ok]
        if failed:
            raise ConfigError("; ".join(failed))

    @classmethod
    def from_settings(cls, settings: Any) -> Hyperparameters:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})
