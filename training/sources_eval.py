"""Held-out answer-from-sources score: the model answers held-out examples; their answers are
scored against the quoted sentences, the citation and the abstention they call for.

Decoding is plain greedy (the assistant adds a repetition penalty and a copy boost on top): the
score compares the base and the fine-tuned model under the same decoding, not the live preset.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from core.config import Settings
from core.grounding.cite import cite
from core.grounding.prompt import STOP_STRINGS
from core.grounding.scores import cited_numbers, is_abstention, strip_citations, token_f1
from core.grounding.sentences import split_sentences
from training.examples import Example

MAX_NEW_TOKENS = 64  # a quoted answer and its citation fit; a rambling base model is cut there


def full_sentences(text: str) -> int:
    """Complete sentences of 4+ words (ending in . ! ? or a citation)."""
    ends = (".", "!", "?", "]")
    spans = split_sentences(text, break_lines=False)
    return sum(1 for s in spans if len(s.text.split()) >= 4 and s.text.rstrip().endswith(ends))


def answer_scores(examples: Sequence[Example], answers: Sequence[str]) -> dict[str, Any]:
    """F1 against the oracle's sentences and citation accuracy (examples whose oracle is shown),
    abstention accuracy (abstains exactly when the oracle is left out), answer length."""
    answerable = [(e, a) for e, a in zip(examples, answers, strict=True) if e.oracle]
    words = [len(a.split()) for a in answers]
    return {
        "examples": len(examples),
        "unanswerable": len(examples) - len(answerable),
        "f1": _mean([token_f1(strip_citations(a), e.reference) for e, a in answerable]),
        "citation_accuracy": _mean([float(e.oracle in cited_numbers(a)) for e, a in answerable]),
        # the citation the assistant shows: derived from where the quoted sentence was found
        "verified_citation_accuracy": _mean(
            [float(e.oracle in cited_numbers(cite(a, e.passages))) for e, a in answerable]
        ),
        "abstention_accuracy": _mean(
            [float(is_abstention(a) == (e.oracle == 0)) for e, a in zip(examples, answers, strict=True)]
        ),
        "abstained_when_answerable": _mean([float(is_abstention(a)) for _, a in answerable]),
        "abstained_when_unanswerable": _mean(
            [float(is_abstention(a)) for e, a in zip(examples, answers, strict=True) if not e.oracle]
        ),
        "mean_words": _mean([float(w) for w in words]),
        "median_words": float(statistics.median(words)) if words else 0.0,
        "median_full_sentences": float(statistics.median([full_sentences(a) for a in answers]))
        if answers
        else 0.0,
    }


# tokens proposed from the prompt per greedy step: the assistant's default, so scores match the chat's
PROMPT_LOOKUP = Settings.prompt_lookup


def describe_scores(scores: dict[str, Any]) -> str:
    return (
        f"F1 {scores['f1']:.3f}, citation accuracy {scores['citation_accuracy']:.2f} "
        f"({scores.get('verified_citation_accuracy', 0):.2f} verified), "
        f"abstention accuracy {scores['abstention_accuracy']:.2f}{_abstained(scores)}, "
        f"median {scores['median_words']:.0f} words ({scores['examples']} examples)"
    )


def _abstained(scores: dict[str, Any]) -> str:
    """How many examples without their source it abstained on: an accuracy earned only on the
    answerable ones (a model that never abstains scores their share) reads as more than it is."""
    n = scores.get("unanswerable")
    if not n:
        return ""
    return f" (abstained on {round(scores['abstained_when_unanswerable'] * n)} of {n} without their source)"


def _mean(xs: Sequence[float]) -> float:
    return round(sum(xs) / len(xs), 4) if xs else 0.0


def generate_answers(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    max_new_tokens: int = MAX_NEW_TOKENS,
    seconds: float | None = None,
) -> list[str]:
    """Greedy answers, cut at the stop strings the assistant uses; with ``seconds``, only those
    answered within it (two at least): the answers of a prefix of ``examples``."""
    import torch

    chat = bool(getattr(tokenizer, "chat_template", None))
    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    device = next(model.parameters()).device
    t0 = time.time()
    with torch.no_grad():
        for ex in examples:
            if seconds is not None and len(answers) >= 2 and time.time() - t0 > seconds:
                break
            ids = tokenizer(ex.prompt, add_special_tokens=not chat, return_tensors="pt", verbose=False)[
                "input_ids"
            ]
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=torch.ones_like(ids).to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                # the same greedy text, several quoted tokens checked a step: the trained model quotes
                prompt_lookup_num_tokens=PROMPT_LOOKUP,
                use_cache=True,  # training turns the cache off in the config
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=pad,
            )
            text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            for stop in STOP_STRINGS:
                text = text.split(stop)[0]
            answers.append(text.strip())
    model.train(was_training)
    return answers


def score_model(
    model: Any, tokenizer: Any, examples: Sequence[Example], seconds: float | None = None
) -> tuple[dict[str, Any], float]:
    """(scores with three sample answers, seconds it took); ``seconds``: see :func:`generate_answers`."""
    t = time.time()
    answers = generate_answers(model, tokenizer, examples, seconds=seconds)
    examples = examples[: len(answers)]
    scores = answer_scores(examples, answers)
    scores["samples"] = [
        {"question": e.question, "oracle": e.oracle, "answer": a}
        for e, a in list(zip(examples, answers, strict=True))[:3]
    ]
    return scores, time.time() - t
