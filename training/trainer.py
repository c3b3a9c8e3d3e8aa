"""The Hugging Face Trainer as bookworm runs it: device and precision, the arguments, the datasets.

Evaluation and checkpoints at each epoch's end (and at a stop mid-epoch), the best of them
kept and reloaded at the end; batches of packed blocks, never padding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.hardware import cpu_supports_bf16
from training.hyperparameters import Hyperparameters

LOGGED_POINTS = 40  # points on the loss curve; every step when the run is shorter


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


def training_arguments(hp: Hyperparameters, work: Path, device: str, precision: str) -> Any:
    """The Trainer's arguments; ``max_steps`` and ``logging_steps`` are set once the steps are planned.

    Creating them starts the distributed state under torchrun.
    """
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(work),
        num_train_epochs=hp.epochs,
        max_steps=hp.max_steps,
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
        logging_steps=25,
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",  # blocks are all text; examples' padding is not counted
        # the per-item loss is a mean per rank, and DDP averages the gradients: no token re-scaling
        average_tokens_across_devices=hp.loss_average == "tokens",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        **checkpointing_kwargs(hp.gradient_checkpointing),
        seed=hp.seed,
        data_seed=hp.seed,
        report_to="none",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


def logging_steps(planned: int) -> int:
    return max(1, min(25, planned // LOGGED_POINTS))


def make_trainer(
    model: Any,
    tokenizer: Any,
    args: Any,
    train: Sequence[Sequence[int]],
    held_out: Sequence[Sequence[int]],
    callbacks: Sequence[Any],
    item_mean: bool = False,
) -> Any:
    """``item_mean``: the loss is each item's mean over its labelled tokens, averaged over the
    batch (:func:`item_mean_loss`), instead of the mean over all the batch's labelled tokens."""
    from transformers import Trainer

    model.config.use_cache = False  # no generation while training; required with checkpointing
    train_set = train if isinstance(train, SequenceDataset) else BlockDataset(train)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=BlockDataset(held_out),
        data_collator=PadCollator(pad_id(tokenizer)),
        processing_class=tokenizer,
        callbacks=list(callbacks),
        compute_loss_func=item_mean_loss if item_mean else None,
    )
    if item_mean:
        trainer.loss_is_scaled_for_ga = False  # a plain mean: the Trainer divides by the accumulation steps
    return trainer


def item_mean_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """Next-token cross-entropy, averaged over each row's labelled tokens, then over the rows.

    Averaged over tokens, a packed block (512 labelled tokens) outweighs an answer-from-sources
    example (its ~30-token answer) ~15:1, so with half the items examples the answers get ~6% of
    the gradient. Per item, both kinds weigh what their share of the items says. Rows of equal
    length (the held-out blocks) give the token mean exactly. ``num_items_in_batch`` (the Trainer's
    token count) is not used.
    """
    import torch.nn.functional as F

    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    targets = labels[:, 1:]
    losses = F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), targets, ignore_index=-100, reduction="none"
    )  # (rows, positions)
    labelled = targets.ne(-100)
    counts = labelled.sum(dim=1)
    per_row = (losses * labelled).sum(dim=1) / counts.clamp(min=1)
    return per_row[counts > 0].mean()


class BlockDataset:
    """Packed blocks as a map-style dataset; labels are the input ids (the model shifts them).

    Not ``DataCollatorForLanguageModeling``: it masks pad tokens in the labels, and GPT-2's pad
    *is* ``<|endoftext|>``, our chunk separator. Blocks need no padding (:class:`PadCollator`).
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


class SequenceDataset:
    """Training items of different lengths: packed blocks (labels = ids) and answer-from-sources
    examples (labels -100 on the prompt), in the order given."""

    def __init__(self, items: Sequence[tuple[Sequence[int], Sequence[int]]]):
        self.items = [(list(ids), list(labels)) for ids, labels in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids, labels = self.items[i]
        return {"input_ids": ids, "labels": labels}


class PadCollator:
    """Stacks a batch, padding on the right to its longest item: padded positions are masked from
    attention and labelled -100, so padding changes no prediction and adds no loss. (The loss is the
    mean over the batch's labelled tokens, so a packed block, all labels, weighs more than an
    example whose labels are its answer alone.)"""

    def __init__(self, pad: int):
        self.pad = pad

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.as_tensor(b["input_ids"])
            labels[row, :n] = torch.as_tensor(b["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def pad_id(tokenizer: Any) -> int:
    """Any id fills padding (it is masked and unlabelled): the pad token, else EOS."""
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def seconds_per_block(model: Any, block: list[int], device: Any, precision: str) -> float:
    """Time one forward pass over one block, as the evaluation will run it."""

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


def checkpointing_kwargs(enabled: bool) -> dict[str, bool]:
    """transformers 5.x renamed gradient_checkpointing to activation_checkpointing (old name warns)."""
    if not enabled:
        return {}
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {
        "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": True
    }
