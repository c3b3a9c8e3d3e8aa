"""Answer-from-sources examples (pure): distractors, sources, the rendered prompt and target, the
mix with packed blocks, completion-only labels, padding, and the held-out answer scores."""

from __future__ import annotations

import random
from typing import Any

import pytest

from core.grounding.evidence import MemoEmbed
from core.grounding.prompt import ABSTAIN_TEXT, render_plain
from indexing.records import Chunk
from tests.assistant_support import FakeEmbedder
from training.answers import QA
from training.data import mix
from training.examples import (
    N_SOURCES,
    Example,
    PromptMaker,
    build_examples,
    completion_ids,
    distractors,
    plan_example,
    render_example,
    target_text,
)
from training.sources_eval import answer_scores, describe_scores, full_sentences, generate_answers
from training.trainer import PadCollator, item_mean_loss

EMBED = FakeEmbedder().encode
MAKER = PromptMaker(render_plain, lambda text: len(text.split()), window=4000)

TOPICS = ["pipes", "arrays", "signals", "quoting", "functions", "globbing", "history", "jobs"]


def chunk(i: int, file: str = "a.pdf", page: int | None = None, kind: str = "body", text: str = "") -> Chunk:
    page = page if page is not None else i * 3 + 1
    topic = TOPICS[i % len(TOPICS)]
    text = text or (
        f"The shell section {i} is about {topic} in scripts. "
        f"{topic.capitalize()} connect commands so that scripts run in order number {i}. "
        f"Some other remark about {topic} closes section {i}."
    )
    return Chunk(f"{file}:{i}", file, page, page, text, len(text.split()), kind)


PIPELINE = "A pipeline is a sequence of commands separated by the control operator."
ORACLE = chunk(0, text=f"{PIPELINE} Each command reads the output of the previous one.")
QA_PIPE = QA("definition", "What is a pipeline?", ORACLE.chunk_id, PIPELINE)
OTHERS = [chunk(i, file="b.pdf") for i in range(1, 9)]


@pytest.mark.parametrize(
    ("candidate", "kept", "why"),
    [
        (OTHERS[0], True, "another book"),
        (ORACLE, False, "the oracle itself"),
        (chunk(5, file="a.pdf", page=2), False, "the oracle's file, next page"),
        (chunk(5, file="a.pdf", page=9), True, "the oracle's file, far away"),
        (chunk(6, file="b.pdf", kind="index"), False, "an index page"),
        (chunk(7, file="c.pdf", text=ORACLE.text), False, "the oracle's text again"),
        (chunk(8, file="held.pdf"), False, "not allowed (held out)"),
    ],
)
def test_distractors_leave_out_the_oracle_and_its_neighbourhood(
    candidate: Chunk, kept: bool, why: str
) -> None:
    out = distractors(ORACLE, [candidate], allowed=lambda c: c.file != "held.pdf")
    assert (candidate in out) == kept, why


@pytest.mark.parametrize("abstain", [False, True])
def test_a_plan_shows_as_many_passages_with_or_without_the_oracle(abstain: bool) -> None:
    plan = plan_example(QA_PIPE, ORACLE, OTHERS, abstain, random.Random(0))
    assert plan is not None and len(plan.sources) == N_SOURCES
    assert [s.n for s in plan.sources] == list(range(1, N_SOURCES + 1))
    texts = [s.text for s in plan.sources]
    if abstain:
        assert plan.oracle == 0 and ORACLE.text not in texts
    else:
        assert plan.sources[plan.oracle - 1].text == ORACLE.text


def test_too_few_distractors_give_no_plan() -> None:
    assert plan_example(QA_PIPE, ORACLE, OTHERS[: N_SOURCES - 2], False, random.Random(0)) is None


def test_the_target_quotes_the_oracle_with_its_number_and_the_prompt_holds_the_quote() -> None:
    plan = plan_example(QA_PIPE, ORACLE, OTHERS, False, random.Random(3))
    ex = render_example(plan, EMBED, MAKER)
    assert not isinstance(ex, str)
    assert ex.target == target_text(QA_PIPE.answer, plan.oracle) == f"{QA_PIPE.answer} [{plan.oracle}]"
    assert f"[{plan.oracle}] (a.pdf p. 1)" in ex.prompt
    assert ex.target in ex.prompt  # the quote is copied from the prompt, its citation with it
    assert ex.prompt.endswith(f"Question: {QA_PIPE.question}\nAnswer:")  # the assistant's own template


