"""The Assistant end to end on a tiny index (fake embedder) and a tiny GPT-2; status, monitor and CLI."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

import indexing.embed
from assistant import monitor, status
from assistant.__main__ import main
from assistant.model import resolve_lead
from assistant.pipeline import Answer, Assistant, ModelInfo
from assistant.presets import PRESETS
from assistant.retrieve import Retriever
from core.grounding.cite import strip_markers
from core.grounding.prompt import continue_text, lead_quote
from tests.assistant_support import BOOK, FakeEmbedder, write_tiny_index
from tests.conftest import TINY_TEXT, build_tiny_gpt2

QUESTION = "How do I send standard error to a file?"


@pytest.fixture(scope="module")
def lm_1024(tmp_path_factory) -> Path:
    """A tiny GPT-2 with GPT-2's 1024-token window, its BPE trained on the book too."""
    texts = [TINY_TEXT, *(t for entries in BOOK.values() for _, t in entries)]
    return build_tiny_gpt2(tmp_path_factory.mktemp("lm1024"), texts, n_positions=1024)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    return write_tiny_index(tmp_path_factory.mktemp("idx") / "index")


@pytest.fixture
def bot(index_dir, lm_1024, tmp_path) -> Assistant:
    retriever = Retriever.load(index_dir, encoder=FakeEmbedder())
    return Assistant(
        index_dir,
        model_dir=tmp_path / "no-model",
        base_model=str(lm_1024),
        retriever=retriever,
        log_file=tmp_path / "answers.jsonl",
        history_turns=2,  # test_stream_and_history checks the turns reach the prompt
    )


FAST = PRESETS["technical"].replace(max_new_tokens=8, num_beams=2)


