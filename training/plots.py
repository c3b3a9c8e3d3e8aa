"""The loss curve saved beside the model: training loss per logging step, held-out loss per evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_loss_curve(
    log_history: Sequence[dict[str, Any]],
    path: str | Path,
    *,
    base_eval_loss: float | None = None,
    title: str = "fine-tuning loss",
) -> Path:
    """Write a PNG of train and eval loss against optimizer steps.

    ``log_history`` is ``trainer.state.log_history``; ``base_eval_loss`` (the base model's
    held-out loss) is drawn at step 0 so the eval line starts where training started.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    if base_eval_loss is not None:
        evals = [(0, base_eval_loss), *evals]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="tab:blue", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="held-out loss", color="tab:orange", linewidth=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
