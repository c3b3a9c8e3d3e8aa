"""training.budget and the stop callback: a run re-plans from measured steps and spends its budget. Fast."""

from __future__ import annotations

import functools
import itertools

import pytest

from training.budget import (
    EVAL_MARGIN,
    end_reserve,
    guess_step_seconds,
    measured_step_seconds,
    plan_steps,
    slowdown,
)


@pytest.mark.parametrize(
    ("done", "ceiling", "left", "step", "reserve", "expected"),
    [
        (0, 147, 500.0, 2.5, 60.0, 147),  # fits all: the ceiling
        (0, 147, 500.0, 17.0, 60.0, 25),  # under load: fewer, but the budget is spent
        (13, 147, 277.0, 17.0, 60.0, 25),  # the run at step 13, 277 s left: 12 more, not stop
        (20, 147, 70.0, 17.0, 60.0, 20),  # not one more step fits: stop now
        (20, 147, 10.0, 17.0, 60.0, 20),  # past the reserve: never fewer than done
        (5, 8, 1e9, 1.0, 0.0, 8),  # no more than asked for
    ],
)
def test_plan_steps_table(done, ceiling, left, step, reserve, expected):
    assert plan_steps(done, ceiling, left, step, reserve) == expected


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], None),
        ([30.0], None),  # the first step pays one-off costs: not a speed
        ([30.0, 2.0], 2.0),
        ([30.0, 2.0, 2.0, 9.0, 2.0, 2.0, 2.0], 2.0),  # one slow checkpoint step is not a trend
        ([30.0, 2.0, 2.0, 2.0, 6.0, 6.0, 6.0], 6.0),  # the machine got busier: follow it
    ],
)
def test_measured_step_seconds_table(steps, expected):
    assert measured_step_seconds(steps) == expected


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([30.0, 2.0, 2.0], 1.0),  # too few to tell
        ([30.0, 17.0, 17.0, 17.0, 17.0, 17.0], 1.0),  # busy from the start: already in the eval's time
        ([30.0, 2.0, 2.0, 2.0, 6.0, 6.0, 6.0], 3.0),  # busier now than when the eval was timed
        ([30.0, 4.0, 4.0, 4.0, 2.0, 2.0, 2.0], 1.0),  # quieter: never less than measured
    ],
)
def test_slowdown_table(steps, expected):
    assert slowdown(steps) == expected


@pytest.mark.parametrize(
    ("eval_s", "answer_s", "save", "load", "epoch_ends", "expected"),
    [
        (40.0, 0.0, 10.0, 1.0, False, EVAL_MARGIN * 40 + 10),
        (40.0, 0.0, 10.0, 2.0, False, EVAL_MARGIN * 80 + 10),
        (40.0, 0.0, 10.0, 1.0, True, 2 * (EVAL_MARGIN * 40 + 10)),
        (40.0, 80.0, 10.0, 1.0, False, EVAL_MARGIN * 40 + 80 + 10),  # the answers: no margin
        (40.0, 80.0, 10.0, 2.0, False, EVAL_MARGIN * 80 + 160 + 10),  # ...but at today's load
        (40.0, 80.0, 10.0, 1.0, True, 2 * (EVAL_MARGIN * 40 + 10) + 80),  # an epoch end does not answer
    ],
)
def test_end_reserve_table(eval_s, answer_s, save, load, epoch_ends, expected):
    assert end_reserve(eval_s, answer_s, save, load, epoch_ends) == pytest.approx(expected)


def test_guess_step_seconds():
    assert guess_step_seconds(10.0, 10, 2, False) == pytest.approx(2.2 * 2)
    assert guess_step_seconds(10.0, 10, 2, True) == pytest.approx(2.2 * 2 * 4 / 3)


def _simulate(
    monkeypatch,
    step_time,
    *,
    budget=600.0,
    start=100.0,
    eval_s=48.0,
    guess=2.5,
    ceiling=147,
    save=10.0,
    steps_per_epoch=0,
    answer_s=0.0,
    rates=None,
    plans=None,
):
    """Drive the stop callback with a fake clock; return (steps run, seconds at the stop, the LR schedule).
    ``rates``, a list, gets the learning rate each step ran at; ``plans`` the plan at each step's start."""
    import torch
    from transformers import TrainerControl, TrainerState, get_scheduler

    from training import stop as stop_module

    clock = [start]
    monkeypatch.setattr(stop_module.time, "time", lambda: clock[0])
    stop = stop_module.make_stop_callback(log=lambda *a: None)
    stop.deadline, stop.eval_seconds, stop.save_seconds, stop.step_guess = budget, eval_s, save, guess
    stop.ceiling, stop.steps_per_epoch, stop.warmup_ratio = ceiling, steps_per_epoch, 0.1
    stop.answer_seconds = answer_s
    reserve = end_reserve(eval_s, answer_s, save, 1.0, False)
    stop.planned = plan_steps(0, ceiling, budget - start, guess, reserve)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=15, num_training_steps=ceiling)
    state, control = TrainerState(), TrainerControl()
    stop.on_train_begin(None, state, control, lr_scheduler=schedule)
    while not control.should_training_stop:
        stop.on_step_begin(None, state, control)
        if rates is not None:
            rates.append(optimizer.param_groups[0]["lr"])
        if plans is not None:
            plans.append(stop.planned)
        clock[0] += step_time(state.global_step)
        state.global_step += 1
        optimizer.step()
        schedule.step()
        stop.on_step_end(None, state, control, lr_scheduler=schedule)
    return state.global_step, clock[0], stop, schedule


