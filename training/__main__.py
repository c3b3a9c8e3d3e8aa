"""``python -m training``: fine-tune the base model on the indexed chunks.

    python -m training [--index DIR] [--output DIR] [--base-model NAME] [--epochs N]
                       [--max-steps N] [--time-budget MINUTES] [--resume] [--if-stale] ...

Multi-GPU: ``torchrun --nproc_per_node N -m training ...`` or ``accelerate launch -m training ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from core.config import add_settings_args, settings_from_args, settings_in
from core.errors import BookwormError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Fine-tune a causal LM on the index's chunks (packed blocks, held-out perplexity).",
    )
    # the model it starts from, and every hyperparameter
    add_settings_args(parser, *settings_in("model", "training"), aliases={"model_dir": ("--output",)})
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint, or fail; without it an interrupted run of the same "
        "chunks, base model and settings continues too, and anything else starts over",
    )
    parser.add_argument(
        "--if-stale",
        action="store_true",
        help="do nothing when the output already holds a model of these chunks, base model and settings",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default", UserWarning)  # the offline-fallback warning must show...
    warnings.formatwarning = lambda message, *a, **k: f"warning: {message}\n"  # ...as a message, not code
    try:
        from training.finetune import Hyperparameters, finetune, stale_reason

        settings = settings_from_args(args)
        hp = Hyperparameters.from_settings(settings)
        if args.if_stale:
            reason = stale_reason(settings.model_dir, settings.index_dir, settings.base_model, hp)
            if reason is None:
                print(
                    f"{settings.model_dir} is up to date (same chunks, base model, settings): nothing to do."
                )
                return 0
            print(f"Training: {reason}.")
        manifest = finetune(
            settings.index_dir,
            settings.model_dir,
            settings.base_model,
            hp,
            offline_fallback=settings.offline_fallback,
            cache_dir=settings.cache_dir or None,
            resume=args.resume,
            started_at=started,
        )
    except KeyboardInterrupt:
        print("\nAborted; the output folder was left as it was.", file=sys.stderr)
        return 130
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        from training.finetune import TrainingInterrupted

        return 130 if isinstance(e, TrainingInterrupted) else 1
    if os.environ.get("RANK", "0") != "0":  # torchrun: one summary, from rank 0
        return 0
    ppl = manifest["perplexity"]
    print(
        f"Perplexity on held-out chunks: {ppl['base']:.2f} before -> {ppl['finetuned']:.2f} after "
        f"({ppl['eval_blocks']} blocks of {ppl['block_size']} tokens)\n"
        f"Trained {manifest['steps']} steps ({manifest['stopped_by']}), {manifest['tokens_seen']:,} tokens, "
        f"{manifest['useful_tokens_per_s']} useful tokens/s on {manifest['device']} {manifest['precision']}; "
        f"wall time {manifest['wall_seconds']:.0f} s\n"
        f"Model: {settings.model_dir} (base {manifest['base_model']['used']}; loss curve and manifest inside)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