@pytest.mark.slow
def test_ask_returns_answer_with_sources_and_timings(bot: Assistant, tmp_path: Path) -> None:
    answer = bot.ask(QUESTION, FAST)
    assert isinstance(answer, Answer) and answer.preset == "custom"
    assert [s.n for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert answer.sources[0].file == "bash.pdf" and 4 in answer.sources[0].pages
    t = answer.timings
    assert t.retrieval_ms > 0 and t.total_ms >= t.ttft_ms > 0 and 0 < t.new_tokens <= 8
    assert t.prompt_tokens + FAST.max_new_tokens <= bot.window == 1024
    assert not answer.fine_tuned and "no fine-tuned model" in bot.model_info.note
    assert answer.params["num_beams"] == 2
    logged = monitor.read_log(tmp_path / "answers.jsonl")
    assert logged[-1]["answer_id"] == answer.answer_id and logged[-1]["sources"]
    json.dumps(answer.as_json())  # serialisable for --json and the log


@pytest.mark.slow
def test_k_zero_answers_without_retrieval(bot: Assistant) -> None:
    answer = bot.ask(QUESTION, FAST, k=0)  # the eval's "base model, no retrieval" setup
    assert answer.sources == []
    assert "[1]" not in bot.build_prompt(QUESTION, [], [], 8).text
    assert bot.search(QUESTION) and bot.search(QUESTION, None) == bot.search(QUESTION)  # None = configured


@pytest.mark.slow
def test_stream_and_history(bot: Assistant) -> None:
    params = PRESETS["creative"].replace(max_new_tokens=16)
    stream = bot.stream(QUESTION, params, history=[("What is a pipeline?", "It connects commands.")])
    pieces = list(stream)
    assert len(pieces) > 1
    answer = stream.answer
    assert "".join(pieces) == continue_text(answer.lead, answer.model_text)  # streamed = kept
    hits = bot.search(QUESTION)
    prompt = bot.build_prompt(QUESTION, hits, [("What is a pipeline?", "It connects commands.")], 16)
    assert "Question: What is a pipeline?" in prompt.text and prompt.history
    # same seed, same answer
    assert bot.ask(QUESTION, params).text == bot.ask(QUESTION, params).text


@pytest.mark.slow
def test_answer_opens_with_the_best_quote(bot: Assistant) -> None:
    params = PRESETS["precise"].replace(max_new_tokens=8)
    assert bot.lead == "none"  # auto, for a model not trained to answer from sources
    bot.lead = "quote"
    stream = bot.stream(QUESTION, params)
    assert stream.evidence
    pieces = list(stream)
    answer = stream.answer
    opening = lead_quote(stream.evidence)
    assert pieces[0] == answer.lead == opening  # the quote comes before any model text
    assert strip_markers(answer.text).startswith(strip_markers(opening).rstrip())
    # the model was given the quote as its answer's start and continued it
    hits = bot.search(QUESTION)
    prompt = bot.build_prompt(QUESTION, hits, (), 8, stream.evidence, bot.opening(stream.evidence))
    assert prompt.text.endswith("Answer: " + opening)
    t = answer.timings
    assert t.ttft_ms <= t.first_token_ms <= t.total_ms and answer.support.sentences[0].supported
    # lead "none": the model writes it all, its first text is the first text
    bot.lead = "none"
    plain = bot.ask(QUESTION, params)
    assert plain.lead == "" and plain.timings.ttft_ms == plain.timings.first_token_ms
    assert not strip_markers(plain.text).startswith(strip_markers(opening).rstrip())


@pytest.mark.slow
def test_follow_up_is_searched_with_the_question_before(bot: Assistant, tmp_path: Path) -> None:
    params = PRESETS["precise"].replace(max_new_tokens=4)
    earlier = [("What is standard error in bash?", "The stream for error messages.")]
    answer = bot.ask("How do I send it to a file?", params, history=earlier)
    assert answer.query == "What is standard error in bash? How do I send it to a file?"
    assert [s.chunk_id for s in answer.sources] == [s.chunk_id for s in bot.retrieve(answer.query)]
    assert any("follow-up" in n for n in answer.notes)
    assert monitor.read_log(tmp_path / "answers.jsonl")[-1]["query"] == answer.query
    # a question that stands alone is searched as it is, whatever came before
    alone = bot.ask(QUESTION, params, history=earlier)
    assert alone.query == QUESTION and not any("follow-up" in n for n in alone.notes)


@pytest.mark.parametrize(
    ("lead", "manifest", "expected"),
    [
        ("auto", None, "none"),  # a base model
        ("auto", {"answer_from_sources": {"train_examples": 0}}, "none"),  # raw-text fine-tune
        ("auto", {"answer_from_sources": {"train_examples": 160}}, "quote"),  # answer-from-sources
        ("auto", {}, "none"),  # a manifest from before answer-from-sources training
        ("quote", None, "quote"),  # asked for: kept
        ("none", {"answer_from_sources": {"train_examples": 160}}, "none"),
    ],
)
def test_resolve_lead(lead: str, manifest: dict | None, expected: str) -> None:
    info = ModelInfo("m", "m", manifest is not None, None, None, manifest)
    assert resolve_lead(lead, info) == expected


@pytest.mark.parametrize(
    ("prefill", "native_bf16", "dtype", "expected"),
    [
        ("auto", True, "float32", "bf16"),  # fp32 weights on a CPU with native bf16
        ("auto", False, "float32", "fp32"),  # bf16 would be emulated: slower
        ("auto", True, "bfloat16", "fp32"),  # weights already half precision: nothing to gain
        ("fp32", True, "float32", "fp32"),  # asked for: kept
        ("bf16", False, "float32", "bf16"),
    ],
)
def test_resolve_prefill(monkeypatch, prefill: str, native_bf16: bool, dtype: str, expected: str) -> None:
    import torch

    import assistant.model

    monkeypatch.setattr(assistant.model, "cpu_supports_bf16", lambda: native_bf16)
    model = torch.nn.Linear(2, 2).to(getattr(torch, dtype))
    assert assistant.model.resolve_prefill(prefill, model) == expected


@pytest.mark.slow
def test_shared_between_threads(bot: Assistant) -> None:
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(bot.ask(QUESTION, FAST))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 3 and len({a.text for a in answers}) == 1


@pytest.mark.slow
def test_fine_tuned_folder_is_preferred(index_dir, lm_1024, tmp_path) -> None:
    import shutil

    model_dir = tmp_path / "finetuned"
    shutil.copytree(lm_1024, model_dir)
    manifest = {
        "base_model": {"requested": "gpt2", "used": "gpt2"},
        "perplexity": {"base": 40.0, "finetuned": 20.0},
    }
    (model_dir / "training_manifest.json").write_text(json.dumps(manifest))
    bot = Assistant(
        index_dir,
        model_dir=model_dir,
        retriever=Retriever.load(index_dir, encoder=FakeEmbedder()),
        load_model=False,
    )
    info = bot.model_info
    assert info.fine_tuned and info.base_model == "gpt2" and info.perplexity_finetuned == 20.0
    assert bot.index_info["chunks"] == sum(len(v) for v in BOOK.values())


# --- status ------------------------------------------------------------------------------


def test_status_missing_index_and_model(tmp_path: Path) -> None:
    problems = status.check(tmp_path / "none", tmp_path / "no-model")
    assert [(p.level, p.make_target) for p in problems] == [
        ("error", "make index"),
        ("warning", "make train"),
    ]


def test_status_mismatch_and_stale(index_dir: Path, tmp_path: Path) -> None:
    assert status.check_index(index_dir) == []
    problems = status.check_index(index_dir, embedder="all-MiniLM-L6-v2")
    assert problems[0].level == "error" and "fake-words" in problems[0].message
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "new.pdf").write_bytes(b"%PDF-1.4")
    (corpus / "bash.pdf").write_bytes(b"%PDF-1.4 changed")
    stale = status.check_index(index_dir, corpus_dir=corpus)
    assert stale[0].make_target == f"make index CORPUS={corpus}"  # not the default folder: say which
    assert (
        "1 new (new.pdf)" in stale[0].message
        and "1 changed" in stale[0].message
        and "1 removed" in stale[0].message
    )
    # the index's own corpus (recorded at build time) wins over the settings' folder
    manifest = json.loads((index_dir / "manifest.json").read_text())
    copy = tmp_path / "index-copy"
    shutil.copytree(index_dir, copy)
    (copy / "manifest.json").write_text(json.dumps(manifest | {"corpus_dir": str(corpus)}))
    assert "1 new (new.pdf)" in status.check_index(copy, corpus_dir=tmp_path / "elsewhere")[0].message


