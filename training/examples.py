"""Answer-from-sources examples (RAFT): teach the model to answer by quoting the right source.

Each example is a question made from the books' own structure (:mod:`training.questions`), its
oracle chunk among hard distractors retrieved from the index for the same question, shuffled
and numbered like retrieved passages, and rendered by the assistant's own functions
(``select_evidence`` -> ``prompt_passages`` -> ``build_prompt``), so the model trains on exactly
the prompt layout it is shown when asked. The target quotes the oracle's sentences verbatim, each
followed by its citation ``[n]`` as the prompt writes them (``cited_quote``), so the quote and its
number are one copy from the prompt; in ``abstain_share`` of the examples the oracle is left out and
the target is the assistant's own abstention sentence.

Why hard distractors: with random ones (the oracle stands out by length and topic) a probe model
learned the shortcut of abstaining on every question over other books (token-F1 0.183 -> 0.015);
with distractors retrieved for the question and formatted like the oracle it learned to quote.

Pure apart from the functions passed in: ``embed`` (texts -> unit vectors, the index's own
embedder) and the prompt's ``count`` (text -> tokens). Deterministic from the seed.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from core.grounding.evidence import Embed, Evidence, SourceText, candidates, select_evidence, shortlist
from core.grounding.prompt import (
    ABSTAIN_TEXT,
    TRAINED_EXCERPT_ORDER,
    Counter,
    Renderer,
    build_prompt,
    cited_quote,
    prompt_passages,
)
from core.grounding.sentences import content_words
from indexing.records import Chunk
from training.answers import QA

N_SOURCES = 5  # passages per example: as many as the assistant retrieves by default
# Training examples whose oracle is left out (target: the abstention sentence). 0.1, not 0.2: once
# chunks end at section headings (indexing.clean), a section's answer no longer leaks into the
# retrieved distractors, the abstention labels are clean, and at 0.2 a 10-minute run refused answerable
# questions: 18.5% of 27 held-out ones (50% of the 6 unanswerable), 26 of the 54 dev questions when
# writing without the lead quote; held-out F1 0.462, citations 0.56. At 0.1, on the same 33 held-out
# examples: no refusals either way, F1 0.498, citations 0.70 (the chat's abstention is the evidence gate).
ABSTAIN_SHARE = 0.1
# Held-out examples keep a fifth without their source, so abstention accuracy has cases to count.
HELD_OUT_ABSTAIN_SHARE = 0.2
MAX_NEW_TOKENS = 128  # room the prompt keeps for the answer, as at answer time
NEAR_PAGES = 1  # a chunk of the oracle's file within this many pages may hold the same answer


@dataclasses.dataclass(frozen=True)
class Example:
    rule: str  # the question's rule: "outline", "definition"
    question: str
    chunk_id: str  # the oracle chunk
    prompt: str  # rendered exactly as the assistant renders a live question
    target: str  # what the model should answer (the end-of-turn token is added at tokenisation)
    oracle: int  # [n] of the oracle passage in the prompt; 0 = left out, the target abstains
    reference: str  # the oracle's sentences the target quotes ("" when abstaining)
    # (n, text) of every passage offered: what a verified citation (core.grounding.cite) is checked against
    passages: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PromptMaker:
    """How this model's prompts are rendered and counted (the assistant's settings at answer time)."""

    render: Renderer
    count: Counter
    window: int
    max_new_tokens: int = MAX_NEW_TOKENS
    evidence_sentences: int = 3


@dataclasses.dataclass
class Plan:
    """One example before its evidence is chosen: the question and its shuffled, numbered sources."""

    qa: QA
    sources: list[SourceText]
    oracle: int  # 0 = left out


def target_text(answer: str, n: int) -> str:
    """The quote, ``"<sentence> [n] <sentence> [n]"``, written as the sources and the answer's opening
    quote are."""
    return cited_quote(answer, n)


def distractors(oracle: Chunk, ranked: Sequence[Chunk], allowed: Callable[[Chunk], bool]) -> list[Chunk]:
    """Retrieved chunks that may stand beside the oracle: body text, not the oracle, not its own
    neighbourhood (chunks of the same file within NEAR_PAGES pages overlap or repeat it), allowed
    (training: never a held-out chunk), no text twice."""
    out: list[Chunk] = []
    seen = {oracle.text}
    for c in ranked:
        near = c.file == oracle.file and (
            c.page_start <= oracle.page_end + NEAR_PAGES and oracle.page_start <= c.page_end + NEAR_PAGES
        )
        if c.chunk_id == oracle.chunk_id or near or c.kind != "body" or c.text in seen or not allowed(c):
            continue
        seen.add(c.text)
        out.append(c)
    return out


def plan_example(
    qa: QA, oracle: Chunk, others: Sequence[Chunk], abstain: bool, rng: random.Random
) -> Plan | None:
    """The sources of one example (None: not enough distractors). An abstaining example shows as
    many passages as an answering one, so the count gives nothing away."""
    if len(others) < N_SOURCES - 1 + abstain:
        return None
    chosen = list(others[:N_SOURCES]) if abstain else [*others[: N_SOURCES - 1], oracle]
    rng.shuffle(chosen)
    sources = [SourceText(n, c.file, c.pages, c.text, c.kind) for n, c in enumerate(chosen, start=1)]
    oracle_n = 0 if abstain else next(s.n for s, c in zip(sources, chosen, strict=True) if c is oracle)
    return Plan(qa, sources, oracle_n)


def shortlist_texts(plans: Sequence[Plan]) -> list[str]:
    """Every text evidence selection will embed for ``plans``: embedding them in one batch first
    is several times faster than one small batch per example."""
    texts: dict[str, None] = {}
    for p in plans:
        texts[p.qa.question] = None
        for c in shortlist(p.qa.question, candidates(p.sources)):
            texts[c.sentences[c.i].text] = None
    return list(texts)


def covers(text: str, answer: str, share: float = 0.6) -> bool:
    """``text`` holds at least ``share`` of the answer's content words (it answers the question too)."""
    words = set(content_words(answer))
    return bool(words) and len(words & set(content_words(text))) >= share * len(words)