def test_an_example_without_its_oracle_abstains_unless_a_distractor_answers() -> None:
    plan = plan_example(QA_PIPE, ORACLE, OTHERS, True, random.Random(0))
    ex = render_example(plan, EMBED, MAKER)
    assert not isinstance(ex, str) and ex.target == ABSTAIN_TEXT and ex.oracle == 0 and ex.reference == ""
    copy = chunk(7, file="c.pdf", text="Also: " + ORACLE.text)  # another book says the same
    plan = plan_example(QA_PIPE, ORACLE, [copy, *OTHERS], True, random.Random(0))
    assert render_example(plan, EMBED, MAKER) == "a distractor holds the answer"


def test_the_answer_is_put_among_the_evidence_when_the_selector_missed_it() -> None:
    other = QA("outline", "What about signals?", ORACLE.chunk_id, QA_PIPE.answer)  # words far from it
    plan = plan_example(other, ORACLE, OTHERS, False, random.Random(1))
    ex = render_example(plan, EMBED, PromptMaker(render_plain, MAKER.count, 4000, evidence_sentences=1))
    assert not isinstance(ex, str) and QA_PIPE.answer in ex.prompt


def test_examples_are_deterministic_capped_and_counted() -> None:
    chunks = {c.chunk_id: c for c in [ORACLE, *OTHERS]}
    rules = ["outline", "definition"]
    qas = [
        QA(rules[i % 2], f"What is topic {i}?", c.chunk_id, c.text.split(". ")[0] + ".")
        for i, c in enumerate(OTHERS)
    ]
    qas.append(QA_PIPE)
    everything = list(chunks.values())

    def ranked(questions: list[str]) -> list[list[Chunk]]:
        return [everything for _ in questions]

    def build(seed: int):
        return build_examples(
            qas, chunks, ranked, MemoEmbed(EMBED), MAKER, limit=6, seed=seed, abstain_share=0.3
        )

    first, counts = build(0)
    assert [e.as_json() for e in first] == [e.as_json() for e in build(0)[0]]
    assert len(first) == 6 and sum(v for k, v in counts.items() if not k.startswith("dropped")) == 6
    assert {e.rule for e in first if e.oracle} == {"outline", "definition"}  # both rules, interleaved
    assert [e.as_json() for e in build(1)[0]] != [e.as_json() for e in first]


def test_completion_labels_mask_the_prompt_only() -> None:
    ids, labels = completion_ids([5, 6, 7], [8, 9, 2])
    assert ids == [5, 6, 7, 8, 9, 2] and labels == [-100, -100, -100, 8, 9, 2]


@pytest.mark.parametrize(
    ("n_blocks", "n_examples", "share", "blocks", "examples"),
    [
        (10, 4, 0.0, 10, 0),  # raw text only
        (10, 0, 0.5, 10, 0),  # no examples built: every block
        (10, 4, 0.5, 4, 4),
        (10, 4, 0.2, 10, 4),  # wants 16 blocks, has 10
        (10, 6, 0.75, 2, 6),
    ],
)
def test_mix_keeps_the_share(
    n_blocks: int, n_examples: int, share: float, blocks: int, examples: int
) -> None:
    block_ids = [[i] * 4 for i in range(n_blocks)]
    ex = [completion_ids([1, 2], [3]) for _ in range(n_examples)]
    m = mix(block_ids, ex, share)
    assert (m.blocks, m.examples, len(m.items)) == (blocks, examples, blocks + examples)
    assert all(labels == ids for ids, labels in m.items[: m.blocks])  # blocks: every token is a label


def test_padding_is_masked_and_unlabelled() -> None:
    batch = PadCollator(0)(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def _loss_inputs(rows: list[list[float]], labels: list[list[int]]) -> tuple[dict, Any]:
    """Logits over a 2-word vocabulary: row value x puts log-odds x on word 1 at each position."""
    import torch

    x = torch.tensor(rows)
    logits = torch.stack([torch.zeros_like(x), x], dim=-1)
    return {"logits": logits}, torch.tensor(labels)


@pytest.mark.parametrize(
    "rows, labels, per_item",
    [
        # equal rows, every token labelled: the item mean is the token mean
        ([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]], [[1, 1, 1], [1, 1, 1]], None),
        # a long block (row 0) and a short answer (row 1): each weighs half, not 2:1 by tokens
        ([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]], [[1, 1, 1], [-100, -100, 1]], "half each"),
        # a row with no labels (all prompt) adds nothing and divides nothing
        ([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]], [[1, 1, 1], [-100, -100, -100]], "first row only"),
    ],
)
def test_item_mean_loss(rows: list[list[float]], labels: list[list[int]], per_item: str | None) -> None:
    import torch
    import torch.nn.functional as F

    outputs, y = _loss_inputs(rows, labels)
    loss = float(item_mean_loss(outputs, y))
    ce = F.cross_entropy(
        outputs["logits"][:, :-1].transpose(1, 2), y[:, 1:], ignore_index=-100, reduction="none"
    )
    mask = y[:, 1:].ne(-100)
    token_mean = float(ce[mask].mean())
    row0 = float(ce[0][mask[0]].mean())
    if per_item is None:
        assert loss == pytest.approx(token_mean)
    elif per_item == "half each":
        row1 = float(ce[1][mask[1]].mean())
        assert loss == pytest.approx((row0 + row1) / 2)
        assert loss != pytest.approx(token_mean)
    else:
        assert loss == pytest.approx(row0)
    assert torch.isfinite(torch.tensor(loss))


