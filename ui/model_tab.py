"""The Model tab: which model answers and how its training went, the latest `make eval` report,
and the answers logged so far."""

from __future__ import annotations

from typing import Any

import streamlit as st

from assistant import monitor, pipeline
from assistant.records import ModelInfo
from core.layout import ModelFiles
from ui.eval_report import latest_report, split_report
from ui.highlight import answer_markdown

REPORTS_DIR = "reports"  # where `make eval` writes eval-<date>.md (relative to the working folder)


def model_view(bot: pipeline.Assistant, model_dir: str, log_file: str) -> None:
    info = bot.model_info
    st.subheader("Which model answers")
    _model_scores(info)
    _training_record(info.manifest or {}, model_dir)
    st.subheader("Evaluation")
    _eval_report()
    st.subheader("Answers so far")
    _answer_log(log_file)


def _model_scores(info: ModelInfo) -> None:
    """The model's name and kind, its held-out perplexity and answer-from-sources scores."""
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
    unanswerable = after.get("unanswerable")
    if unanswerable:  # the accuracy alone counts the answerable ones too: never abstaining scores their share
        refused = round(after.get("abstained_when_unanswerable", 0) * unanswerable)
        st.caption(
            f"Abstained on {refused} of the {unanswerable} held-out questions whose source was left out."
        )


def _kv_table(rows: dict[str, Any]) -> str:
    """A two-column markdown table of the rows that have a value."""
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items() if v not in (None, "")]
    return "\n".join(lines)


def _training_record(manifest: dict[str, Any], model_dir: str) -> None:
    """The loss curve, then the run's data, steps and speed from its training manifest."""
    curve = ModelFiles(model_dir).loss_curve
    if curve.exists():
        st.image(str(curve), caption="Training and held-out loss")
    else:
        st.info(f"No training loss curve in `{model_dir}` yet. Run `make train` to fine-tune.")
    if not manifest:
        return
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


def _eval_report() -> None:
    """The newest `make eval` report, its charts shown as images."""
    report = latest_report(REPORTS_DIR)
    if report is None:
        st.caption(
            f"No report in `{REPORTS_DIR}/` yet. `make eval` measures retrieval, answer F1 and latency."
        )
        return
    with st.expander(f"`{report}`", expanded=True):
        for kind, value in split_report(report.read_text(encoding="utf-8")):
            if kind == "image":
                chart = report.parent / value
                if chart.exists():
                    st.image(str(chart))
            else:
                st.markdown(answer_markdown(value))


def _answer_log(log_file: str) -> None:
    """Counts from the answer log: answers, 👍 share, median time, share found in the books."""
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