def with_answer(evidence: list[Evidence], oracle: SourceText, answer: str, max_items: int) -> list[Evidence]:
    """The evidence with the oracle's answer sentences in it (replacing the weakest pick when full),
    so the quoted sentences are in the prompt's excerpts whatever the selector chose."""
    start = oracle.text.find(answer)
    end = start + len(answer)
    if any(e.n == oracle.n and e.start <= start and end <= e.end for e in evidence):
        return evidence
    forced = Evidence(oracle.n, oracle.file, list(oracle.pages), answer, 0.0, start, end)
    kept = evidence[: max_items - 1] if len(evidence) >= max_items else evidence
    return [*kept, forced]


def render_example(plan: Plan, embed: Embed, maker: PromptMaker) -> Example | str:
    """The example, or why it was dropped."""
    qa, sources = plan.qa, plan.sources
    evidence = select_evidence(qa.question, sources, embed, max_items=maker.evidence_sentences)
    if plan.oracle == 0:
        if any(covers(e.text, qa.answer) for e in evidence):
            return "a distractor holds the answer"
        target, reference = ABSTAIN_TEXT, ""
    else:
        evidence = with_answer(evidence, sources[plan.oracle - 1], qa.answer, maker.evidence_sentences)
        target, reference = target_text(qa.answer, plan.oracle), qa.answer
    prompt = build_prompt(
        qa.question,
        prompt_passages(sources, evidence, order=TRAINED_EXCERPT_ORDER),
        count=maker.count,
        window=maker.window,
        max_new_tokens=maker.max_new_tokens,
        render=maker.render,
    )
    if reference and target not in prompt.text:  # the quote, as its sentences are cited there
        return "the answer was cut to fit the window"
    passages = [(s.n, s.text) for s in sources]
    return Example(qa.rule, qa.question, qa.chunk_id, prompt.text, target, plan.oracle, reference, passages)


def interleave_rules(qas: Sequence[QA], rng: random.Random) -> list[QA]:
    """Each rule's questions shuffled, then taken in turn, so a capped set holds every rule."""
    by_rule: dict[str, list[QA]] = {}
    for qa in qas:
        by_rule.setdefault(qa.rule, []).append(qa)
    queues = []
    for rule in sorted(by_rule):
        items = list(by_rule[rule])
        rng.shuffle(items)
        queues.append(items)
    out: list[QA] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out += [q[i] for q in queues if i < len(q)]
    return out


def build_examples(
    qas: Sequence[QA],
    chunks: dict[str, Chunk],
    ranked: Callable[[list[str]], list[list[Chunk]]],
    embed: Embed,
    maker: PromptMaker,
    *,
    limit: int,
    seed: int,
    allowed: Callable[[Chunk], bool] = lambda c: True,
    abstain_share: float = ABSTAIN_SHARE,
    prefetch: Callable[[list[str]], None] | None = None,
) -> tuple[list[Example], dict[str, int]]:
    """Up to ``limit`` examples and the counts by rule and by reason dropped.

    Args:
        qas: questions whose oracle chunks are in ``chunks`` (by chunk_id).
        ranked: questions -> chunks retrieved for each, best first (the hard distractors).
        allowed: which chunks may be distractors.
        prefetch: embeds many texts at once into ``embed``'s cache (see :func:`shortlist_texts`).
    """
    rng = random.Random(seed)
    pool = interleave_rules([qa for qa in qas if qa.chunk_id in chunks], rng)[: int(limit * 1.5) + 4]
    retrieved = ranked([qa.question for qa in pool]) if pool else []
    counts: dict[str, int] = {}
    plans = []
    for qa, found in zip(pool, retrieved, strict=True):
        oracle = chunks[qa.chunk_id]
        plan = plan_example(
            qa, oracle, distractors(oracle, found, allowed), rng.random() < abstain_share, rng
        )
        if plan is None:
            counts["dropped: too few distractors"] = counts.get("dropped: too few distractors", 0) + 1
        else:
            plans.append(plan)
    if prefetch is not None:
        prefetch(shortlist_texts(plans[: int(limit * 1.2) + 2]))
    examples: list[Example] = []
    for plan in plans:
        if len(examples) >= limit:
            break
        made = render_example(plan, embed, maker)
        key = made.rule if isinstance(made, Example) else f"dropped: {made}"
        if isinstance(made, Example):
            examples.append(made)
            key = "abstain" if made.oracle == 0 else made.rule
        counts[key] = counts.get(key, 0) + 1
    return examples, counts


def completion_ids(prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """(input ids, labels): the loss falls on the answer (and its end-of-turn token) only; the
    prompt's tokens are labelled -100, which the model's loss ignores."""
    return [*prompt_ids, *answer_ids], [-100] * len(prompt_ids) + list(answer_ids)