def test_answer_scores() -> None:
    from training.examples import Example

    passages = [
        (n, "A pipeline is a sequence of commands." if n == 2 else "Other words here.") for n in (1, 2, 3)
    ]

    def ex(oracle: int) -> Example:
        reference = "a pipeline is a sequence of commands" if oracle else ""
        return Example("outline", "q", "c", "p", "t", oracle, reference, passages)

    examples = [ex(2), ex(3), ex(0), ex(0)]
    answers = [
        "A pipeline is a sequence of commands. [2]",  # right quote, right citation
        "A pipeline is a sequence of commands. [1]",  # wrong citation
        ABSTAIN_TEXT,  # abstains as it should
        "It runs commands.",  # should have abstained
    ]
    s = answer_scores(examples, answers)
    assert s["f1"] == 1.0 and s["citation_accuracy"] == 0.5 and s["abstention_accuracy"] == 0.75
    assert (
        s["verified_citation_accuracy"] == 0.5
    )  # the quote is found in [2]: the [1] becomes [2]; [3] had no [2]
    assert (
        s["abstained_when_answerable"] == 0.0
        and s["abstained_when_unanswerable"] == 0.5
        and s["median_full_sentences"] == 1.0
    )
    assert full_sentences("You can use the following commands:") == 0
    assert s["unanswerable"] == 2
    assert "abstention accuracy 0.75 (abstained on 1 of 2 without their source)" in describe_scores(s)


def test_indexed_pdfs_missing_at_training_time_are_named_not_silently_skipped(tmp_path) -> None:
    from tests.conftest import make_pdf
    from training.sources import book_questions, file_sha256

    here = make_pdf(tmp_path / "here.pdf", ["one"])
    manifest = {
        "corpus_dir": str(tmp_path),
        "files": {
            "here.pdf": {"status": "indexed", "sha256": file_sha256(here)},
            "moved.pdf": {"status": "indexed", "sha256": "0" * 64},
            "broken.pdf": {"status": "failed"},  # never indexed: nothing to miss
        },
    }
    with pytest.warns(UserWarning, match=r"1 indexed PDF\(s\) are not at .*: moved\.pdf\. Run training"):
        book_questions(manifest, [])
    del manifest["files"]["moved.pdf"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        book_questions(manifest, [])


class _Says:
    """A model and tokenizer that answer every prompt with ``text``: enough for generate_answers."""

    chat_template = "{{ messages }}"  # a chat model: the turn labels of the plain template are not its own
    eos_token_id = pad_token_id = 0
    training = False

    def __init__(self, text: str):
        self.text = text

    def __call__(self, prompt: str, **kwargs: Any) -> dict[str, Any]:
        import torch

        return {"input_ids": torch.ones((1, 3), dtype=torch.long)}

    def generate(self, input_ids: Any, **kwargs: Any) -> Any:
        import torch

        return torch.cat([input_ids, torch.full((1, 2), 7)], dim=1)

    def decode(self, ids: Any, **kwargs: Any) -> str:
        return self.text

    def parameters(self) -> Any:
        import torch

        return iter([torch.zeros(1)])

    def eval(self) -> None: ...

    def train(self, mode: bool = True) -> None: ...


@pytest.mark.parametrize(
    ("said", "answer"),
    [
        # a 13-step fine-tune of the chat model went on with the user turn's label, or restarted its answer
        ("X is a Y. [5]\n\nQuestion: What is X?", "X is a Y. [5]"),
        ("Allegro CL is a mark. [4]\n\nAnswer: Allegro CL is a mark. [4]", "Allegro CL is a mark. [4]"),
        ("Quote [1] </sources> <sources> [1] (bashref.pdf", "Quote [1]"),  # copying the prompt's layout
        ("One answer. [2] And its second sentence. [2]", "One answer. [2] And its second sentence. [2]"),
    ],
)
def test_a_held_out_answer_ends_at_a_new_turn_for_chat_models_too(said: str, answer: str) -> None:
    says = _Says(said)
    example = Example("outline", "What is X?", "c1", "prompt", "X is a Y. [5]", 5, "X is a Y.")
    assert generate_answers(says, says, [example]) == [answer]
