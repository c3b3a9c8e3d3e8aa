"""The answer-from-sources cache key: whatever the examples are made from changes it, so a changed
rule, layout or share never trains on stale cached examples."""

from __future__ import annotations

import types

import pytest

import training.sources as sources
from indexing.records import Chunk
from training.answers import QA

CHUNK = Chunk("a.pdf:0", "a.pdf", 1, 1, "A pipeline is a sequence of commands.", 7, "body")
QAS = [QA("definition", "What is a pipeline?", CHUNK.chunk_id, CHUNK.text)]


def request(**changes) -> sources.Request:
    fields = {
        "train_chunks": [CHUNK],
        "held_chunks": [],
        "order": [CHUNK.chunk_id],
        "tokenizer": types.SimpleNamespace(name_or_path="tiny", chat_template=None),
        "window": 2048,
        "limit": 160,
        "held_out_limit": 12,
        "seed": 42,
    }
    return sources.Request(**(fields | changes))


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 7},
        {"limit": 80},
        {"window": 1024},
        {"tokenizer": types.SimpleNamespace(name_or_path="other", chat_template=None)},
    ],
)
def test_the_key_follows_the_request(change: dict) -> None:
    assert request(**change).cache_key(QAS) != request().cache_key(QAS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ABSTAIN_SHARE", 0.3),  # a constant changed in the code, with no version bump
        ("HELD_OUT_ABSTAIN_SHARE", 0.5),
        ("N_SOURCES", 4),
        ("NEAR_PAGES", 2),
        ("MAX_NEW_TOKENS", 64),
        ("RETRIEVED", 10),
        ("RANK_PRIOR", 0.05),  # the evidence order picks what a target quotes
        ("FORM_PRIOR", 0.2),
        ("TITLE_PRIOR", 0.3),
        ("EXAMPLES_VERSION", 999),
        ("format_passage", lambda n, p: f"[{n}] {p.text}"),  # another source layout
        ("TRAINED_INSTRUCTIONS", "Answer from the sources."),  # in every prompt
        ("ABSTAIN_TEXT", "Not in the books."),  # the abstaining examples' target
    ],
)
def test_the_key_follows_the_code(monkeypatch: pytest.MonkeyPatch, name: str, value: object) -> None:
    before = request().cache_key(QAS)
    monkeypatch.setattr(sources, name, value)
    assert request().cache_key(QAS) != before


def test_the_key_is_stable() -> None:
    assert request().cache_key(QAS) == request().cache_key(list(QAS))
    assert request().cache_key(QAS) != request().cache_key([])


def test_the_key_follows_the_index_vectors() -> None:
    """The same chunks embedded otherwise (another backend, or under their section headings) rank
    other distractors: a held-out set evaluated across two such indexes once came from the first's cache."""
    assert request().cache_key(QAS, "a" * 64) != request().cache_key(QAS, "b" * 64)
    assert request().cache_key(QAS, "a" * 64) == request().cache_key(QAS, "a" * 64)


def test_held_out_examples_use_their_own_abstain_share(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Held-out examples leave their source out more often (HELD_OUT_ABSTAIN_SHARE), so abstention
    accuracy has cases to count; training uses ABSTAIN_SHARE. Each set comes from its own chunks."""
    from tests.assistant_support import FakeEmbedder, book_chunks, write_tiny_index

    chunks = book_chunks()
    index = write_tiny_index(tmp_path / "index", chunks)
    calls = []

    def fake_build_examples(questions, by_id, ranked, embed, maker, *, abstain_share, **kw):
        calls.append((sorted(by_id), abstain_share, kw["seed"]))
        return [], {}

    monkeypatch.setattr(sources, "build_examples", fake_build_examples)
    train, held = chunks[:-2], chunks[-2:]
    req = request(train_chunks=train, held_chunks=held, order=[c.chunk_id for c in chunks])
    sources._build(index, QAS, req, FakeEmbedder())
    assert calls == [
        (sorted(c.chunk_id for c in train), sources.ABSTAIN_SHARE, 42),
        (sorted(c.chunk_id for c in held), sources.HELD_OUT_ABSTAIN_SHARE, 43),
    ]
    assert sources.HELD_OUT_ABSTAIN_SHARE > sources.ABSTAIN_SHARE