def test_status_model_trained_on_older_index(index_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "training_manifest.json").write_text(json.dumps({"data": {"chunks_sha256": "old"}}))
    assert status.check_model(model, index_dir)[0].make_target == "make train"
    (model / "training_manifest.json").write_text(
        json.dumps({"data": {"chunks_sha256": status.chunks_hash(index_dir)}})
    )
    assert status.check_model(model, index_dir) == []


# --- monitor -----------------------------------------------------------------------------


def test_monitor_feedback_and_summary(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    monitor.log_feedback(log, "abc", "up")
    monitor.log_feedback(log, "def", -1)
    assert [r["rating"] for r in monitor.read_log(log)] == [1, -1]
    assert monitor.summary(log)["thumbs_up_share"] == 0.5
    with pytest.raises(Exception, match="rating"):
        monitor.log_feedback(log, "abc", 5)
    assert monitor.read_log(tmp_path / "missing.jsonl") == []
    monitor.log_feedback("", "abc", "up")  # log_file = "" turns monitoring off, never an error
    assert monitor.read_log("") == [] and monitor.summary("")["answers"] == 0


# --- CLI ---------------------------------------------------------------------------------


def test_cli_missing_index_is_a_message(tmp_path: Path, capsys) -> None:
    assert main(["search", "anything", "--index", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "index" in err


def test_cli_search_queries_json(index_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(indexing.embed, "Embedder", lambda name, **kw: FakeEmbedder())
    queries = tmp_path / "q.txt"
    queries.write_text("standard error to a file\nfactors and levels\n")
    argv = [
        "search",
        "--queries",
        str(queries),
        "--index",
        str(index_dir),
        "--k",
        "2",
        "--embedder",
        "fake-words",
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(ln) for ln in lines)
    assert set(first[0]) == {"file", "pages", "score", "text", "section"}
    assert first[0]["file"] == "bash.pdf" and second[0]["file"] == "r.pdf"


@pytest.mark.slow
def test_cli_ask_json(index_dir: Path, lm_1024: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(indexing.embed, "Embedder", lambda name, **kw: FakeEmbedder())
    argv = ["ask", QUESTION, "--json", "--index", str(index_dir), "--model", str(tmp_path / "none")]
    argv += ["--base-model", str(lm_1024), "--max-new-tokens", "6", "--log-file", str(tmp_path / "l.jsonl")]
    argv += ["--embedder", "fake-words"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sources"][0]["file"] == "bash.pdf" and record["timings"]["new_tokens"] > 0
    assert record["preset"] == "custom" and "no fine-tuned model" in record["model_note"]
    assert set(record["evidence"][0]) == {"n", "file", "pages", "text", "score"}
    assert record["evidence"][0]["file"] == "bash.pdf" and "2>" in record["evidence"][0]["text"]
    support = record["support"]
    assert set(support) == {"supported_fraction", "sentences", "unsupported_code"}
    assert all(set(s) == {"text", "supported", "source", "score"} for s in support["sentences"])


@pytest.mark.slow
def test_cli_ask_prints_the_evidence_before_the_answer(
    index_dir: Path, lm_1024: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(indexing.embed, "Embedder", lambda name, **kw: FakeEmbedder())
    argv = ["ask", QUESTION, "--index", str(index_dir), "--model", str(tmp_path / "none")]
    argv += ["--base-model", str(lm_1024), "--max-new-tokens", "6", "--log-file", ""]
    argv += ["--embedder", "fake-words"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.out.startswith("From your books:\n  [1] bash.pdf pp. 4-5: \u201cRedirection opens files")
    assert out.out.index("Answer:") > out.out.index("From your books:")
    assert "support: " in out.err


@pytest.mark.slow
def test_generation_starts_with_the_stream_and_a_dropped_stream_frees_the_model(bot: Assistant) -> None:
    params = PRESETS["precise"].replace(max_new_tokens=400, repetition_penalty=1.0, copy_boost=0.0)
    stream = bot.stream(QUESTION, params)
    gen = stream._cancel.__self__  # the Generation behind it
    assert gen.sentence_ends and gen.sentence_ends == bot._sentence_ends  # where the copy boost rests
    assert gen._worker is not None and gen._worker[0].is_alive()  # reading the prompt already
    del stream  # never read: a rerun dropped it
    assert gen.cancelled.is_set()
    gen._worker[0].join(timeout=30)
    assert not gen._worker[0].is_alive() and gen.new_tokens < 400
    assert bot._lock.acquire(timeout=5)
    bot._lock.release()


@pytest.mark.slow
def test_evidence_is_known_before_generation_and_shortens_the_prompt(bot: Assistant) -> None:
    params = PRESETS["precise"].replace(max_new_tokens=6)
    stream = bot.stream(QUESTION, params)
    assert stream.evidence and stream.evidence[0].file == "bash.pdf"  # before any piece is read
    assert "2> to send standard error" in stream.evidence[0].text
    answer = stream.answer
    assert answer.context == "evidence" and answer.evidence == stream.evidence
    assert answer.support is not None and answer.timings.evidence_ms > 0
    bot.context = "passages"
    whole = bot.ask(QUESTION, params)
    assert whole.context == "passages" and whole.timings.prompt_tokens > answer.timings.prompt_tokens
    assert [s.n for s in whole.sources] == [s.n for s in answer.sources]  # one numbering either way


@pytest.mark.slow
def test_weak_evidence_abstains_without_generating(bot: Assistant, tmp_path: Path) -> None:
    from assistant.pipeline import ABSTAIN_TEXT

    bot.abstain_below = 0.99  # no sentence of the tiny book is that close to the question
    stream = bot.stream("What is the airspeed of a swallow?", PRESETS["precise"])
    assert stream.abstained and list(stream) == [ABSTAIN_TEXT]
    answer = stream.answer
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.timings.new_tokens == 0
    assert answer.sources  # the closest passages are still shown
    logged = monitor.read_log(tmp_path / "answers.jsonl")[-1]
    assert logged["abstained"] is True and logged["support_fraction"] == 1.0


@pytest.mark.slow
def test_bf16_prefill_is_used_and_recorded(index_dir, lm_1024, tmp_path) -> None:
    retriever = Retriever.load(index_dir, encoder=FakeEmbedder())
    common = dict(model_dir=tmp_path / "no-model", base_model=str(lm_1024), retriever=retriever)
    greedy = PRESETS["precise"].replace(max_new_tokens=8)
    fast = Assistant(index_dir, prefill="bf16", log_file=tmp_path / "answers.jsonl", **common).ask(
        QUESTION, greedy
    )
    assert fast.prefill == "bf16" and fast.timings.new_tokens > 0 and fast.text
    assert monitor.read_log(tmp_path / "answers.jsonl")[-1]["prefill"] == "bf16"
    assert Assistant(index_dir, prefill="fp32", **common).ask(QUESTION, greedy).prefill == "fp32"
    beams = Assistant(index_dir, prefill="bf16", **common).ask(QUESTION, FAST)
    assert beams.prefill == "bf16" and beams.text  # beams read the prompt in generate's first call too
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="prefill must be one of auto, fp32, bf16"):
        Assistant(index_dir, retriever=retriever, prefill="int8", load_model=False)


def test_context_setting_is_checked(index_dir: Path) -> None:
    from core.errors import ConfigError

    retriever = Retriever.load(index_dir, encoder=FakeEmbedder())
    with pytest.raises(ConfigError, match="context must be one of evidence, passages"):
        Assistant(index_dir, retriever=retriever, context="pages", load_model=False)


@pytest.mark.slow
def test_an_answer_ends_where_the_model_writes_a_sources_fence(bot: Assistant, monkeypatch) -> None:
    """The raw-text fine-tune copied the prompt's layout ("… </sources> <sources> [1] (bashref…"): cut."""
    import assistant.pipeline as pipeline_module

    seen: list = []
    real = pipeline_module.Generation

    def spy(*args, **kwargs):
        gen = real(*args, **kwargs)
        seen.append(gen.stops)
        return gen

    monkeypatch.setattr(pipeline_module, "Generation", spy)
    bot.ask(QUESTION, PRESETS["precise"].replace(max_new_tokens=4))
    assert {"<sources>", "</sources>", "\nQuestion:", "\nAnswer:"} <= set(seen[0])  # chat models too
