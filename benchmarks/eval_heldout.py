"""make eval's held-out sections, on the training run's own held-out chunks, scored afresh:

- perplexity of each model (base, fine-tuned, ``--also-model``) on them;
- answer-from-sources: every example those chunks give, answered by each model (each loaded once
  for both sections). A run scores only the
  12 that fit its time budget (10 answerable), where one citation is 0.1 of the score; here all of
  them (33 on the sample corpus), so models are compared on enough examples to tell them apart.

With ``--unseen-index`` (an index of books the model never trained on) every body chunk is held
out and the examples are capped at UNSEEN_EXAMPLES: a bigger test of the same skill, on text no run
trained on.

The chunks are the run's own split (``training.prepare.read_data``: body chunks only, the run's
``eval_fraction``), so no held-out text was trained on. Splitting every chunk instead, contents and
index pages included, shifts which chunk of a file is held out: 115 of the 164 chunks that split
held out had been trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import BookwormError

MAX_EXAMPLES = 200  # all the held-out chunks give on a corpus of a few books, at ~1-3 s each per model
# books never trained on hold out every chunk (hundreds of examples): 80 tell models apart (one
# citation is 0.015 of the score) in ~10 minutes for the base and the fine-tuned model on 2 cores
UNSEEN_EXAMPLES = 80


class SplitChanged(BookwormError):
    """The index is not the one the model was trained on: its held-out split may hold training text."""


def held_out_data(index_dir: str, model_info: Any) -> Any:
    """The run's data (``training.prepare.Data``) split as the run that made ``model_info`` split it.

    Raises:
        SplitChanged: the index changed since that run, or is another one (make eval skips both
            held-out sections then, saying why: answers over another index are still scored)."""
    manifest = model_info.manifest or {}
    data = _read_data(index_dir, manifest)
    trained_on = (manifest.get("data") or {}).get("chunks_sha256")
    if model_info.fine_tuned and trained_on and trained_on != data.chunks_sha256:
        raise SplitChanged(
            f"{index_dir} is not the index {model_info.model_id} was trained on (it changed since, or is "
            "another one), so its held-out split may hold training text; `make train` on it scores them "
            "(books the model never trained on: --unseen-index holds out all of their chunks)"
        )
    return data


def unseen_data(index_dir: str, model_info: Any) -> Any:
    """The data of an index over books the model never trained on (the caller says so: nothing in
    a manifest tells another book from an edited one): every body chunk is held out, so the
    answer-from-sources examples are many (up to UNSEEN_EXAMPLES) and none can echo training text.

    Raises:
        BookwormError: it is the very index the model was trained on."""
    from training.data import Split

    manifest = model_info.manifest or {}
    data = _read_data(index_dir, manifest)
    if (manifest.get("data") or {}).get("chunks_sha256") == data.chunks_sha256:
        raise BookwormError(
            f"{model_info.model_id} was trained on {index_dir}: drop --unseen-index to score the run's "
            "own held-out chunks"
        )
    return dataclasses.replace(data, split=Split([], list(data.body)))


def _read_data(index_dir: str, manifest: dict[str, Any]) -> Any:
    """The index's body chunks split with the run's own ``eval_fraction``."""
    from training.prepare import read_data

    hp = manifest.get("hyperparameters", {})
    return read_data(Path(index_dir), float(hp.get("eval_fraction", Settings.eval_fraction)))


def eval_held_out(
    index_dir: str,
    data: Any,
    model_info: Any,
    base_source: Any,
    others: Sequence[tuple[str, str]],
    *,
    max_blocks: int,
    perplexity: bool,
    answers: bool,
    cache_dir: str | None,
    max_examples: int = MAX_EXAMPLES,
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Held-out perplexity (``perplexity``) and answer-from-sources scores (``answers``; with a
    fine-tuned model) of the base, the fine-tuned model and ``others`` [(name, folder)], each model
    loaded once: ({name: perplexity}, {"examples", "unanswerable", "models"} or None)."""
    import torch

    from training.evaluate import perplexity as perplexity_of
    from training.sources_eval import answer_scores, generate_answers

    manifest = model_info.manifest or {}
    hp = manifest.get("hyperparameters", {})
    # the run's own block size (its hyper-parameter capped at the model's window)
    block_size = int((manifest.get("perplexity") or {}).get("block_size") or hp.get("block_size", 512))
    texts = [c.text for c in data.split.eval]
    answers = answers and model_info.fine_tuned
    tuned = [("fine-tuned", model_info.path), *others] if model_info.fine_tuned else []
    ppl: dict[str, float] = {}
    scores: dict[str, Any] = {}
    examples: list[Any] | None = None
    for name, model, tok in _models([("base", base_source.path), *tuned], base_source):
        if perplexity:
            print(f"Held-out perplexity: {name}...", flush=True)
            with torch.inference_mode():
                ppl[name] = perplexity_of(model, tok, texts, block_size, max_blocks=max_blocks)
        if answers:
            if examples is None:  # built with the base's tokenizer and window, as training builds them
                examples = _examples(
                    index_dir, data, int(hp.get("seed", Settings.seed)), model, tok, cache_dir, max_examples
                )
            print(f"Held-out answer-from-sources: {name} answering {len(examples)} examples...", flush=True)
            scores[name] = answer_scores(examples, generate_answers(model, tok, examples))
    if examples is None:
        return ppl, None
    return ppl, {
        "examples": len(examples),
        "unanswerable": sum(not e.oracle for e in examples),
        "models": scores,
    }


