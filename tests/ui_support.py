"""Helpers for the UI tests: a fake assistant (AppTest) and a real tiny index + model (browser).

The fake follows ``assistant.pipeline.Assistant``'s public API and records which method answered,
so a test can tell a streamed answer from a whole one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.pipeline import ABSTAIN_TEXT, Answer, Evidence, ModelInfo, Source, Support, Timings
from assistant.support import SentenceSupport

CALLS: list[tuple[str, str]] = []  # (method, question) for every answer the fake gave

PASSAGE = (
    "To redirect standard error to a file, use 2> file. The form &> file redirects both "
    "standard output and standard error; $HOME is expanded first."
)
EVIDENCE_END = PASSAGE.index(" The form")  # the first sentence is the evidence
ANSWER = "Use `2> file` to send stderr to a file [1]. Bash was written in 1802 by a cat."


HELD_OUT_BASE = {
    "examples": 12,
    "f1": 0.195,
    "citation_accuracy": 0.0,
    "abstention_accuracy": 0.83,
    "median_words": 48,
}
HELD_OUT_TUNED = {
    "examples": 12,
    "unanswerable": 2,
    "f1": 0.386,
    "citation_accuracy": 0.5,
    "abstention_accuracy": 0.83,
    "abstained_when_unanswerable": 0.0,
    "median_words": 21,
}


class FakeAssistant:
    """Answers every question with one citation of a bash-manual page."""

    def __init__(self, index_dir: str, model_dir: str | None = None, **kwargs: Any) -> None:
        self.index_dir, self.model_dir = index_dir, model_dir
        self.model_info = ModelInfo(
            model_id="tiny-gpt2",
            base_model="gpt2",
            fine_tuned=True,
            perplexity_base=80.0,
            perplexity_finetuned=20.0,
            manifest={
                "steps": 10,
                "tokens_seen": 5120,
                "perplexity": {"base": 80.0, "finetuned": 20.0},
                "answer_from_sources": {"held_out": {"base": HELD_OUT_BASE, "finetuned": HELD_OUT_TUNED}},
            },
        )
        self.index_info = {"files": 1, "pages": 2, "chunks": 3, "embedder": "fake", "built_at": 0}

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> FakeAssistant:
        return cls(settings.index_dir, settings.model_dir, **overrides)

    def retrieve(self, question: str, k: int | None = None) -> list[Source]:
        return [Source(1, "manuals/bashref.pdf", [37, 38], 0.83, PASSAGE, "c7", "3.6 Redirections")]

    def _answer(self, question: str, params: Any, preset: str | None = None) -> Answer:
        abstain = "unrelated" in question  # the fake's books do not cover it
        evidence = [
            Evidence(1, "manuals/bashref.pdf", [37, 38], PASSAGE[:EVIDENCE_END], 0.71, 0, EVIDENCE_END)
        ]
        support = Support(
            0.5,
            [
                SentenceSupport("Use `2> file` to send stderr to a file [1].", True, 1, 0.8),
                SentenceSupport("Bash was written in 1802 by a cat.", False, 1, 0.2),
            ],
            ["rm -rf /"] if "danger" in question else [],
        )
        return Answer(
            answer_id=f"a{len(CALLS)}",
            question=question,
            text=ABSTAIN_TEXT if abstain else ANSWER,
            sources=self.retrieve(question),
            preset=preset or "custom",
            params=params.as_dict(),
            model_id="tiny-gpt2",
            fine_tuned=True,
            timings=Timings(1.0, 50, 2.0, 100.0, 30.0, 12),
            evidence=evidence,
            support=None if abstain else support,
            abstained=abstain,
        )

    def ask(self, question: str, params: Any, history: Any = (), k: int | None = None, **kw: Any) -> Answer:
        CALLS.append(("ask", question))
        return self._answer(question, params, kw.get("preset"))

    def stream(self, question: str, params: Any, history: Any = (), k: int | None = None, **kw: Any):
        CALLS.append(("stream", question))
        return FakeStream(self._answer(question, params, kw.get("preset")))


class FakeStream:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.evidence, self.sources, self.abstained = answer.evidence, answer.sources, answer.abstained
        self.read = 0  # pieces handed out

    def __iter__(self) -> Iterator[str]:
        for piece in self.answer.text.split(" "):
            self.read += 1
            yield piece + " "


def build_tiny_index(corpus: Path, index_dir: Path) -> Path:
    """A real index of one generated two-page 'bash manual' (the offline MiniLM embedder)."""
    from indexing.build import build_index  # tests may import indexing; the UI never does
    from tests.conftest import TINY_TEXT, make_pdf

    make_pdf(corpus / "bashref.pdf", [TINY_TEXT[:900], "Pipelines and redirection. " + TINY_TEXT[:600]])
    build_index(corpus, index_dir, workers=1, progress=False, log=lambda msg: None)
    return index_dir


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random GPT-2 with a 1024-token window: room for a prompt with passages and an answer."""
    from tests.conftest import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("ui-tiny-lm"), n_positions=1024)


_BUILT: dict[str, Path] = {}  # one tiny index per session, even when two modules import the fixture


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``build_tiny_index`` once per session (assign this fixture to a name in the test module)."""
    if "index" not in _BUILT:
        tmp = tmp_path_factory.mktemp("ui-index")
        _BUILT["index"] = build_tiny_index(tmp / "corpus", tmp / "index")
    return _BUILT["index"]
