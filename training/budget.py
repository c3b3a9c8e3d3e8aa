"""How many optimizer steps fit a time budget: planned before training, re-planned every step.

Pure arithmetic on measured times (tested table-driven). The first plan is a guess from the
held-out evaluation's speed; once steps have run, the plan follows their measured time, so a
run on a machine busier than at the start plans fewer steps (and its learning-rate schedule
still ends), and a quieter one more, up to the epochs or ``max_steps`` asked for. What is
kept back for the end: the final evaluation, the held-out answers and the saves.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

EVAL_SHARE = 0.08  # most of the budget one held-out evaluation may take (there are two: before, after)
# most of the budget the base model's held-out answers may take (~6 s each on 2 idle cores: ~12 in 10 min);
# the fine-tuned model answers the same ones at the end, usually faster (it stops after its quote)
SOURCES_EVAL_SHARE = 0.12
TRAIN_OVER_EVAL = 2.2  # a training step per block costs ~2 evaluation forwards (measured 2.0 on CPU bf16)
SAVE_BYTES_PER_PARAM = 24  # checkpoint (weights + 2 Adam moments) + best-model reload + final save
DISK_BYTES_PER_S = 150e6  # pessimistic write speed, for the time kept back to save
SAVE_FIXED_SECONDS = 5.0  # opening files, the loss-curve plot, the tokenizer
EVAL_MARGIN = 1.3  # the final evaluation may run this much slower than the measured one
SKIPPED_STEPS = 1  # the first step pays one-off costs (optimizer state, kernel choice): not a speed
RECENT_STEPS = 5  # the plan follows the median of the latest steps: one slow checkpoint is no trend
BASELINE_STEPS = 3  # the first measured steps: the speed the held-out evaluation was timed at


def save_seconds(n_params: int) -> float:
    """Seconds kept back for the checkpoint, the best-model reload and the final save."""
    return SAVE_BYTES_PER_PARAM * n_params / DISK_BYTES_PER_S + SAVE_FIXED_SECONDS


def guess_step_seconds(
    eval_seconds: float, eval_blocks: int, blocks_per_step: int, gradient_checkpointing: bool
) -> float:
    """Seconds per optimizer step before any has run, from the held-out evaluation's speed."""
    step = TRAIN_OVER_EVAL * eval_seconds / eval_blocks * blocks_per_step
    return step * (4 / 3 if gradient_checkpointing else 1)  # checkpointing recomputes the forward


def measured_step_seconds(step_seconds: Sequence[float]) -> float | None:
    """The recent step time (median of the last :data:`RECENT_STEPS`), None before any counts."""
    usable = step_seconds[SKIPPED_STEPS:]
    return statistics.median(usable[-RECENT_STEPS:]) if usable else None


def slowdown(step_seconds: Sequence[float]) -> float:
    """How much slower steps run now than when training began (>= 1): the machine got busier.

    The final evaluation is reserved at the measured evaluation time times this; load that was
    there from the start is already in that measurement, so it is not counted twice.
    """
    usable = step_seconds[SKIPPED_STEPS:]
    if len(usable) <= BASELINE_STEPS:
        return 1.0
    baseline = statistics.median(usable[:BASELINE_STEPS])
    return max(1.0, statistics.median(usable[-RECENT_STEPS:]) / baseline)


def end_reserve(
    eval_seconds: float, answer_seconds: float, save: float, load: float, epoch_ends: bool
) -> float:
    """Seconds the end of training needs: the final perplexity evaluation and the held-out answers
    (at today's load), and the saves. An epoch boundary adds its own evaluation and checkpoint.

    The answers get no margin: the fine-tuned model answers the base model's examples under the
    same token cap, and stops sooner once it has learnt to quote and cite (26-37 s vs the base's
    79-80 s for 9 examples on 2 slow cores, where the margin kept another 24 s back).
    """
    evaluation = EVAL_MARGIN * eval_seconds * load + save
    return evaluation + answer_seconds * load + (evaluation if epoch_ends else 0.0)


def plan_steps(done: int, ceiling: int, seconds_left: float, step_seconds: float, reserve: float) -> int:
    """Total optimizer steps to run: those done plus those that fit, at most ``ceiling``.

    Returns ``done`` when not one more step fits: stop now.
    """
    fit = math.floor((seconds_left - reserve) / step_seconds) if step_seconds > 0 else ceiling
    return max(done, min(ceiling, done + max(0, fit)))
