"""`make eval`'s report: the answer setups' measurements (:class:`Setup`) and the Markdown report with
its charts, section by section."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.eval_heldout import held_out_section
from benchmarks.metrics import percentile


@dataclasses.dataclass
class Setup:
    name: str
    model_id: str
    retrieval: bool
    f1: list[float] = dataclasses.field(default_factory=list)  # the grounded answer (unsupported set aside)
    f1_model: list[float] = dataclasses.field(default_factory=list)  # the model's text alone
    support: list[float] = dataclasses.field(default_factory=list)  # per answered question
    unsupported_code: list[int] = dataclasses.field(default_factory=list)
    citation: list[float] = dataclasses.field(default_factory=list)  # per answer that cites
    abstained: list[bool] = dataclasses.field(default_factory=list)
    retrieval_ms: list[float] = dataclasses.field(default_factory=list)
    ttft_ms: list[float] = dataclasses.field(default_factory=list)  # first text (an opening quote counts)
    first_token_ms: list[float] = dataclasses.field(default_factory=list)  # the model's first text
    total_ms: list[float] = dataclasses.field(default_factory=list)
    prompt_tokens: list[int] = dataclasses.field(default_factory=list)
    examples: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def mean_f1(self) -> float:
        return _mean(self.f1)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _bar_chart(path: Path, title: str, groups: dict[str, dict[str, float]], ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    metrics = list(next(iter(groups.values())))
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(metrics))]
        ax.bar(xs, [groups[name][m] for m in metrics], width, label=name)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def write_report(
    out_dir: Path,
    questions_path: str,
    n_questions: int,
    retrieval: dict[str, dict[str, float]],
    ppl: dict[str, float],
    setups: list[Setup],
    info: dict[str, Any],
    abstention: dict[str, Any] | None = None,
    followups: dict[str, Any] | None = None,
    held_out: dict[str, Any] | None = None,
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.date.today().isoformat()
    lines = [
        f"# bookworm evaluation, {stamp}",
        "",
        f"Questions: `{questions_path}` ({n_questions}). Index: `{info['index_dir']}` "
        f"({info['index'].get('files')} files, {info['index'].get('chunks')} chunks, "
        f"embedder {info['index'].get('embedder')}). Model: `{info['model_id']}` "
        f"(fine-tuned: {info['fine_tuned']}; base: {info['base_model']}). Machine: {info['machine']}.",
        "",
        "## Retrieval (top 5; a hit = gold file and a gold page)",
        "",
        "| mode | hit@1 | hit@3 | hit@5 | MRR@5 |",
        "|---|---|---|---|---|",
    ]
    for mode, m in retrieval.items():
        lines.append(
            f"| {mode} | {_fmt(m['hit@1'])} | {_fmt(m['hit@3'])} | {_fmt(m['hit@5'])} | {_fmt(m['mrr@5'])} |"
        )
    best = max(retrieval, key=lambda m: (retrieval[m]["mrr@5"], retrieval[m]["hit@5"]))
    lines += [
        "",
        f"Best mode on this set by MRR@5: **{best}**.",
        "",
        f"![retrieval](eval-{stamp}-retrieval.png)",
        "",
    ]
    _bar_chart(out_dir / f"eval-{stamp}-retrieval.png", "Retrieval", retrieval, "score")
    if followups:
        lines += _followups_section(followups)

    lines += ["## Held-out perplexity (lower is better)", ""]
    if ppl and info.get("held_out_unseen"):
        lines += ["On books the model never trained on (--unseen-index): blocks spread over them.", ""]
    if ppl:
        lines += ["| model | perplexity |", "|---|---|"] + [f"| {k} | {_fmt(v, 2)} |" for k, v in ppl.items()]
        if "fine-tuned" in ppl and ppl["fine-tuned"] >= ppl["base"]:
            lines += ["", "**The fine-tuned model is worse than the base on held-out text.**"]
    else:
        note = info.get("held_out_note")
        lines += [
            f"Not measured: {note}." if note else "Not measured (no fine-tuned model, or --skip-perplexity)."
        ]
    lines.append("")
    lines += held_out_section(held_out, info.get("held_out_note", ""), bool(info.get("held_out_unseen")))

    if setups:
        lines += _answers_section(out_dir, stamp, setups)
    if abstention:
        lines += _abstention_section(abstention)
    path = out_dir / f"eval-{stamp}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _followups_section(f: dict[str, Any]) -> list[str]:
    lines = [
        f"### Follow-up questions ({f['n']}, `{f['file']}`, dense)",
        "",
        f"Each asked after the question before it; {f['detected']} of {f['n']} read as follow-ups and are "
        "searched together with it.",
        "",
        "| searched | hit@1 | hit@5 | MRR@5 |",
        "|---|---|---|---|",
    ]
    for name in ("searched alone", "with the question before"):
        m = f[name]
        lines.append(f"| {name} | {_fmt(m['hit@1'])} | {_fmt(m['hit@5'])} | {_fmt(m['mrr@5'])} |")
    return [*lines, ""]


def _p(xs: Sequence[float], q: float) -> str:
    return _fmt(percentile(xs, q), 0)


def _answers_section(out_dir: Path, stamp: str, setups: list[Setup]) -> list[str]:
    lines = [
        "## Answers",
        "",
        "F1 = token F1 against the reference answers, of the grounded answer (the answer's sentences "
        "that the passages back: its opening quote and the model's; the evidence quotes when none is) "
        "and of the whole text. TTFT = first answer text (the opening quote when the answer has one); "
        "the model's first token comes after it. "
        "Support = share of the model's sentences found in the passages; code = code spans found in no "
        "passage; citations = cited [n] from a gold page.",
        "",
        "| setup | model | F1 grounded | F1 whole text | support | unsupported code | citations | "
        "abstained | prompt tok p50 | TTFT ms p50 / p95 | model's first token ms p50 | total ms p50 / p95 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in setups:
        code = (
            f"{sum(s.unsupported_code)} in {sum(c > 0 for c in s.unsupported_code)} answers"
            if s.support
            else "–"
        )
        lines.append(
            f"| {s.name} | {s.model_id} | {_fmt(s.mean_f1)} | {_fmt(_mean(s.f1_model))} | "
            f"{_fmt(_mean(s.support))} | {code} | {_fmt(_mean(s.citation))} ({len(s.citation)}) | "
            f"{sum(s.abstained)}/{len(s.abstained)} | "
            f"{_p(s.prompt_tokens, 50)} | {_p(s.ttft_ms, 50)} / {_p(s.ttft_ms, 95)} | "
            f"{_p([x for x in s.first_token_ms if x == x], 50)} | "
            f"{_p(s.total_ms, 50)} / {_p(s.total_ms, 95)} |"
        )
    by_name = {s.name: s for s in setups}
    baseline = next((s for s in setups if s.name.startswith("landed")), None)
    if baseline:
        lines.append("")
        for s in setups:
            if s is not baseline and s.f1:
                lines.append(
                    f"- {s.name}: F1 {s.mean_f1 / baseline.mean_f1:.2f}x the landed baseline, total time p50 "
                    f"{percentile(s.total_ms, 50) / percentile(baseline.total_ms, 50):.2f}x"
                )
    ft, base_rag = by_name.get("fine-tuned + RAG (default)"), by_name.get("base + RAG (default)")
    if ft and base_rag and ft.mean_f1 < base_rag.mean_f1:
        lines += [
            "",
            f"**The fine-tuned model answers worse than the base model with retrieval "
            f"(F1 {ft.mean_f1:.3f} vs {base_rag.mean_f1:.3f}).**",
        ]
    lines += ["", f"![answers](eval-{stamp}-answers.png)", "", "### Example answers", ""]
    _bar_chart(
        out_dir / f"eval-{stamp}-answers.png",
        "Answers",
        {s.name: {"F1": s.mean_f1, "support": _mean(s.support) if s.support else 0.0} for s in setups},
        "score",
    )
    for s in setups:
        for question, text in s.examples[:1]:
            lines += [f"- *{s.name}* — {question}", f"  > {text[:500].replace(chr(10), ' ')}", ""]
    return lines


def _abstention_section(a: dict[str, Any]) -> list[str]:
    return [
        "## Abstention (best evidence score per question)",
        "",
        f"Answerable questions ({len(a['answerable'])}): score p5 {_fmt(percentile(a['answerable'], 5))}, "
        f"p50 {_fmt(percentile(a['answerable'], 50))}. "
        f"Unanswerable ({len(a['unanswerable'])}, `{a['file']}`): "
        f"p50 {_fmt(percentile(a['unanswerable'], 50))}, p95 {_fmt(percentile(a['unanswerable'], 95))}.",
        "",
        f"Best separating threshold: {_fmt(a['best'][0])} (balanced accuracy {_fmt(a['best'][1])}). "
        f"At the configured `abstain_below` = {a['threshold']}: {a['refused_answerable']} of "
        f"{len(a['answerable'])} answerable and {a['refused_unanswerable']} of {len(a['unanswerable'])} "
        "unanswerable questions are refused.",
        "",
    ]
