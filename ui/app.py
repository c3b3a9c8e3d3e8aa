"""bookworm chat: ask computer-science questions of your own PDF books.

    streamlit run ui/app.py -- --index data/index --model models/finetuned

A thin edge over ``assistant``: it keeps the chat history, the sidebar's generation
settings and the 👍/👎 clicks; retrieval, prompting and generation live in ``assistant``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

if __package__ in (None, ""):  # `streamlit run ui/app.py` puts ui/ on the path, not the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant import monitor, pipeline, presets, status
from assistant.records import page_label
from core.config import Settings, add_settings_args, settings_from_args
from core.errors import BookwormError
from ui.eval_report import latest_report, split_report
from ui.highlight import DollarEscaper, answer_markdown, mark_evidence, mark_unsupported

PARAMS = ("temperature", "top_k", "top_p", "repetition_penalty", "copy_boost", "num_beams", "max_new_tokens")
# widget ranges; preset values are clamped into them
RANGES: dict[str, tuple[float, float, float]] = {
    "temperature": (0.05, 2.0, 0.05),
    "top_k": (0, 200, 1),
    "top_p": (0.05, 1.0, 0.01),
    "repetition_penalty": (1.0, 2.0, 0.05),
    "copy_boost": (0.0, 5.0, 0.25),
    "num_beams": (1, 8, 1),
    "max_new_tokens": (16, 1024, 8),
}
REPORTS_DIR = "reports"  # where `make eval` writes eval-<date>.md (relative to the working folder)
PASSAGE_HEIGHT = 180  # pixels of passage text shown per source before it scrolls
LONG_PASSAGE = 600  # characters above which a passage gets the scrolling box
SETTINGS_FLAGS = (
    "index_dir",
    "corpus_dir",
    "embedder",
    "model_dir",
    "base_model",
    "offline_fallback",
    "cache_dir",
    "log_file",
    "preset",
    "passages",
    "retrieval",
    "history_turns",
)


# --- settings -----------------------------------------------------------------------


def parse_settings(argv: list[str]) -> Settings:
    """The flags after ``--`` in ``streamlit run ui/app.py -- --index DIR``, as in the CLIs."""
    parser = argparse.ArgumentParser(prog="streamlit run ui/app.py --", add_help=False)
    add_settings_args(parser, *SETTINGS_FLAGS)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise BookwormError(f"unknown argument(s) after `--`: {' '.join(unknown)}\n\n{parser.format_usage()}")
    return settings_from_args(args)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def artefact_stamp(settings: Settings) -> tuple[float, ...]:
    """Changes when `make index` or `make train` rewrites their manifests: the app then reloads."""
    model = Path(settings.model_dir)
    return (
        _mtime(Path(settings.index_dir) / "manifest.json"),
        _mtime(model / "training_manifest.json"),
        _mtime(model / "config.json"),
    )


@st.cache_resource(show_spinner="Loading the model and the index (once)…", max_entries=1)
def load_assistant(settings: Settings, stamp: tuple[float, ...]) -> pipeline.Assistant:
    """One assistant shared by every session (it serialises generation itself).

    ``stamp`` is only part of the cache key: a rebuilt index or a new model replaces the old one.
    """
    return pipeline.Assistant.from_settings(settings, log_file=None)  # the app logs answers itself


# --- sidebar: presets and the six parameters ----------------------------------------


def _clamp(name: str, value: float) -> float:
    lo, hi, _ = RANGES[name]
    return min(max(value, lo), hi)


def _load_preset(name: str) -> None:
    """Copy a preset's values into the widgets' state (custom keeps what is there)."""
    if name not in presets.PRESETS:
        return
    p = presets.PRESETS[name]
    for key in PARAMS:
        st.session_state[key] = _clamp(key, getattr(p, key))
    st.session_state["do_sample"] = p.do_sample
    st.session_state["fixed_seed"] = p.seed is not None
    st.session_state["seed"] = p.seed if p.seed is not None else 0


def _preset_label(name: str) -> str:
    """Beam presets say in the list itself that they are slower and cannot stream."""
    p = presets.PRESETS.get(name)
    return f"{name} (slower, no streaming)" if p is not None and not p.streams else name


def _on_preset_change() -> None:
    _load_preset(st.session_state["preset"])


def _on_param_change() -> None:
    st.session_state["preset"] = presets.CUSTOM


def current_params() -> presets.GenerationParams:
    ss = st.session_state
    return presets.GenerationParams(
        temperature=float(ss["temperature"]),
        top_k=int(ss["top_k"]),
        top_p=float(ss["top_p"]),
        repetition_penalty=float(ss["repetition_penalty"]),
        copy_boost=float(ss["copy_boost"]),
        max_new_tokens=int(ss["max_new_tokens"]),
        num_beams=int(ss["num_beams"]),
        do_sample=bool(ss["do_sample"]),
        seed=int(ss["seed"]) if ss.get("fixed_seed", True) else None,
    )


def sidebar_settings(settings: Settings) -> tuple[str, presets.GenerationParams, int]:
    ss = st.session_state
    if "preset" not in ss:  # first run of this session
        default = presets.DEFAULT_PRESET
        ss["preset"] = settings.preset if settings.preset in presets.PRESET_NAMES else default
        _load_preset(ss["preset"] if ss["preset"] in presets.PRESETS else default)
        ss["passages"] = min(max(settings.passages, 1), 20)

    st.sidebar.selectbox(
        "Preset",
        presets.PRESET_NAMES,
        key="preset",
        on_change=_on_preset_change,
        format_func=_preset_label,
        help=" · ".join(f"{name}: {text}" for name, text in presets.PRESET_HELP.items()),
    )
    params = current_params()
    idle = params.inactive()
    st.sidebar.caption(
        ":material/stream: Tokens stream as they are made."
        if params.streams
        else f":material/hourglass_top: Beam search ({params.num_beams} beams): the answer appears at once."
    )
    with st.sidebar.expander("Generation parameters", expanded=True):
        st.toggle("Sample (do_sample)", key="do_sample", on_change=_on_param_change)
        st.caption(presets.PARAM_HELP["do_sample"])
        for name in PARAMS:
            lo, hi, step = RANGES[name]
            if name == "max_new_tokens":
                st.number_input(
                    name, min_value=lo, max_value=hi, step=step, key=name, on_change=_on_param_change
                )
            else:
                st.slider(name, min_value=lo, max_value=hi, step=step, key=name, on_change=_on_param_change)
            st.caption(presets.PARAM_HELP[name])
            if name in idle:
                st.caption(f":material/block: No effect now: {idle[name]}.")
        # not part of the preset table: changing it keeps the preset
        st.toggle("Fixed seed (same question, same answer)", key="fixed_seed")
        st.number_input("seed", min_value=0, step=1, key="seed", disabled=not ss["fixed_seed"])
        st.caption("Off: a new sampled answer each time.")
        if "seed" in idle:
            st.caption(f":material/block: No effect now: {idle['seed']}.")
    passages = st.sidebar.slider(
        "Passages", 1, 20, key="passages", help="Retrieved passages offered to the model (cited [1], [2], …)."
    )
    if st.sidebar.button("Clear chat", icon=":material/delete_sweep:", width="stretch"):
        ss["messages"] = []
    return ss["preset"], params, int(passages)


# --- status -------------------------------------------------------------------------


def _with_target(message: str, target: str | None) -> str:
    """The problem's message, ending with the command that fixes it (e.g. `make index`)."""
    if target and target not in message:
        message += f" Run `{target}`."
    return message


