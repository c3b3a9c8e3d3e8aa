"""Command line: ask one question, search without generating, chat in the terminal, score retrieval.

    python -m assistant ask "How do I redirect stderr in bash?" [--preset technical] [--k 5] [--json]
    python -m assistant search "question" [--k 5] [--json] [--queries FILE]
    python -m assistant chat
    python -m assistant eval-retrieval [--questions data/dev_questions.jsonl]  # benchmarks.eval_retrieval

All take ``--index DIR`` and ``--model DIR``; ``--help`` lists the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assistant.records import page_label
from core.config import Settings, add_settings_args, settings_from_args, settings_in
from core.errors import BookwormError, ConfigError
from core.grounding.prompt import continue_text
from core.quiet import quiet_libraries

GEN_FLAGS = {  # flag -> (GenerationParams field, type); any of them makes the preset "custom"
    "--temperature": ("temperature", float),
    "--top-k": ("top_k", int),
    "--top-p": ("top_p", float),
    "--repetition-penalty": ("repetition_penalty", float),
    "--max-new-tokens": ("max_new_tokens", int),
    "--num-beams": ("num_beams", int),
    "--seed": ("seed", int),
    "--copy-boost": ("copy_boost", float),
}
RETRIEVAL_SETTINGS = settings_in("retrieval")  # search and eval-retrieval
ANSWER_SETTINGS = settings_in("retrieval", "model", "answering")  # ask and chat
K_ALIAS = {"passages": ("--k",)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m assistant", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer one question, then list its sources")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print the whole answer record as JSON")
    chat = sub.add_parser("chat", help="multi-turn chat in the terminal (empty line or Ctrl-D ends)")
    for p in (ask, chat):
        add_settings_args(p, *ANSWER_SETTINGS, aliases=K_ALIAS)
        for flag, (field, typ) in GEN_FLAGS.items():
            p.add_argument(flag, type=typ, default=None, help=_param_help(field))
        sample_help = _param_help("do_sample")
        p.add_argument("--sample", dest="do_sample", action=argparse.BooleanOptionalAction, help=sample_help)

    search = sub.add_parser("search", help="the retrieval pipeline only (hybrid + merging), no generation")
    search.add_argument("question", nargs="?")
    search.add_argument("--queries", help="one question per line (or JSONL with a 'question' field)")
    search.add_argument("--json", action="store_true", help="JSON hits {file, pages, score, text}")
    search.add_argument("--no-merge", action="store_true", help="raw chunks: do not merge neighbours")
    add_settings_args(search, *RETRIEVAL_SETTINGS, aliases=K_ALIAS)

    ev = sub.add_parser("eval-retrieval", help="hit@1/3/5 and MRR@5 of dense, BM25 and hybrid on a dev set")
    ev.add_argument("--questions", default="data/dev_questions.jsonl")
    ev.add_argument("--json", action="store_true")
    add_settings_args(ev, *RETRIEVAL_SETTINGS, aliases=K_ALIAS)
    return parser


def _param_help(field: str) -> str:
    from assistant.presets import PARAM_HELP

    return PARAM_HELP[field].replace("%", "%%")


def _params(args: argparse.Namespace, settings: Settings) -> tuple[str, Any]:
    from assistant.presets import CUSTOM, get_params

    overrides = {field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _) in GEN_FLAGS.items()}
    overrides["do_sample"] = args.do_sample
    overrides = {k: v for k, v in overrides.items() if v is not None}
    params = get_params(settings.preset, **overrides)
    return (CUSTOM if overrides else settings.preset), params


def _assistant(settings: Settings) -> Any:
    from assistant.pipeline import Assistant

    return Assistant.from_settings(settings)


def _print_sources(answer: Any) -> None:
    print("\nSources:")
    for s in answer.sources:
        print(f"  [{s.n}] {s.label}  (score {s.score:.4f})")
    t = answer.timings
    print(
        f"\n{answer.model_id}{' (fine-tuned)' if answer.fine_tuned else ''} · {answer.preset} · "
        f"retrieval {t.retrieval_ms:.0f} ms · evidence {t.evidence_ms:.0f} ms · "
        f"prompt {t.prompt_tokens} tok · first text {t.ttft_ms:.0f} ms · "
        + (f"model's first token {t.first_token_ms:.0f} ms · " if answer.lead else "")
        + f"{t.new_tokens} tok at {t.tokens_per_s:.1f} tok/s · total {t.total_ms / 1000:.1f} s",
        file=sys.stderr,
    )
    if answer.support is not None and not answer.abstained:
        s = answer.support
        print(
            f"support: {s.supported_fraction:.0%} of the answer's sentences found in the passages"
            + (f", {len(s.unsupported_code)} command(s) not in them" if s.unsupported_code else ""),
            file=sys.stderr,
        )
    for note in answer.notes:
        print(f"note: {note}", file=sys.stderr)


def _print_evidence(evidence: list, abstained: bool) -> None:
    """The books' own sentences, before the model says anything."""
    if not evidence:
        return
    print("Closest passages in your books:" if abstained else "From your books:")
    for e in evidence:
        print(f"  [{e.n}] {page_label(e.file, e.pages)}: \u201c{' '.join(e.text.split())}\u201d")
    print()


