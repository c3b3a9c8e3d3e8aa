"""The one settings object. Only entry points (CLIs, the app, benchmarks) read it;
library functions take plain arguments.

Values come, lowest priority first, from the defaults below, a TOML file
(``bookworm.toml`` in the working folder, or ``--config FILE``), then command-line flags.
An unknown key, a value of the wrong type or one out of range is an error, never silently ignored.

A new setting is declared once, in :class:`Settings`, with ``setting(section, default, help)``:
every command that takes its section offers its flag (:func:`settings_in`), a training one is
a hyperparameter too (``training.hyperparameters``). Its allowed values go in ``CHOICES`` or
``RANGES``, and its row in the README's configuration table (``tests/test_docs.py`` checks it).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.layout import DEFAULT_INDEX_DIR, DEFAULT_MODEL_DIR

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG_FILE = "bookworm.toml"


# The sections a setting may belong to. Each field names its own section (where it is declared and
# documented) and, in ``also``, the other sections whose commands take it too: `python -m indexing build`
# takes settings_in("indexing"), which includes corpus_dir and index_dir, declared under "paths".
SECTIONS = ("paths", "indexing", "model", "training", "retrieval", "answering", "app")


def setting(section: str, default: Any, help: str, also: tuple[str, ...] = ()) -> Any:
    """A :class:`Settings` field: its default, the help its flag shows (and the README's reference),
    its section, and the other sections whose commands take it too."""
    return dataclasses.field(default=default, metadata={"help": help, "section": section, "also": also})


@dataclasses.dataclass(frozen=True)
class Settings:
    # --- where things live -------------------------------------------------------
    corpus_dir: str = setting(
        "paths", "data/corpus", "PDFs to index, searched recursively", also=("indexing",)
    )
    index_dir: str = setting(
        "paths",
        str(DEFAULT_INDEX_DIR),
        "FAISS store + chunks.jsonl + manifest.json (written by indexing)",
        also=("indexing", "training", "retrieval"),
    )
    model_dir: str = setting(
        "paths",
        str(DEFAULT_MODEL_DIR),
        "fine-tuned model (written by training, read by the assistant)",
        also=("training", "answering"),
    )
    log_file: str = setting(
        "paths",
        "logs/answers.jsonl",
        "monitoring log: one JSON line per answer and per 👍/👎",
        also=("answering",),
    )
    cache_dir: str = setting(
        "paths", "", 'converted offline models; "" = $BOOKWORM_CACHE or ~/.cache/bookworm', also=("model",)
    )

    # --- indexing ----------------------------------------------------------------
    # pypdfium2: with its line-end hyphens joined it indexes the books in 53.6 s vs pypdf's 70-80 s on 2
    # cores, keeps the words pypdf glues together on real books (5.4 runs of 20+ letters per 1,000 words vs
    # 0.03), and retrieves as well (dense MRR@5 dev 0.721 vs 0.708, books 0.757 vs 0.785, hit@5 equal;
    # BM25 and hybrid higher). Fine-tunes on its text once copied the prompt's instructions; they are
    # trained without instructions now (TRAINED_INSTRUCTIONS). pypdf stays for PDFs pdfium reads badly
    extractor: str = setting(
        "indexing", "pypdfium2", '"pypdfium2" (default, 7x faster extraction) or "pypdf"; see the README'
    )
    workers: int = setting("indexing", 2, "processes extracting PDFs in parallel; 1 = in-process")
    embedder: str = setting(
        "indexing",
        "all-MiniLM-L6-v2",
        "sentence-transformers name or folder; the default ships offline",
        also=("retrieval",),  # queries are embedded with the index's own embedder
    )
    chunk_tokens: int = setting(
        "indexing", 200, "word-pieces per chunk; all-MiniLM-L6-v2 truncates at 256, never exceed it"
    )
    chunk_overlap: int = setting(
        "indexing", 32, "word-pieces repeated between neighbouring chunks, so no fact is cut in two"
    )
    # auto: torch on a CUDA GPU, else OpenVINO int8 (static int8 through NNCF; on 2 cores without bf16
    # 63-72 chunks/s vs torch fp32's 41-43, builds 0.61-0.70x torch's, same dev and books retrieval,
    # cosine to torch >= 0.99 on body chunks).
    # torch under bf16 autocast (CPUs with native bf16) ran 50; onnx-int8 (onnxruntime, int8 weights
    # only) 41-49. The manifest records the backend that ran; queries use the same one.
    embed_backend: str = setting(
        "indexing",
        "auto",
        '"auto", "torch", "openvino-int8" (int8 weights and activations), "onnx" (onnxruntime fp32) '
        'or "onnx-int8" (int8 weights)',
    )
    embed_batch_size: int = setting(
        "indexing",
        8,
        "chunks per encode() batch; on a CPU small batches are faster (less padding; 8 ran 1.2x 64's "
        "chunks/s on 2 cores), on a GPU raise it",
    )
    approx_threshold: int = setting(
        "indexing", 50_000, "chunks above which HNSW replaces the exact flat index"
    )

    # --- the model: what training starts from, and what answers when there is no fine-tuned one ---
    base_model: str = setting(
        "model", "gpt2", 'hub id, local folder, .gguf file, or "smollm2-135m" (packaged, offline)'
    )
    offline_fallback: bool = setting(
        "model", True, "use the packaged smollm2-135m when base_model cannot be loaded"
    )

    # --- training: the fields of training.hyperparameters.Hyperparameters --------
    epochs: float = setting("training", 3.0, "passes over the training chunks (the guide's 3)")
    batch_size: int = setting("training", 2, "blocks per device per step (the guide's 2)")
    grad_accum: int = setting("training", 1, "steps whose gradients add up before one optimizer update")
    learning_rate: float = setting(
        "training", 5e-5, "the guide's 5e-5: small, so the model keeps what it knew"
    )
    warmup_ratio: float = setting("training", 0.05, "share of steps with a linearly rising learning rate")
    lr_scheduler: str = setting(
        "training", "cosine", "learning-rate schedule after warm-up (any transformers name)"
    )
    weight_decay: float = setting("training", 0.01, "AdamW decoupled weight decay")
    block_size: int = setting(
        "training", 512, "tokens per packed block, capped at the model's context window"
    )
    eval_fraction: float = setting(
        "training", 0.05, "share of each file's chunks held out for perplexity (evenly spaced)"
    )
    eval_blocks: int = setting(
        "training", 32, "held-out blocks scored for perplexity (spread evenly); 0 = all. Caps eval time"
    )
    max_steps: int = setting("training", -1, "stop after this many optimizer steps; -1 = run all epochs")
    time_budget: float = setting("training", 0.0, "minutes; stop cleanly (and save) when spent; 0 = no limit")
    gradient_checkpointing: bool = setting(
        "training", False, "trade ~30% speed for much less activation memory"
    )
    precision: str = setting(
        "training",
        "auto",
        '"auto": bf16 on CUDA (fp16 if unsupported) and on bf16-capable CPUs, else fp32',
    )
    seed: int = setting("training", 42, "makes the split, the shuffling and the initialisation repeatable")
    # Answer-from-sources (RAFT) examples mixed into the raw text: a question made from the books'
    # outline or a definition, its source among retrieved distractors, the target quoting it with [n].
    sources_share: float = setting(
        "training", 0.5, "share of training items that are answer-from-sources examples (0: raw text)"
    )
    sources_examples: int = setting(
        "training", 160, "answer-from-sources examples built (~0.2 s each); 10 min on 2 cores use ~60"
    )
    lora_rank: int = setting(
        "training", 0, "0 = full fine-tuning (fits 124-135M models); r > 0 = rank-r LoRA adapters (peft)"
    )
    sources_eval: int = setting(
        "training", 12, "held-out answer-from-sources examples answered before and after (~5 s each, CPU)"
    )
    # tokens: a 512-token block outweighs a ~30-token answer ~15:1. Weighing items the same gave the answers
    # more of the gradient but, in 10 minutes, worse held-out answers (F1 0.356 -> 0.265 on 28 examples,
    # 17% abstentions on answerable ones; README, fine-tuning)
    loss_average: str = setting(
        "training",
        "tokens",
        '"tokens" (mean over a batch\'s labelled tokens) or "items" (per item)',
    )

    # --- retrieval ---------------------------------------------------------------
    passages: int = setting("retrieval", 5, "retrieved passages offered to the model")
    # dense: hybrid finds more gold pages (dev hit@5 0.889 -> 0.926; books MRR@5 0.729 -> 0.823) but ranks
    # them no higher on the dev set (MRR@5 0.730 -> 0.727), and the lead quote, which is the answer, got
    # worse: F1 0.218 -> 0.188 on the 54 dev questions, 0.281 -> 0.253 on the 24 over unseen books
    retrieval: str = setting(
        "retrieval", "dense", '"dense", "bm25" or "hybrid" (reciprocal-rank fusion of both)'
    )

    # --- answering ---------------------------------------------------------------
    # precise: greedy decoding streams from the first token and, with the evidence prompt, answered the dev
    # set as well as the 4-beam technical preset at a fraction of its time (README, evaluation)
    preset: str = setting(
        "answering", "precise", "generation preset: precise, technical, balanced, creative or custom"
    )
    # 0: a 135M model shown its earlier answers copies them. Asked the first 20 dev questions as one
    # chat with 2 turns kept, the answer-from-sources model answered the last 7 (flex, SBCL) with its
    # on.exit answer from R, and in the browser "How do I write my own function in R?" got the
    # pipefail answer before it; with 0, every answer came from its own question's sources. Retrieval
    # never read the history, so a follow-up lost nothing it had.
    history_turns: int = setting(
        "answering", 0, "earlier question/answer pairs kept in the prompt, budget allowing (0: none)"
    )
    context: str = setting(
        "answering",
        "evidence",
        '"evidence" (the best sentences, ~400 tokens) or "passages" (whole passages)',
    )
    # auto: measured per model on the dev set (README): the answer-from-sources model stops after the
    # quote (F1 0.185 -> 0.212, 2.4 -> 1.0 s); the base model goes on in its own words (0.200 -> 0.179)
    lead: str = setting(
        "answering",
        "auto",
        '"quote": the answer opens with the best evidence sentence, cited, and the model continues it; '
        '"none": the model writes the whole answer; "auto": quote for a model trained to answer from sources',
    )
    evidence_sentences: int = setting(
        "answering", 3, "sentences picked from the passages as evidence (2-4 read best)"
    )
    # 0.45: on the dev set no answerable question (54) scores under it and 15 of 18 unanswerable ones do;
    # the best-separating 0.49 would refuse 2 answerable ones (`make eval` prints both)
    abstain_below: float = setting(
        "answering", 0.45, "best evidence score under which the answer says the books do not cover it"
    )
    # auto: on a CPU with native bf16 the prompt's matmuls run in bf16 (weights, activations and the
    # KV cache stay fp32): on all 54 dev questions the model's first token came 0.2-0.3 s sooner (base
    # model 1,033 -> 833 ms, 95.9% of greedy tokens before the first difference; answer-from-sources
    # model 0.73-0.75x, 91.8-99.9%; the rule: >= 90%); decoding stays fp32 and keeps prompt lookup
    prefill: str = setting(
        "answering",
        "auto",
        '"auto" (bf16 where the CPU has native bf16), "bf16" (the prompt read with bf16 matmuls) or "fp32"',
    )
    # 10: greedy answers quote the sources, so their next tokens are often already in the prompt; the
    # model checks up to 10 proposed tokens in one step and keeps those it would have chosen itself,
    # so the text is the same. Decoding went from 14.4 to 37.7 tokens/s on 12 dev questions (README)
    prompt_lookup: int = setting(
        "answering",
        10,
        "tokens proposed from the prompt per step when decoding greedily (same text, faster); 0 = off",
    )

    # --- app ---------------------------------------------------------------------
    port: int = setting("app", 8501, "Streamlit port for `make app`")

    def __post_init__(self) -> None:
        """Refuse values that would quietly change what bookworm does (types: :func:`_coerce`)."""
        check_values(self)

    def replace(self, **changes: Any) -> Settings:
        return make_settings(self.as_dict() | changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The values the code accepts for the settings that take one of a few names. The packages that
# implement them keep their own tuples (indexing.pdf.EXTRACTORS, assistant.retrieve.MODES, ...);
# tests/test_core.py checks that the two agree.
CHOICES: dict[str, tuple[str, ...]] = {
    "extractor": ("pypdf", "pypdfium2"),
    "embed_backend": ("auto", "torch", "onnx", "onnx-int8", "openvino-int8"),
    "precision": ("auto", "bf16", "fp16", "fp32"),
    "loss_average": ("items", "tokens"),
    "retrieval": ("dense", "bm25", "hybrid"),
    "context": ("evidence", "passages"),
    "lead": ("auto", "quote", "none"),
    "prefill": ("auto", "fp32", "bf16"),
}
# preset is left out: its names are assistant.presets' one table, which refuses an unknown one itself.

# (setting, test, what it must be) for the settings with a range. Only what the code cannot use is
# refused: workers <= 1 means in-process, approx_threshold any count, max_steps -1 all epochs,
# time_budget 0 no limit, lora_rank 0 no adapters.
RANGES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("chunk_tokens", lambda s: s.chunk_tokens >= 8, ">= 8"),
    # more overlap than half a chunk would repeat most of each chunk in the next
    ("chunk_overlap", lambda s: 0 <= s.chunk_overlap < s.chunk_tokens // 2, "in [0, chunk_tokens / 2)"),
    ("embed_batch_size", lambda s: s.embed_batch_size >= 1, ">= 1"),
    ("epochs", lambda s: s.epochs > 0, "> 0"),
    ("batch_size", lambda s: s.batch_size >= 1, ">= 1"),
    ("grad_accum", lambda s: s.grad_accum >= 1, ">= 1"),
    ("learning_rate", lambda s: s.learning_rate > 0, "> 0"),
    ("warmup_ratio", lambda s: 0 <= s.warmup_ratio < 1, "in [0, 1)"),
    ("weight_decay", lambda s: s.weight_decay >= 0, ">= 0"),
    ("block_size", lambda s: s.block_size >= 2, ">= 2"),  # an input token and the one it predicts
    ("eval_fraction", lambda s: 0 < s.eval_fraction < 1, "in (0, 1)"),
    ("eval_blocks", lambda s: s.eval_blocks >= 0, ">= 0; 0 = all"),
    ("max_steps", lambda s: s.max_steps == -1 or s.max_steps >= 1, "-1 (all epochs) or >= 1"),
    ("time_budget", lambda s: s.time_budget >= 0, ">= 0; 0 = no limit"),
    ("sources_share", lambda s: 0 <= s.sources_share < 1, "in [0, 1)"),
    ("sources_examples", lambda s: s.sources_examples >= 0, ">= 0"),
    ("lora_rank", lambda s: s.lora_rank >= 0, ">= 0; 0 = full fine-tuning"),
    ("sources_eval", lambda s: s.sources_eval >= 0, ">= 0"),
    # 0 passages would answer from the model alone while the UI still looks grounded
    ("passages", lambda s: s.passages >= 1, ">= 1"),
    ("history_turns", lambda s: s.history_turns >= 0, ">= 0"),
    ("evidence_sentences", lambda s: s.evidence_sentences >= 1, ">= 1"),
    # a score is a cosine in [0, 1): 1 or more would refuse every question
    ("abstain_below", lambda s: 0 <= s.abstain_below < 1, "in [0, 1); 0 = never abstain"),
    ("prompt_lookup", lambda s: s.prompt_lookup >= 0, ">= 0; 0 = off"),
    ("port", lambda s: 1 <= s.port <= 65535, "in [1, 65535]"),
)


def _one_of(choices: tuple[str, ...]) -> str:
    quoted = [repr(c) for c in choices]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def check_values(values: Any) -> None:
    """Refuse the first value outside what bookworm accepts, naming its flag and its TOML key.

    ``values`` is a :class:`Settings`, or a record made of some of its fields
    (``training.hyperparameters.Hyperparameters``): only the fields it has are checked.
    """
    names = {f.name for f in dataclasses.fields(values)}
    checks = [
        *((name, lambda s, name=name, c=c: getattr(s, name) in c, _one_of(c)) for name, c in CHOICES.items()),
        *RANGES,
    ]
    for name, ok, wanted in checks:
        if name in names and not ok(values):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(
                f"setting {name!r} must be {wanted}, got {getattr(values, name)!r}: "
                f"fix {flag} or `{name}` in {DEFAULT_CONFIG_FILE}"
            )


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    """Check ``value`` against the field's type; strings (from flags) are converted."""
    typ = typing.get_type_hints(Settings)[name]
    if isinstance(typ, types.UnionType):  # pragma: no cover - no optional fields yet
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str and isinstance(value, str):
        return value
    raise ConfigError(f"setting {name!r} must be {typ.__name__}, got {value!r}")


def make_settings(values: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown setting(s): {', '.join(unknown)}. Known settings: {', '.join(sorted(_FIELDS))}"
        )
    return Settings(**{k: _coerce(k, v) for k, v in values.items()})


def _toml_settings(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The settings of a TOML file: its ``[bookworm]`` table, or its top level when it has none."""
    if "bookworm" not in data:
        return data
    table, outside = data["bookworm"], sorted(k for k in data if k != "bookworm")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: `bookworm` must be a table ([bookworm]), got {table!r}")
    if outside:
        # keys above the header, or other tables: ignoring them would silently drop settings
        # the user believes are in force
        raise ConfigError(
            f"{path}: {', '.join(outside)} outside the [bookworm] table; "
            "put every setting under [bookworm], or remove the [bookworm] line"
        )
    return table


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Defaults < TOML file < overrides. ``None`` overrides are ignored (flag not given)."""
    values: dict[str, Any] = {}
    path = Path(config_file) if config_file else Path(DEFAULT_CONFIG_FILE)
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        values.update(_toml_settings(path, data))
    elif config_file:
        raise ConfigError(f"config file not found: {path}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return make_settings(values)


# Short flag names the CLIs accept besides --corpus-dir etc.
FLAG_ALIASES: dict[str, tuple[str, ...]] = {
    "corpus_dir": ("--corpus",),
    "index_dir": ("--index",),
    "model_dir": ("--model",),
}


def settings_in(*sections: str) -> tuple[str, ...]:
    """The settings a command of these sections takes, in declaration order: the ones declared in
    them, and the ones that name one of them in ``also``.

    Example: ``settings_in("retrieval")`` -> index_dir, embedder, passages, retrieval.
    """
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
    return tuple(
        f.name
        for f in dataclasses.fields(Settings)
        if {f.metadata["section"], *f.metadata["also"]} & set(sections)
    )


def section_fields(section: str) -> tuple[dataclasses.Field, ...]:
    """The fields declared in ``section`` (not those it takes through ``also``), in declaration order."""
    return tuple(f for f in dataclasses.fields(Settings) if f.metadata["section"] == section)


def setting_help() -> dict[str, str]:
    """Each setting's help: the text of its flag and of the README's reference."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(Settings)}


def add_settings_args(
    parser: argparse.ArgumentParser, *names: str, aliases: dict[str, tuple[str, ...]] | None = None
) -> None:
    """Add ``--flag`` options for the named settings to an argparse parser.

    Help text is the setting's ``help``; flags default to None so unset ones don't override the
    config file.
    """
    hints = typing.get_type_hints(Settings)
    aliases = FLAG_ALIASES | (aliases or {})
    for name in names:
        field = _FIELDS[name]
        flags = ["--" + name.replace("_", "-"), *aliases.get(name, ())]
        # argparse formats help with %: "~30% speed" would print the action's dict
        help_text = f"{field.metadata['help']} (default: {field.default!r})".replace("%", "%%")
        if hints[name] is bool:
            parser.add_argument(
                *flags, dest=name, default=None, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            parser.add_argument(*flags, dest=name, default=None, metavar=name.upper(), help=help_text)
    if not any(a.dest == "config" for a in parser._actions):
        parser.add_argument(
            "--config", default=None, help=f"TOML settings file (default: ./{DEFAULT_CONFIG_FILE} if present)"
        )


def settings_from_args(args: Any) -> Settings:
    """Build Settings from parsed args produced with :func:`add_settings_args`."""
    overrides = {k: v for k, v in vars(args).items() if k in _FIELDS}
    return load_settings(getattr(args, "config", None), **overrides)