@st.cache_data(ttl=30, show_spinner=False)
def check_status(index_dir: str, model_dir: str, corpus_dir: str, embedder: str) -> list[status.Problem]:
    """Cheap file checks, but the staleness check hashes the PDFs: once per 30 s, not per click."""
    return status.check(index_dir, model_dir, corpus_dir=corpus_dir, embedder=embedder)


def _fmt_time(value: Any) -> str:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    return str(value or "?")[:16].replace("T", " ")


def sidebar_status(bot: pipeline.Assistant) -> None:
    info = bot.model_info
    idx = bot.index_info
    st.sidebar.markdown("**:material/smart_toy: Model**")
    kind = "fine-tuned" if info.fine_tuned else "base model, not fine-tuned"
    st.sidebar.caption(f"`{info.model_id}` ({kind}) · base `{info.base_model}`")
    if info.perplexity_base is not None and info.perplexity_finetuned is not None:
        st.sidebar.caption(
            f"Held-out perplexity {info.perplexity_base:.1f} → {info.perplexity_finetuned:.1f} "
            "(lower is better)"
        )
    if info.note:
        st.sidebar.caption(info.note)
    st.sidebar.markdown("**:material/menu_book: Index**")
    st.sidebar.caption(
        f"{idx.get('files', '?')} files · {idx.get('pages', '?')} pages · "
        f"{idx.get('chunks', '?')} chunks  \n"
        f"embedder `{idx.get('embedder', '?')}` · built {_fmt_time(idx.get('built_at'))}"
        + (f" in {idx['build_seconds']:.0f} s" if isinstance(idx.get("build_seconds"), (int, float)) else "")
    )
    st.sidebar.divider()