def test_a_run_under_load_spends_its_budget(monkeypatch):
    steps, t, stop, schedule = _simulate(
        monkeypatch, lambda i: 30.0 if i == 0 else 17.0
    )  # ~7x the guessed 2.5 s
    reserve = end_reserve(48.0, 0.0, 10.0, 1.0, False)
    assert t > 600 - reserve - 17.0  # stopped when the next step would eat the reserve, not at 323 s
    assert t <= 600 - reserve
    assert stop.reason == "time_budget" and stop.planned == steps and steps < 147
    assert schedule.lr_lambdas[0].keywords["num_training_steps"] == steps  # the schedule ends with the run
    assert schedule.get_last_lr()[0] < 0.05  # ...so the learning rate has decayed


def test_a_machine_busier_mid_run_keeps_more_back(monkeypatch):
    _, t, _, _ = _simulate(monkeypatch, lambda i: 2.0 if i < 20 else 6.0)  # 3x slower after step 20
    assert t <= 600 - end_reserve(48.0, 0.0, 10.0, 3.0, False) + 6.0  # the final evaluation at 3x too
    assert t > 600 - end_reserve(48.0, 0.0, 10.0, 3.0, False) - 2 * 6.0


def test_a_quiet_run_stops_at_the_ceiling(monkeypatch):
    steps, _, stop, _ = _simulate(monkeypatch, lambda i: 0.5, ceiling=40)
    assert steps == 40 and stop.reason is None


def test_fit_schedule_rescales_warmup_and_decay():
    import torch
    from transformers import get_scheduler

    from training.stop import fit_schedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = get_scheduler("linear", optimizer, num_warmup_steps=10, num_training_steps=100)
    assert fit_schedule(schedule, 20, 0.1)
    fn = schedule.lr_lambdas[0]
    assert isinstance(fn, functools.partial)
    assert fn.keywords["num_training_steps"] == 20 and fn.keywords["num_warmup_steps"] == 2
    assert fn(20) == 0.0 and fn(1) == 0.5
    for _ in range(5):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(15 / 18)  # the 20-step plan: decay from step 2
    assert fit_schedule(schedule, 10, 0.1)  # shrunk again: the next step runs at the new plan's rate
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5 / 9) == schedule.get_last_lr()[0]
    assert not fit_schedule(object(), 20, 0.1)  # not a transformers schedule: left alone


def test_each_step_runs_at_the_rate_of_the_plan_it_follows(monkeypatch):
    """A re-plan takes effect on the very next step, and step 0 ends no epoch. The make demo run this
    replays (2 slow cores: 230 s of examples and base scores before training, 160-step epochs) planned
    0 steps at the start (an epoch end's double reserve at step 0), so kept the Trainer's 480-step
    schedule, and re-planned after step 1 too late for step 2, which ran at 2e-6 instead of 5e-5."""
    rates: list[float] = []
    plans: list[int] = []
    steps, t, _, schedule = _simulate(
        monkeypatch,
        lambda i: 12.0,
        start=230.0,
        eval_s=45.0,
        answer_s=80.0,
        save=26.6,
        guess=8.3,
        ceiling=480,
        steps_per_epoch=160,
        rates=rates,
        plans=plans,
    )
    reserve = end_reserve(45.0, 80.0, 26.6, 1.0, False)
    assert 600 - reserve - 12.0 < t <= 600 - reserve and steps == 17  # (370 - 165 reserved) / 12 s
    fn = schedule.lr_lambdas[0]  # the final plan's schedule
    assert fn.keywords["num_training_steps"] == steps and fn.keywords["num_warmup_steps"] == 2
    assert plans[0] == 24  # (370 - 165 reserved) / 8.3 s guessed; not 0
    assert rates[0] == 0.0  # warm-up starts at 0, as transformers' schedules do
    # the plan after step 1 still uses the guessed 8.3 s (a first step is not a speed): 23 steps, 3 of
    # warm-up, and step 2 runs at its rate, not the Trainer's 48-step warm-up (1/48)
    assert rates[1] == pytest.approx(1 / 3)
    assert rates[2] == pytest.approx(1.0)  # measured 12 s steps: 17 steps, 2 of warm-up, decay begins
    assert all(a >= b for a, b in itertools.pairwise(rates[2:])) and rates[-1] < 0.05
