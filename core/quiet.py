"""Quiet third-party chatter for command-line output that people and scripts read line by line."""

from __future__ import annotations

import os


def quiet_libraries() -> None:
    """No tokenizer fork warnings or model-loading progress bars between the result lines."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