def _examples(
    index_dir: str,
    data: Any,
    seed: int,
    model: Any,
    tokenizer: Any,
    cache_dir: str | None,
    max_examples: int = MAX_EXAMPLES,
) -> list[Any]:
    """Every held-out answer-from-sources example the run's held-out chunks give (none for training)."""
    from core.sources import context_window
    from training.sources import Request, build_sources

    order = [c.chunk_id for c in data.body]
    window = context_window(model, tokenizer)
    request = Request(data.split.train, data.split.eval, order, tokenizer, window, 0, max_examples, seed)
    return build_sources(Path(index_dir), data.index_manifest, request, cache_dir).held_out


def held_out_section(result: dict[str, Any] | None, note: str = "", unseen: bool = False) -> list[str]:
    lines = ["## Held-out answer-from-sources", ""]
    if note:
        return [*lines, f"Not measured: {note}.", ""]
    if not result or not result["examples"]:
        return [*lines, "Not measured (no fine-tuned model, no held-out examples, or --skip-held-out).", ""]
    n, k = result["examples"], result["unanswerable"]
    base_f1 = result["models"]["base"]["f1"]
    chunks = (
        "every chunk of books the model never trained on (--unseen-index)"
        if unseen
        else "the training run's held-out chunks"
    )
    lines += [
        f"{n} examples built from {chunks} as training builds its own ({k} without "
        "their source, where abstaining is right); greedy answers, as at the end of training. Citation: the "
        "model's own [n] names the source / the verified citation (from where the quoted sentence is) does.",
        "",
        "| model | F1 | × base | citation own / verified | abstention accuracy | refused answerable "
        "| refused unanswerable | median words |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in result["models"].items():
        ratio = f"{s['f1'] / base_f1:.2f}×" if base_f1 else "–"
        lines.append(
            f"| {name} | {s['f1']:.3f} | {ratio} | {s['citation_accuracy']:.2f} / "
            f"{s['verified_citation_accuracy']:.2f} | {s['abstention_accuracy']:.2f} | "
            f"{s['abstained_when_answerable']:.2f} | {s['abstained_when_unanswerable']:.2f} | "
            f"{s['median_words']:.0f} |"
        )
    return [*lines, ""]


def _models(folders: Sequence[tuple[str, str]], base_source: Any) -> Any:
    """(name, model, tokenizer) per folder, one loaded at a time."""
    from core.sources import load_lm

    for name, path in folders:
        model, tok = load_lm(dataclasses.replace(base_source, path=path, gguf_file=None))
        yield name, model, tok
        del model
