"""The Streamlit app through AppTest, with the assistant patched by a fake (fast, no model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.layout import IndexFiles
from tests import ui_support

tiny_index, tiny_lm = ui_support.tiny_index, ui_support.tiny_lm  # session fixtures
APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


def _index_stub(index_dir: Path) -> None:
    """Just enough of an index folder for assistant.status.check to pass (the fake does the rest)."""
    files = IndexFiles(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    files.manifest.write_text(json.dumps({"format": 1, "counts": {"chunks": 1}}))
    files.chunks.write_text('{"id": "c7"}\n')
    files.faiss.write_bytes(b"stub")
    files.embeddings.write_bytes(b"stub")


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    """``make_app(*flags, fake=True)`` -> an AppTest of ui/app.py run with those flags after ``--``."""
    ui_support.CALLS.clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    index = tmp_path / "index"
    log = tmp_path / "answers.jsonl"

    def make(*flags: str, fake: bool = True, index_dir: Path | None = None, model_dir: Path | None = None):
        if index_dir is None:
            index_dir = index
            if fake:
                _index_stub(index)
        if fake:
            monkeypatch.setattr("assistant.pipeline.Assistant", ui_support.FakeAssistant, raising=False)
        argv = ["--index", str(index_dir), "--model", str(model_dir or tmp_path / "model")]
        argv += ["--log-file", str(log), "--corpus", str(index_dir.parent / "corpus"), *flags]
        monkeypatch.setattr(sys, "argv", [APP, *argv])
        return AppTest.from_file(APP, default_timeout=30)

    make.log = log
    return make


def _ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _captions(block) -> str:
    return "\n".join(c.value for c in block.caption)


def test_question_renders_answer_and_sources(make_app):
    at = make_app().run()
    assert not at.exception
    _ask(at, "How do I redirect stderr to a file in bash?")
    messages = at.chat_message
    assert [m.name for m in messages] == ["user", "assistant"]
    answer = messages[1]
    assert any("to a file [1]" in m.value for m in answer.markdown)
    (expander,) = answer.expander
    assert expander.label == "Sources (1)"
    heading = expander.markdown[0].value
    assert "bashref.pdf pp. 37-38** · 3\\.6 Redirections · score 0.830" in heading and "cited" in heading
    assert (
        ":orange-background[redirects]" in expander.markdown[1].value
    )  # question words, outside the evidence
    assert "\\$HOME" in expander.markdown[1].value  # shown literally, not as LaTeX
    # sources are stored in the message: they re-render on the next run
    at.run()
    assert at.chat_message[1].expander[0].label == "Sources (1)"
    records = [json.loads(line) for line in make_app.log.read_text().splitlines()]
    assert records[0]["type"] == "answer" and records[0]["source_pages"] == ["bashref.pdf pp. 37-38"]


def test_switching_presets_changes_sliders_and_editing_switches_to_custom(make_app):
    at = make_app("--preset", "technical").run()
    assert at.selectbox(key="preset").value == "technical"
    assert at.slider(key="num_beams").value == 4
    assert at.slider(key="temperature").value == pytest.approx(0.3)
    assert any("No effect now" in c.value for c in at.sidebar.caption)  # temperature without sampling

    at.selectbox(key="preset").select("creative").run()
    assert at.slider(key="temperature").value == pytest.approx(0.9)
    assert at.slider(key="top_k").value == 50
    assert at.slider(key="num_beams").value == 1
    assert at.toggle(key="do_sample").value is True

    at.slider(key="temperature").set_value(0.5).run()
    assert at.selectbox(key="preset").value == "custom"
    assert at.slider(key="temperature").value == pytest.approx(0.5)
    assert at.slider(key="top_k").value == 50  # the rest stays where it was


def test_missing_index_is_a_friendly_message(make_app):
    at = make_app(fake=False).run()
    assert not at.exception
    assert "make index" in at.info[0].value
    assert not at.chat_input  # stopped before the chat


@pytest.mark.parametrize(
    ("flags", "says"), [(["--bogus"], "unknown argument"), (["--passages", "many"], "must be int")]
)
def test_bad_flags_are_a_message(make_app, flags, says):
    at = make_app(*flags).run()
    assert not at.exception
    assert says in at.error[0].value


def test_beams_preset_answers_whole_and_sampling_preset_streams(make_app):
    at = make_app("--preset", "technical").run()
    _ask(at, "What is a pipeline?")
    at.selectbox(key="preset").select("creative").run()
    _ask(at, "And a variable?")
    # both go through stream(): the evidence is shown before generation in either case
    assert ui_support.CALLS == [("stream", "What is a pipeline?"), ("stream", "And a variable?")]
    assert "beam search, 4 beams" in _captions(at.chat_message[1])
    assert "streamed" in _captions(at.chat_message[3])


def test_default_preset_streams_and_beam_presets_say_they_are_slower(make_app):
    at = make_app().run()
    box = at.selectbox(key="preset")
    assert box.value == "precise"
    assert at.slider(key="num_beams").value == 1
    assert "technical (slower, no streaming)" in box.options and "precise" in box.options


def test_evidence_comes_first_and_unsupported_sentences_are_marked(make_app):
    at = _ask(make_app().run(), "How do I redirect stderr?")
    answer = at.chat_message[1]
    texts = [m.value for m in answer.markdown]
    first = texts.index(next(t for t in texts if "From your books" in t))
    quote = texts[first + 1]
    assert "To redirect standard error to a file, use 2" in quote and "bashref.pdf pp. 37-38" in quote
    marked = next(t for t in texts if "Bash was written" in t)
    assert texts.index(marked) > first  # the evidence is above the answer
    assert "1802 by a cat. :red-badge[not found in your books]" in marked
    assert "[1]. :red-badge" not in marked  # the supported sentence is not marked
    # inside its passage, the evidence sentence is highlighted
    passage = answer.expander[0].markdown[1].value
    assert passage.startswith(":green-background[To redirect standard error to a file, use 2\\> file\\.]")


def test_mostly_unsupported_answers_warn_and_made_up_commands_are_listed(make_app):
    at = _ask(make_app().run(), "danger: how do I clean up?")
    answer = at.chat_message[1]
    assert not [w for w in answer.warning if "Most of this answer" in w.value]  # 0.5 is not "most"
    assert "Commands not found in your books: `rm -rf /`" in _captions(answer)


def test_abstention_shows_the_closest_passages_instead_of_an_answer(make_app):
    at = _ask(make_app().run(), "Something unrelated?")
    answer = at.chat_message[1]
    assert "do not seem to cover" in answer.info[0].value
    assert any("Closest passages in your books" in m.value for m in answer.markdown)
    assert not [m for m in answer.markdown if "red-badge" in m.value]


def test_feedback_is_logged_and_clear_chat_empties_history(make_app):
    at = make_app().run()
    _ask(at, "How do I redirect stderr?")
    at.feedback[0].set_value(1).run()  # 👍
    records = [json.loads(line) for line in make_app.log.read_text().splitlines()]
    assert records[-1]["type"] == "feedback" and records[-1]["rating"] == 1
    at.sidebar.button[0].click().run()
    assert not at.chat_message


def test_model_view_shows_perplexity_and_the_eval_report(make_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the app reads reports/ in its working folder: none yet
    at = make_app().run()
    assert [t.label for t in at.tabs] == [":material/chat: Chat", ":material/monitoring: Model"]
    model = at.tabs[1]
    # perplexity, then the held-out answer-from-sources scores (after, with the base's as the delta)
    assert [m.value for m in model.metric] == ["80.00", "20.00", "0.386", "50%", "83%", "21"]
    assert any("Answering from sources" in m.value for m in model.markdown)
    # the 83% is earned on the answerable ones: the caption says it abstained on none of the others
    assert any("Abstained on 0 of the 2" in c.value for c in model.caption)
    assert "make train" in model.info[0].value  # no loss curve in the model folder
    assert any("make eval" in c.value for c in model.caption)

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "eval-2026-01-01.md").write_text("# eval\n\n| mode | hit@5 |\n|---|---|\n| hybrid | 0.9 |\n")
    at.run()
    assert any("| hybrid | 0.9 |" in m.value for m in at.tabs[1].markdown)


def test_seed_is_editable_and_keeps_the_preset(make_app):
    at = make_app().run()
    at.selectbox(key="preset").select("creative").run()
    assert at.number_input(key="seed").value == 0 and at.toggle(key="fixed_seed").value is True
    at.toggle(key="fixed_seed").set_value(False).run()  # off: a new sampled answer each time
    assert at.selectbox(key="preset").value == "creative"  # the seed is not part of the preset table
    _ask(at, "What is a pipeline?")
    records = [json.loads(line) for line in make_app.log.read_text().splitlines()]
    assert records[-1]["params"]["seed"] is None and records[-1]["preset"] == "creative"


def test_an_unexpected_error_is_answered_in_the_chat_and_the_session_goes_on(make_app, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("tokenizer exploded")

    at = make_app().run()
    working = ui_support.FakeAssistant.stream
    monkeypatch.setattr(ui_support.FakeAssistant, "stream", broken)
    at.chat_input[0].set_value("What is a pipeline?").run()
    assert not at.exception
    assert "Answering failed (RuntimeError: tokenizer exploded)" in at.error[0].value
    monkeypatch.setattr(ui_support.FakeAssistant, "stream", working)
    at.run()  # the question keeps its (error) answer; nothing reads as interrupted
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert not [i for i in at.info if "interrupted" in i.value]


def test_an_interrupted_answer_says_so(make_app):
    at = make_app().run()
    at.session_state["messages"] = [{"role": "user", "content": "What is a pipeline?"}]
    at.run()
    assert any("interrupted before it finished" in i.value for i in at.info)