def _print_support(answer: Any) -> None:
    """Which sentences of the answer the passages do not back, and code found in none of them."""
    support = answer.support
    if support is None or answer.abstained:
        return
    unsupported = [s for s in support.sentences if not s.supported]
    if support.mostly_unsupported:
        print("\nMost of this answer is not found in your books: rely on the quotes above.")
    for s in unsupported:
        print(f"  not found in your books: {s.text}")
    for code in support.unsupported_code:
        print(f"  command not in your books: {code}")


def _answer(bot: Any, question: str, preset: str, params: Any, history: list, as_json: bool) -> Any:
    stream = bot.stream(question, params, history=history, preset=preset)
    if as_json:
        answer = stream.answer
        record = answer.as_json() | {"model_note": bot.model_info.note}
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return answer
    _print_evidence(stream.evidence, stream.abstained)
    if stream.evidence and not stream.abstained:
        print("Answer:")
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    answer = stream.answer
    if answer.model_text and answer.text != continue_text(answer.lead, answer.model_text):
        print(f"With citations checked against the passages:\n{answer.text}")
    _print_support(answer)
    _print_sources(answer)
    return answer


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    preset, params = _params(args, settings)
    bot = _assistant(settings)
    if bot.model_info.note and not args.json:
        print(f"note: {bot.model_info.note}", file=sys.stderr)
    _answer(bot, args.question, preset, params, [], args.json)
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    preset, params = _params(args, settings)
    bot = _assistant(settings)
    banner = f"bookworm · {bot.model_info.model_id} · preset {preset} · empty line or Ctrl-D to quit"
    print(banner, file=sys.stderr)
    if bot.model_info.note:
        print(f"note: {bot.model_info.note}", file=sys.stderr)
    history: list[tuple[str, str]] = []
    while True:
        try:
            question = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        print("bookworm> ", end="", flush=True)
        answer = _answer(bot, question, preset, params, history, as_json=False)
        history.append((question, answer.text))


def _read_queries(path: str) -> list[str]:
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as e:
        raise ConfigError(f"cannot read --queries file: {e}") from e
    questions = []
    for n, ln in enumerate(lines, start=1):
        if not ln.startswith("{"):
            questions.append(ln)
            continue
        try:
            questions.append(str(json.loads(ln)["question"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}:{n}: a JSON line needs a 'question' field ({e!r})") from e
    return questions


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.retrieve import Retriever

    if not args.question and not args.queries:
        raise ConfigError("give a question, or --queries FILE")
    queries = _read_queries(args.queries) if args.queries else [args.question]
    retriever = Retriever.load(settings.index_dir, settings.embedder, settings.retrieval)
    for q in queries:
        hits = retriever.search(q, settings.passages, merge=not args.no_merge)
        rows = [{k: v for k, v in h.as_json().items() if k != "chunk_id"} for h in hits]
        if args.json or args.queries:
            print(json.dumps(rows, ensure_ascii=False), flush=True)
        else:
            for h, row in zip(hits, rows, strict=True):
                pages = ", ".join(map(str, row["pages"]))
                section = f"  § {h.chunk.section}" if h.chunk.section else ""
                print(f"[{h.rank}] {row['file']} p. {pages}{section}  score {row['score']:.4f}")
                print(f"    {h.chunk.text[:300]}{'…' if len(h.chunk.text) > 300 else ''}\n")
    return 0


def eval_retrieval(argv: list[str]) -> int:
    """``eval-retrieval``: dev-set scoring is evaluation, which lives in ``benchmarks/`` (it imports
    ``assistant``, never the reverse), so this runs ``python -m benchmarks.eval_retrieval`` with the
    same flags, in a child process, from this checkout."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "eval_retrieval.py").is_file():
        raise ConfigError(
            f"eval-retrieval needs the benchmarks/ folder of a bookworm checkout (not in {root})"
        )
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "benchmarks.eval_retrieval", *argv]
    return subprocess.call(command, env={**os.environ, "PYTHONPATH": path})


COMMANDS = {"ask": cmd_ask, "chat": cmd_chat, "search": cmd_search}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    quiet_libraries()
    try:
        if args.command == "eval-retrieval":
            return eval_retrieval(argv[1:])  # argv[0] is the command: the flags follow it
        settings = settings_from_args(args)
        return COMMANDS[args.command](args, settings)
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
