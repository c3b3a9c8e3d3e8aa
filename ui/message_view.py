"""One chat message: what the history keeps of an answer (plain data) and how it is drawn.

An answer is drawn in the order a reader needs it: the books' own sentences first, then the
answer with the sentences the books do not back marked, then its sources, how it was made,
and 👍/👎. The history keeps plain dicts because Streamlit replays it on every rerun.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from assistant import monitor, pipeline
from assistant.records import page_label
from ui.highlight import answer_markdown, escape_markdown, mark_evidence, mark_unsupported

PASSAGE_HEIGHT = 180  # pixels of passage text shown per source before it scrolls
LONG_PASSAGE = 600  # characters above which a passage gets the scrolling box


# --- what the history keeps ---------------------------------------------------------


def _source_dict(s: Any) -> dict[str, Any]:
    d = dataclasses.asdict(s)
    d["label"] = s.label
    return d


def evidence_dict(e: Any) -> dict[str, Any]:
    d = dataclasses.asdict(e)
    d["label"] = page_label(e.file, e.pages)
    return d


def _meta(answer: pipeline.Answer, streamed: bool) -> str:
    t = answer.timings
    kind = "fine-tuned" if answer.fine_tuned else "base"
    how = "streamed" if streamed else f"beam search, {answer.params.get('num_beams')} beams"
    head = f"{answer.model_id} ({kind}) · {answer.preset} · {how}"
    if answer.lead and t.new_tokens <= 1:  # the model ended its turn right after the opening quote
        return (
            f"{head} · opened on the best quote after {t.ttft_ms / 1000:.1f} s; the model added nothing "
            f"(done after {t.total_ms / 1000:.1f} s)"
        )
    first = f"first text after {t.ttft_ms / 1000:.1f} s"
    if answer.lead:  # the opening quote comes first; the model's own words later
        first += f", the model's after {t.first_token_ms / 1000:.1f} s"
    tokens = f"{t.new_tokens} token{'' if t.new_tokens == 1 else 's'}"
    return f"{head} · {tokens} in {t.total_ms / 1000:.1f} s ({t.tokens_per_s:.1f} tok/s, {first})"


def to_message(question: str, answer: pipeline.Answer, streamed: bool) -> dict[str, Any]:
    """What the chat history keeps of an answer (plain data: it is replayed on every rerun)."""
    return {
        "role": "assistant",
        "content": answer.text,
        "question": question,
        "answer_id": answer.answer_id,
        "sources": [_source_dict(s) for s in answer.sources],
        "evidence": [evidence_dict(e) for e in answer.evidence],
        "support": answer.support.as_json() if answer.support else None,
        "abstained": answer.abstained,
        "meta": _meta(answer, streamed),
        "notes": list(answer.notes),
        "streamed": streamed,
    }


# --- drawing a message --------------------------------------------------------------


def render_message(msg: dict[str, Any], log_file: str) -> None:
    with st.chat_message(msg["role"]):
        if msg["role"] == "user":
            st.markdown(answer_markdown(msg["content"]))
            return
        if "error" in msg:
            st.error(msg["error"], icon=":material/error:")
            return
        render_evidence(msg.get("evidence", []), msg.get("abstained", False))
        render_answer(msg)
        render_extras(msg, log_file)


def render_evidence(evidence: list[dict[str, Any]], abstained: bool = False) -> None:
    """The books' own sentences for the question, each with its file and page: shown first."""
    if not evidence:
        return
    title = "Closest passages in your books" if abstained else "From your books"
    with st.container(border=True):
        st.markdown(f"**:material/format_quote: {title}**")
        for e in evidence:
            quote = answer_markdown(" ".join(e["text"].split()))
            st.markdown(f"[{e['n']}] {quote}  \n:small[:material/description: {e['label']}]")


def render_answer(msg: dict[str, Any]) -> None:
    """The answer with each sentence the books do not back marked; a warning first when that is
    most of it, and any command found in none of the passages listed."""
    support = msg.get("support") or {}
    if msg.get("abstained"):
        st.info(msg["content"], icon=":material/search_off:")
        return
    unsupported = [x["text"] for x in support.get("sentences", []) if not x["supported"]]
    if support and support.get("supported_fraction", 1.0) < 0.5:
        st.warning("Most of this answer is not found in your books: rely on the quotes above.", icon="⚠️")
    st.markdown(mark_unsupported(msg["content"], unsupported) or "*(no answer text)*")
    if support.get("unsupported_code"):
        codes = " · ".join(f"`{c}`" for c in support["unsupported_code"])
        st.caption(f":material/terminal: Commands not found in your books: {codes}")


def render_sources(
    sources: list[dict[str, Any]],
    question: str,
    answer_text: str,
    evidence: list[dict[str, Any]] = (),  # type: ignore[assignment]
    expanded: bool = False,
) -> None:
    if not sources:
        return
    spans: dict[int, list[tuple[int, int]]] = {}
    for e in evidence:
        spans.setdefault(e["n"], []).append((e["start"], e["end"]))
    with st.expander(f"Sources ({len(sources)})", icon=":material/menu_book:", expanded=expanded):
        for s in sources:
            cited = f"[{s['n']}]" in answer_text
            section = f" · {escape_markdown(s['section'])}" if s.get("section") else ""  # older records: none
            st.markdown(
                f"**[{s['n']}] {s['label']}**{section} · score {s['score']:.3f}"
                + (" · :green-badge[cited]" if cited else "")
            )
            st.caption(f"`{s['file']}` · chunk {s['chunk_id']}")
            # long passages scroll in place, so five sources stay a short list
            height = PASSAGE_HEIGHT if len(s["text"]) > LONG_PASSAGE else "content"
            with st.container(height=height, border=False):
                st.markdown(mark_evidence(s["text"], spans.get(s["n"], []), question))


def _log_feedback(log_file: str, answer_id: str) -> None:
    value = st.session_state.get(f"feedback_{answer_id}")
    if value is not None:
        monitor.log_feedback(log_file, answer_id, 1 if value == 1 else -1)


def render_extras(msg: dict[str, Any], log_file: str) -> None:
    """What goes under an answer: its sources, how it was made, and 👍/👎."""
    render_sources(
        msg.get("sources", []),
        msg.get("question", ""),
        msg["content"],
        msg.get("evidence", []),
        expanded=msg.get("abstained", False),
    )
    if "meta" in msg:
        st.caption(msg["meta"])
    for note in msg.get("notes", []):  # e.g. a passage cut to fit the model's window, a follow-up's search
        st.caption(f":material/info: {note}")
    if "answer_id" in msg:
        st.feedback(
            "thumbs",
            key=f"feedback_{msg['answer_id']}",
            on_change=_log_feedback,
            args=(log_file, msg["answer_id"]),
        )