def _kv_table(rows: dict[str, Any]) -> str:
    """A two-column markdown table of the rows that have a value."""
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items() if v not in (None, "")]
    return "\n".join(lines)


def sources_view(sources: dict[str, Any]) -> None:
    """Held-out answer-from-sources scores, base -> fine-tuned (training manifest)."""
    held = sources.get("held_out") or {}
    before, after = held.get("base"), held.get("finetuned")
    if not before or not after:
        return
    st.markdown(
        f"**Answering from sources** ({after['examples']} held-out questions over pages it did not train on)"
    )
    cols = st.columns(4)
    for col, (label, key, fmt) in zip(
        cols,
        [
            ("Answer F1", "f1", "{:.3f}"),
            ("Cites the right source", "citation_accuracy", "{:.0%}"),
            ("Abstains exactly when it should", "abstention_accuracy", "{:.0%}"),
            ("Median answer (words)", "median_words", "{:.0f}"),
        ],
        strict=True,
    ):
        col.metric(label, fmt.format(after[key]), delta=f"base {fmt.format(before[key])}", delta_color="off")


def model_view(bot: pipeline.Assistant, model_dir: str, log_file: str) -> None:
    info = bot.model_info
    st.subheader("Which model answers")
    kind = "fine-tuned" if info.fine_tuned else "base model (not fine-tuned)"
    st.markdown(f"`{info.model_id}` — {kind}, base `{info.base_model}`")
    if info.note:
        st.caption(info.note)
    if info.perplexity_base is not None and info.perplexity_finetuned is not None:
        a, b = st.columns(2)
        a.metric("Held-out perplexity, base", f"{info.perplexity_base:.2f}")
        b.metric(
            "Held-out perplexity, fine-tuned",
            f"{info.perplexity_finetuned:.2f}",
            delta=f"{info.perplexity_finetuned - info.perplexity_base:+.2f}",
            delta_color="inverse",  # lower is better
        )
    sources_view((info.manifest or {}).get("answer_from_sources") or {})
    curve = Path(model_dir) / "loss_curve.png"
    if curve.exists():
        st.image(str(curve), caption="Training and held-out loss")
    else:
        st.info(f"No training loss curve in `{model_dir}` yet. Run `make train` to fine-tune.")
    manifest = info.manifest or {}
    if manifest:
        data = manifest.get("data") or {}
        st.markdown(
            _kv_table(
                {
                    "training / held-out chunks": f"{data.get('train_chunks')} / {data.get('eval_chunks')}",
                    "optimizer steps": manifest.get("steps"),
                    "tokens seen": manifest.get("tokens_seen"),
                    "wall time (s)": manifest.get("wall_seconds"),
                    "useful tokens/s": manifest.get("useful_tokens_per_s"),
                    "device, precision": f"{manifest.get('device', '?')}, {manifest.get('precision', '?')}",
                    "finished": manifest.get("finished_at"),
                }
            )
        )
        with st.expander("Training manifest (hyperparameters, versions)"):
            st.json(manifest)

    st.subheader("Evaluation")
    report = latest_report(REPORTS_DIR)
    if report is None:
        st.caption(
            f"No report in `{REPORTS_DIR}/` yet. `make eval` measures retrieval, answer F1 and latency."
        )
    else:
        with st.expander(f"`{report}`", expanded=True):
            for kind, value in split_report(report.read_text(encoding="utf-8")):
                if kind == "image":
                    chart = report.parent / value
                    if chart.exists():
                        st.image(str(chart))
                else:
                    st.markdown(answer_markdown(value))

    st.subheader("Answers so far")
    summary = monitor.summary(log_file)
    if not summary["answers"]:
        st.caption(f"No answers logged in `{log_file}` yet.")
        return
    share = summary["thumbs_up_share"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Answers", summary["answers"])
    c2.metric("👍 share", "–" if share is None else f"{share:.0%}", help=f"{summary['rated']} rated")
    total = summary["median_total_ms"]
    c3.metric("Median answer time", "–" if total is None else f"{total / 1000:.1f} s")
    support = summary.get("mean_support_fraction")
    c4.metric(
        "Found in your books",
        "–" if support is None else f"{support:.0%}",
        help="Mean share of the answers' sentences that the support check found in the passages; "
        f"{summary.get('abstained', 0)} question(s) were not covered by the books.",
    )


# --- chat ---------------------------------------------------------------------------


def _source_dict(s: Any) -> dict[str, Any]:
    d = dataclasses.asdict(s)
    d["label"] = s.label
    return d


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


def _evidence_dict(e: Any) -> dict[str, Any]:
    d = dataclasses.asdict(e)
    d["label"] = page_label(e.file, e.pages)
    return d


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
            st.markdown(
                f"**[{s['n']}] {s['label']}** · score {s['score']:.3f}"
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
    for note in msg.get("notes", []):  # e.g. a passage cut to fit the model's window
        st.caption(f":material/content_cut: {note}")
    if "answer_id" in msg:
        st.feedback(
            "thumbs",
            key=f"feedback_{msg['answer_id']}",
            on_change=_log_feedback,
            args=(log_file, msg["answer_id"]),
        )


def _meta(answer: pipeline.Answer, streamed: bool) -> str:
    t = answer.timings
    kind = "fine-tuned" if answer.fine_tuned else "base"
    how = "streamed" if streamed else f"beam search, {answer.params.get('num_beams')} beams"
    return (
        f"{answer.model_id} ({kind}) · {answer.preset} · {how} · {t.new_tokens} tokens in "
        f"{t.total_ms / 1000:.1f} s ({t.tokens_per_s:.1f} tok/s, first text after {t.ttft_ms / 1000:.1f} s)"
    )


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
    render_evidence([_evidence_dict(e) for e in stream.evidence], stream.abstained)
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
        render_answer(_message(question, answer, params.streams))
    return answer, params.streams


def _message(question: str, answer: pipeline.Answer, streamed: bool) -> dict[str, Any]:
    """What the chat history keeps of an answer (plain data: it is replayed on every rerun)."""
    return {
        "role": "assistant",
        "content": answer.text,
        "question": question,
        "answer_id": answer.answer_id,
        "sources": [_source_dict(s) for s in answer.sources],
        "evidence": [_evidence_dict(e) for e in answer.evidence],
        "support": answer.support.as_json() if answer.support else None,
        "abstained": answer.abstained,
        "meta": _meta(answer, streamed),
        "notes": list(answer.notes),
        "streamed": streamed,
    }


def main() -> None:
    st.set_page_config(page_title="bookworm", page_icon="📚")
    st.title(":material/menu_book: bookworm")
    st.caption("Ask computer-science questions of your own books. Every answer lists the passages behind it.")

    try:
        settings = parse_settings(sys.argv[1:])
    except BookwormError as e:
        st.error(str(e))
        st.stop()

    # expected situations (no index yet, no model yet) are messages, never stack traces
    problems = check_status(settings.index_dir, settings.model_dir, settings.corpus_dir, settings.embedder)
    blocking = [p for p in problems if p.level == "error"]
    for p in blocking:
        st.info(_with_target(p.message, p.make_target), icon=":material/info:")
    if blocking:
        st.stop()
    for p in problems:
        show = st.warning if p.level == "warning" else st.info
        icon = ":material/warning:" if p.level == "warning" else ":material/info:"
        show(_with_target(p.message, p.make_target), icon=icon)

    try:
        bot = load_assistant(settings, artefact_stamp(settings))
    except BookwormError as e:
        st.error(str(e))
        st.stop()
    sidebar_status(bot)
    preset, params, k = sidebar_settings(settings)

    chat_tab, model_tab = st.tabs([":material/chat: Chat", ":material/monitoring: Model"])
    with model_tab:
        model_view(bot, settings.model_dir, settings.log_file)

    messages = st.session_state.setdefault("messages", [])
    with chat_tab:
        if not messages:
            st.caption('Try: "How do I redirect stderr to a file in bash?"')
        for i, msg in enumerate(messages):
            render_message(msg, settings.log_file)
            if msg["role"] == "user" and (i + 1 == len(messages) or messages[i + 1]["role"] == "user"):
                # a click during generation reruns the page and stops the answer being written
                st.info("This answer was interrupted before it finished: ask again.", icon="⏸️")

    if question := st.chat_input("Ask about your books…"):
        messages.append({"role": "user", "content": question})
        with chat_tab:
            render_message(messages[-1], settings.log_file)
            with (answer_box := st.chat_message("assistant")):
                try:
                    answer, streamed = answer_question(bot, question, preset, params, k)
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
            msg = _message(question, answer, streamed)
            messages.append(msg)  # kept before logging: a failing log write must not lose the answer
            try:
                monitor.log_answer(settings.log_file, answer)
            except OSError as e:
                st.warning(f"Could not write the answer log {settings.log_file}: {e}", icon="⚠️")
            with answer_box:
                render_extras(msg, settings.log_file)


main()
