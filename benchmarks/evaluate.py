"""`make eval`: how good is bookworm on a question set? Writes reports/eval-<date>.md with charts.

- retrieval: hit@1/3/5 and MRR@5 for dense, BM25 and hybrid (gold = file + any gold page);
- held-out perplexity of the base and the fine-tuned model (the training split's held-out chunks);
- answer token-F1 against the reference answers with the technical preset, for the base model
  without retrieval, the base model with retrieval, and the fine-tuned model with retrieval;
- latency p50/p95 of retrieval, time to first token and total, per setup.

Questions: JSONL with ``question``, ``file``, ``pages`` and ``answer`` (other fields ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.retrieve import DevQuestion
from benchmarks.metrics import percentile, token_f1
from core.config import add_settings_args, settings_from_args
from core.errors import BookwormError


@dataclasses.dataclass
class Setup:
    name: str
    model_id: str
    retrieval: bool
    f1: list[float] = dataclasses.field(default_factory=list)
    retrieval_ms: list[float] = dataclasses.field(default_factory=list)
    ttft_ms: list[float] = dataclasses.field(default_factory=list)
    total_ms: list[float] = dataclasses.field(default_factory=list)
    examples: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def mean_f1(self) -> float:
        return sum(self.f1) / len(self.f1) if self.f1 else float("nan")


def eval_retrieval(
    retriever: Any, questions: Sequence[DevQuestion], k: int = 5
) -> dict[str, dict[str, float]]:
    from assistant.retrieve import MODES, evaluate_retrieval

    out = {}
    for mode in MODES:
        metrics = evaluate_retrieval(retriever, questions, mode=mode, k=k)
        out[mode] = {key: v for key, v in metrics.items() if key != "per_question"}
    return out


def eval_perplexity(index_dir: str, model_info: Any, base_source: Any, max_blocks: int) -> dict[str, float]:
    """Base and fine-tuned perplexity on the training run's held-out chunks, scored here afresh."""
    import torch

    from core.sources import load_lm
    from indexing.records import CHUNKS_FILE, read_chunks
    from indexing.store import chunks_sha256
    from training.data import split_chunks
    from training.evaluate import perplexity

    manifest = model_info.manifest or {}
    hp = manifest.get("hyperparameters", {})
    eval_fraction = float(hp.get("eval_fraction", 0.05))
    # the run's own block size (its hyper-parameter capped at the model's window)
    block_size = int((manifest.get("perplexity") or {}).get("block_size") or hp.get("block_size", 512))
    trained_on = (manifest.get("data") or {}).get("chunks_sha256")
    if model_info.fine_tuned and trained_on and trained_on != chunks_sha256(index_dir):
        raise BookwormError(
            f"{index_dir} changed since {model_info.model_id} was trained, so its held-out split may hold "
            "training text: run `make train` (or pass --skip-perplexity)"
        )
    held = split_chunks(read_chunks(Path(index_dir) / CHUNKS_FILE), eval_fraction).eval
    texts = [c.text for c in held]
    out = {}
    paths = [("base", base_source.path)]
    if model_info.fine_tuned:
        paths.append(("fine-tuned", model_info.path))
    for name, path in paths:
        model, tok = load_lm(dataclasses.replace(base_source, path=path, gguf_file=None))
        with torch.inference_mode():
            out[name] = perplexity(model, tok, texts, block_size, max_blocks=max_blocks)
        del model
    return out


