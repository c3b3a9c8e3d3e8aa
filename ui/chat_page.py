"""The Chat tab: the conversation so far, then a new question answered while the page watches.

The evidence is shown as soon as retrieval is done; the answer streams in after it (or appears
at once for beam presets), then is stored in the history and logged.
"""

from __future__ import annotations

import traceback
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from assistant import monitor, pipeline, presets
from core.errors import BookwormError
from ui.highlight import DollarEscaper
from ui.message_view import (
    evidence_dict,
    render_answer,
    render_evidence,
    render_extras,
    render_message,
    to_message,
)


def chat_page(
    tab: DeltaGenerator,
    bot: pipeline.Assistant,
    log_file: str,
    preset: str,
    params: presets.GenerationParams,
    k: int,
) -> None:
    """The history inside ``tab``; the question box sits at the page's foot, its answer in ``tab``."""
    messages = st.session_state.setdefault("messages", [])
    with tab:
        show_history(messages, log_file)
    if question := st.chat_input("Ask about your books…"):
        messages.append({"role": "user", "content": question})
        with tab:
            answer_in_chat(bot, question, messages, log_file, preset, params, k)


def show_history(messages: list[dict[str, Any]], log_file: str) -> None:
    if not messages:
        st.caption('Try: "How do I redirect stderr to a file in bash?"')
    for i, msg in enumerate(messages):
        render_message(msg, log_file)
        if msg["role"] == "user" and (i + 1 == len(messages) or messages[i + 1]["role"] == "user"):
            # a click during generation reruns the page and stops the answer being written
            st.info("This answer was interrupted before it finished: ask again.", icon="⏸️")


def answer_in_chat(
    bot: pipeline.Assistant,
    question: str,
    messages: list[dict[str, Any]],
    log_file: str,
    preset: str,
    params: presets.GenerationParams,
    k: int,
) -> None:
    """Draw the question and its answer, keep the answer in the history, log it, then its extras."""
    render_message(messages[-1], log_file)
    with (answer_box := st.chat_message("assistant")):
        answer, streamed = _answer_or_stop(bot, question, messages, preset, params, k)
    msg = to_message(question, answer, streamed)
    messages.append(msg)  # kept before logging: a failing log write must not lose the answer
    try:
        monitor.log_answer(log_file, answer)
    except OSError as e:
        st.warning(f"Could not write the answer log {log_file}: {e}", icon="⚠️")
    with answer_box:
        render_extras(msg, log_file)


def _answer_or_stop(
    bot: pipeline.Assistant,
    question: str,
    messages: list[dict[str, Any]],
    preset: str,
    params: presets.GenerationParams,
    k: int,
) -> tuple[pipeline.Answer, bool]:
    """:func:`answer_question`; a failure becomes an error message in the chat and stops this run."""
    try:
        return answer_question(bot, question, preset, params, k)
    except BookwormError as e:  # e.g. the question does not fit the model's window
        messages.append({"role": "assistant", "content": "", "error": str(e)})
        st.error(str(e), icon=":material/error:")
        st.stop()
    except Exception as e:  # a bug: say so in the chat, keep the session usable
        traceback.print_exc()  # the full story goes to the server's log
        error = f"Answering failed ({type(e).__name__}: {e}): ask again."
        messages.append({"role": "assistant", "content": "", "error": error})
        st.error(error, icon=":material/error:")
        st.stop()


def _history(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Earlier (question, answer) pairs; the assistant keeps what its budget allows."""
    return [(m["question"], m["content"]) for m in messages if m["role"] == "assistant" and "question" in m]


def answer_question(
    bot: pipeline.Assistant, question: str, preset: str, params: presets.GenerationParams, k: int
) -> tuple[pipeline.Answer, bool]:
    """Show the evidence, then the answer (streamed when the params allow it) with its unsupported
    sentences marked; returns the answer and whether it streamed."""
    history = _history(st.session_state["messages"])
    with st.spinner("Searching your books…"):  # retrieval and evidence: well under a second
        stream = bot.stream(question, params, history=history, k=k, preset=preset)
    render_evidence([evidence_dict(e) for e in stream.evidence], stream.abstained)
    box = st.empty()
    if params.streams or stream.abstained:
        escaper = DollarEscaper()
        box.write_stream(escaper.feed(piece) for piece in stream)
    else:
        with st.spinner(f"Thinking (beam search, {params.num_beams} beams: slower, shown when done)…"):
            for _ in stream:
                pass
    answer = stream.answer
    with box.container():
        render_answer(to_message(question, answer, params.streams))
    return answer, params.streams
