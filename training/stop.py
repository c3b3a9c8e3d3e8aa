"""The callback that ends training: on the re-planned step count of a time budget, or on Ctrl-C.

Every step it re-plans from measured step times (:mod:`training.budget`) and stretches or
shrinks the learning-rate schedule to the new plan, so a run under load still decays its
learning rate and spends its budget. The decision is shared across ranks (DDP).
"""

from __future__ import annotations

import functools
import math
import signal
import sys
import time
from typing import Any

from training.budget import end_reserve, measured_step_seconds, plan_steps, slowdown
from training.ranks import max_across_ranks

REPLAN_NOTE = 0.1  # log a re-plan that moves the planned steps by more than this share


def make_stop_callback(log: Any = print) -> Any:
    """A :class:`StopDecision` that the Trainer accepts as a callback (transformers loads only here)."""
    from transformers import TrainerCallback

    class StopCallback(StopDecision, TrainerCallback):
        pass

    return StopCallback(log)


class StopDecision:
    """Ends training cleanly, the same step on every rank: the Trainer-callback hooks of
    :func:`make_stop_callback`, kept free of transformers so this module imports cheaply.

    Stopping mid-epoch runs the epoch-end evaluation and checkpoint; a Ctrl-C skips the
    evaluation (a second Ctrl-C kills at once).
    """

    def __init__(self, log: Any = print) -> None:
        self._log = log  # where re-plans are reported
        self.deadline: float | None = None  # time.time() by which training must stop; None = no budget
        self.planned = 0  # steps to run (re-planned); the Trainer's max_steps is the ceiling
        self.ceiling = 0  # the epochs' or max_steps' count: more never runs
        self.warmup_ratio = 0.0  # share of the planned steps with rising learning rate
        self.eval_seconds = 0.0  # the measured held-out evaluation (perplexity)
        self.answer_seconds = 0.0  # the base model's held-out answers, which the end answers again
        self.save_seconds = 0.0  # kept back for the saves
        self.step_guess = 0.0  # seconds per step until steps are measured
        self.steps_per_epoch = 0  # each epoch's end evaluates and saves
        self.reason: str | None = None  # "time_budget" | "interrupt"
        self.interrupted = False
        self.step_seconds: list[float] = []
        self.replans = 0  # plans that changed the step count
        self.tokens_at_start = 0
        self._began = 0.0
        self._old_handler: Any = None

    # --- Ctrl-C ------------------------------------------------------------------------

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
        print("\nInterrupted: saving a checkpoint after this step (Ctrl-C again to abort).", file=sys.stderr)
        self.disarm()

    # --- the Trainer's hooks -----------------------------------------------------------

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self.tokens_at_start = state.num_input_tokens_seen
        if self.deadline is not None:  # a continued run starts at its checkpoint's step
            self.replan(state.global_step, time.time(), lr_scheduler)
        fit_schedule(lr_scheduler, self.planned, self.warmup_ratio)

    def on_step_begin(self, args, state, control, **kwargs):
        self._began = time.time()

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        now = time.time()
        self.step_seconds.append(now - self._began)
        if self.deadline is not None:
            self.replan(state.global_step, now, lr_scheduler)
        code = 2 if self.interrupted else int(state.global_step >= self.planned)
        code = max_across_ranks(code, args)  # any rank interrupted or done: all stop
        if code:
            self.reason = "interrupt" if code == 2 else self.reason
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.reason == "interrupt":
            control.should_evaluate = False  # keep the checkpoint, skip the wait
            control.should_save = True
        return control

    # --- the plan ----------------------------------------------------------------------

    def replan(self, done: int, now: float, lr_scheduler: Any) -> None:
        step = measured_step_seconds(self.step_seconds) or self.step_guess
        # an epoch that ended with this step is evaluated and checkpointed next; none has at step 0 (that
        # double reserve once planned 0 steps at the start and left the first steps on the Trainer's
        # own schedule: 2e-6 instead of 5e-5)
        epoch_ends = bool(self.steps_per_epoch) and done > 0 and done % self.steps_per_epoch == 0
        load = slowdown(self.step_seconds)
        reserve = end_reserve(self.eval_seconds, self.answer_seconds, self.save_seconds, load, epoch_ends)
        planned = plan_steps(done, self.ceiling, self.deadline - now, step, reserve)
        if planned == self.planned:
            return
        if abs(planned - self.planned) > REPLAN_NOTE * self.planned:
            self._log(f"Re-planned: {planned} steps in all (~{step:.1f} s each, measured); {done} done")
        self.planned, self.replans = planned, self.replans + 1
        self.reason = "time_budget" if planned < self.ceiling else None
        fit_schedule(lr_scheduler, planned, self.warmup_ratio)


def fit_schedule(lr_scheduler: Any, planned: int, warmup_ratio: float) -> bool:
    """Make a transformers schedule (warmup, then decay) span ``planned`` steps; False if it cannot.

    transformers builds each schedule as ``LambdaLR(partial(f, num_warmup_steps=...,
    num_training_steps=...))``; a new partial with the planned counts takes effect next step.
    """
    lambdas = getattr(lr_scheduler, "lr_lambdas", None)
    if not lambdas or planned < 1:
        return False
    fitted = False
    for i, fn in enumerate(lambdas):
        if isinstance(fn, functools.partial) and "num_training_steps" in fn.keywords:
            keywords = {**fn.keywords, "num_training_steps": planned}
            if "num_warmup_steps" in keywords:
                keywords["num_warmup_steps"] = math.ceil(warmup_ratio * planned)
            lambdas[i] = functools.partial(fn.func, *fn.args, **keywords)
            fitted = True
    if fitted:
        # The Trainer stepped the schedule before this step's callbacks ran: the next step's learning
        # rate was set from the old plan. Set it from the new one, or every re-plan costs a step at the
        # old plan's rate.
        step = lr_scheduler.last_epoch
        rates = [base * fn(step) for base, fn in zip(lr_scheduler.base_lrs, lambdas, strict=True)]
        for group, rate in zip(lr_scheduler.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        lr_scheduler._last_lr = rates  # what get_last_lr() reports (and the Trainer logs)
    return fitted