def run_answers(assistant: Any, setup: Setup, questions: Sequence[DevQuestion], params: Any) -> Setup:
    from tqdm import tqdm

    for q in tqdm(questions, desc=f"answers: {setup.name}", unit="q"):
        answer = assistant.ask(q.question, params, k=None if setup.retrieval else 0, preset="technical")
        setup.f1.append(token_f1(answer.text, q.answer))
        setup.retrieval_ms.append(answer.timings.retrieval_ms)
        setup.ttft_ms.append(answer.timings.ttft_ms)
        setup.total_ms.append(answer.timings.total_ms)
        if len(setup.examples) < 3:
            setup.examples.append((q.question, answer.text.strip()))
    return setup


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

    lines += ["## Held-out perplexity (lower is better)", ""]
    if ppl:
        lines += ["| model | perplexity |", "|---|---|"] + [f"| {k} | {_fmt(v, 2)} |" for k, v in ppl.items()]
        if "fine-tuned" in ppl and ppl["fine-tuned"] >= ppl["base"]:
            lines += ["", "**The fine-tuned model is worse than the base on held-out text.**"]
    else:
        lines += ["Not measured (no fine-tuned model, or --skip-perplexity)."]
    lines.append("")

    if setups:
        lines += [
            "## Answers (technical preset; token F1 against the reference answers)",
            "",
            "| setup | model | F1 | retrieval ms p50 / p95 | TTFT ms p50 / p95 | total ms p50 / p95 |",
            "|---|---|---|---|---|---|",
        ]
        for s in setups:
            lines.append(
                f"| {s.name} | {s.model_id} | {_fmt(s.mean_f1)} | "
                f"{_fmt(percentile(s.retrieval_ms, 50), 0)} / {_fmt(percentile(s.retrieval_ms, 95), 0)} | "
                f"{_fmt(percentile(s.ttft_ms, 50), 0)} / {_fmt(percentile(s.ttft_ms, 95), 0)} | "
                f"{_fmt(percentile(s.total_ms, 50), 0)} / {_fmt(percentile(s.total_ms, 95), 0)} |"
            )
        by_name = {s.name: s for s in setups}
        ft, base_rag = by_name.get("fine-tuned + retrieval"), by_name.get("base + retrieval")
        if ft and base_rag and ft.mean_f1 < base_rag.mean_f1:
            lines += [
                "",
                f"**The fine-tuned model answers worse than the base model with retrieval "
                f"(F1 {ft.mean_f1:.3f} vs {base_rag.mean_f1:.3f}).**",
            ]
        lines += ["", f"![answers](eval-{stamp}-answers.png)", "", "### Example answers", ""]
        _bar_chart(
            out_dir / f"eval-{stamp}-answers.png",
            "Answer token F1",
            {s.name: {"F1": s.mean_f1} for s in setups},
            "F1",
        )
        for s in setups:
            for question, text in s.examples[:1]:
                lines += [f"- *{s.name}* — {question}", f"  > {text[:400].replace(chr(10), ' ')}", ""]
    path = out_dir / f"eval-{stamp}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_args(
        parser, "index_dir", "model_dir", "base_model", "offline_fallback", "cache_dir", "eval_blocks"
    )
    parser.add_argument("--questions", default="data/dev_questions.jsonl", help="JSONL question set")
    parser.add_argument("--limit", type=int, default=0, help="answer only the first N questions (0 = all)")
    parser.add_argument("--skip-answers", action="store_true", help="retrieval and perplexity only")
    parser.add_argument("--skip-perplexity", action="store_true")
    parser.add_argument("--out", default="reports", help="report folder")
    args = parser.parse_args(argv)
    try:
        return _run(args, settings_from_args(args))
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Any) -> int:
    import platform

    from assistant.chat import Assistant
    from assistant.presets import PRESETS
    from assistant.retrieve import Retriever, read_dev_questions
    from core.sources import resolve_lm

    questions = read_dev_questions(args.questions)
    t0 = time.time()
    retriever = Retriever.load(settings.index_dir)
    print(f"Retrieval over {len(questions)} questions...", flush=True)
    retrieval = eval_retrieval(retriever, questions)

    ft = Assistant.from_settings(settings, retriever=retriever, load_model=False, log_file=None)
    info = ft.model_info
    base_name = (info.manifest or {}).get("base_model", {}).get("used") if info.fine_tuned else None
    base_source = resolve_lm(
        base_name or settings.base_model,
        offline_fallback=settings.offline_fallback,
        cache_dir=settings.cache_dir or None,
    )
    ppl: dict[str, float] = {}
    if not args.skip_perplexity:
        print("Held-out perplexity...", flush=True)
        ppl = eval_perplexity(settings.index_dir, info, base_source, settings.eval_blocks)

    setups: list[Setup] = []
    if not args.skip_answers:
        asked = questions[: args.limit] if args.limit else questions
        params = PRESETS["technical"]
        base = Assistant.from_settings(
            settings, model_dir=None, base_model=base_source.name, retriever=retriever, log_file=None
        )
        setups.append(
            run_answers(base, Setup("base, no retrieval", base.model_info.model_id, False), asked, params)
        )
        setups.append(
            run_answers(base, Setup("base + retrieval", base.model_info.model_id, True), asked, params)
        )
        del base
        if info.fine_tuned:
            ft.load_model()
            setups.append(
                run_answers(ft, Setup("fine-tuned + retrieval", info.model_id, True), asked, params)
            )
        else:
            print("No fine-tuned model: run `make train` to compare it.", flush=True)

    report = write_report(
        Path(args.out),
        args.questions,
        len(questions),
        retrieval,
        ppl,
        setups,
        {
            "index_dir": settings.index_dir,
            "index": retriever.index_info,
            "model_id": info.model_id,
            "fine_tuned": info.fine_tuned,
            "base_model": base_source.description,
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
        },
    )
    print(report.read_text(encoding="utf-8"))
    print(f"Report: {report} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
