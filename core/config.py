"""The one settings object. Only entry points (CLIs, the app, benchmarks) read it;
library functions take plain arguments.

Values come, lowest priority first, from the defaults below, a TOML file
(``bookworm.toml`` in the working folder, or ``--config FILE``), then command-line flags.
An unknown key or a value of the wrong type is an error, never silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG_FILE = "bookworm.toml"


@dataclasses.dataclass(frozen=True)
class Settings:
    # --- where things live -------------------------------------------------------
    corpus_dir: str = "data/corpus"  # PDFs to index, searched recursively
    index_dir: str = "data/index"  # FAISS store + chunks.jsonl + manifest.json (written by indexing)
    model_dir: str = "models/finetuned"  # fine-tuned model (written by training, read by the assistant)
    log_file: str = "logs/answers.jsonl"  # monitoring log: one JSON line per answer and per 👍/👎
    cache_dir: str = ""  # converted offline models; "" = $BOOKWORM_CACHE or ~/.cache/bookworm

    # --- indexing ----------------------------------------------------------------
    # pypdf: pypdfium2 retrieves as well (dev hit@5 0.889 both) and builds faster, but two 10-minute
    # fine-tunes on its text answered with the abstention on 47% and 68% of answerable held-out examples,
    # the pypdf-trained one on 0% of the same examples (README, benchmarks)
    extractor: str = "pypdf"  # "pypdf" (default) or "pypdfium2" (7x faster extraction; see the README)
    workers: int = 2  # processes extracting PDFs in parallel; 1 = in-process
    embedder: str = "all-MiniLM-L6-v2"  # sentence-transformers name or folder; the default ships offline
    chunk_tokens: int = 200  # word-pieces per chunk; all-MiniLM-L6-v2 truncates at 256, never exceed it
    chunk_overlap: int = 32  # word-pieces repeated between neighbouring chunks, so no fact is cut in two
    # torch: under bf16 autocast (CPUs with native bf16) it embeds as fast as onnx-int8 with exact vectors;
    # onnx-int8 ~1.8x torch fp32 where bf16 is missing (indexing.onnx_embed; needs bookworm[onnx])
    embed_backend: str = "torch"  # "torch", "onnx" (onnxruntime fp32) or "onnx-int8" (int8 weights)
    embed_batch_size: int = 64  # chunks per encode() call; bigger is faster until memory runs out
    approx_threshold: int = 50_000  # chunks above which HNSW replaces the exact flat index

    # --- training ----------------------------------------------------------------
    base_model: str = "gpt2"  # hub id, local folder, .gguf file, or "smollm2-135m" (packaged, offline)
    offline_fallback: bool = True  # use the packaged smollm2-135m when base_model cannot be loaded
    epochs: float = 3.0  # passes over the training chunks (the guide's 3)
    batch_size: int = 2  # blocks per device per step (the guide's 2)
    grad_accum: int = 1  # steps whose gradients add up before one optimizer update
    learning_rate: float = 5e-5  # the guide's 5e-5: small, so the model keeps what it knew
    warmup_ratio: float = 0.05  # share of steps with a linearly rising learning rate
    lr_scheduler: str = "cosine"  # learning-rate schedule after warm-up (any transformers name)
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    block_size: int = 512  # tokens per packed block, capped at the model's context window
    eval_fraction: float = 0.05  # share of each file's chunks held out for perplexity (evenly spaced)
    eval_blocks: int = 32  # held-out blocks scored for perplexity (spread evenly); 0 = all. Caps eval time
    max_steps: int = -1  # stop after this many optimizer steps; -1 = run all epochs
    time_budget: float = 0.0  # minutes; stop cleanly (and save) when spent; 0 = no limit
    gradient_checkpointing: bool = False  # trade ~30% speed for much less activation memory
    precision: str = "auto"  # "auto": bf16 on CUDA (fp16 if unsupported) and on bf16-capable CPUs, else fp32
    seed: int = 42  # makes the split, the shuffling and the initialisation repeatable
    # Answer-from-sources (RAFT) examples mixed into the raw text: a question made from the books'
    # outline or a definition, its source among retrieved distractors, the target quoting it with [n].
    sources_share: float = 0.5  # share of training items that are answer-from-sources examples (0: raw text)
    sources_examples: int = 160  # answer-from-sources examples built (~0.2 s each); 10 min on 2 cores use ~60
    lora_rank: int = 0  # 0 = full fine-tuning (fits 124-135M models); r > 0 = rank-r LoRA adapters (peft)
    sources_eval: int = 12  # held-out answer-from-sources examples answered before and after (~5 s each, CPU)
    # tokens: a 512-token block outweighs a ~30-token answer ~15:1. Weighing items the same gave the answers
    # more of the gradient but, in 10 minutes, worse held-out answers (F1 0.356 -> 0.265 on 28 examples,
    # 17% abstentions on answerable ones; README, fine-tuning)
    loss_average: str = "tokens"  # "tokens" (mean over a batch's labelled tokens) or "items" (per item)

    # --- answering ---------------------------------------------------------------
    # precise: greedy decoding streams from the first token and, with the evidence prompt, answered the dev
    # set as well as the 4-beam technical preset at a fraction of its time (README, evaluation)
    preset: str = "precise"  # generation preset: precise, technical, balanced, creative or custom
    passages: int = 5  # retrieved passages offered to the model
    # dense: on data/dev_questions.jsonl hybrid raised MRR@5 (0.787 -> 0.833) but only tied hit@5 (0.926),
    # and the rule for making it the default was "raises both" (`python -m assistant eval-retrieval`)
    retrieval: str = "dense"  # "dense", "bm25" or "hybrid" (reciprocal-rank fusion of both)
    history_turns: int = 2  # earlier question/answer pairs kept in the prompt, budget allowing
    context: str = "evidence"  # "evidence" (the best sentences, ~400 tokens) or "passages" (whole passages)
    evidence_sentences: int = 3  # sentences picked from the passages as evidence (2-4 read best)
    # 0.45: on the dev set no answerable question (54) scores under it and 15 of 18 unanswerable ones do;
    # the best-separating 0.49 would refuse 2 answerable ones (`make eval` prints both)
    abstain_below: float = 0.45  # best evidence score under which the answer says the books do not cover it
    # fp32: bf16 reads the prompt 1.5x faster on CPUs with native bf16, but 2 of 12 dev answers came out
    # different from fp32's (83% of tokens before the first difference), under the 90% asked for
    prefill: str = "fp32"  # "fp32", or "bf16": the prompt is read under bf16 autocast (first token sooner)

    # --- app ---------------------------------------------------------------------
    port: int = 8501  # Streamlit port for `make app`

    def __post_init__(self) -> None:
        """Refuse values that would quietly change what the assistant does (types: :func:`_coerce`)."""
        problems = [
            # 0 passages would answer from the model alone while the UI still looks grounded
            ("passages", self.passages >= 1, ">= 1"),
            ("history_turns", self.history_turns >= 0, ">= 0"),
            ("evidence_sentences", self.evidence_sentences >= 1, ">= 1"),
            # a score is a cosine in [0, 1): 1 or more would refuse every question
            ("abstain_below", 0 <= self.abstain_below < 1, "in [0, 1); 0 = never abstain"),
            ("context", self.context in ("evidence", "passages"), "'evidence' or 'passages'"),
            ("retrieval", self.retrieval in ("dense", "bm25", "hybrid"), "'dense', 'bm25' or 'hybrid'"),
            ("loss_average", self.loss_average in ("items", "tokens"), "'items' or 'tokens'"),
            ("prefill", self.prefill in ("fp32", "bf16"), "'fp32' or 'bf16'"),
            (
                "embed_backend",
                self.embed_backend in ("torch", "onnx", "onnx-int8"),
                "'torch', 'onnx' or 'onnx-int8'",
            ),
        ]
        for name, ok, wanted in problems:
            if not ok:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"setting {name!r} must be {wanted}, got {getattr(self, name)!r}: "
                    f"fix {flag} or `{name}` in {DEFAULT_CONFIG_FILE}"
                )

    def replace(self, **changes: Any) -> Settings:
        return make_settings(self.as_dict() | changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def setting_comments() -> dict[str, str]:
    """The comment beside each default above: the help text of flags and the README's reference."""
    import inspect
    import re

    src = inspect.getsource(Settings)
    return dict(re.findall(r"^\s+(\w+): [^=]+=.*?#\s*(.+)$", src, flags=re.M))


def add_settings_args(
    parser: argparse.ArgumentParser, *names: str, aliases: dict[str, tuple[str, ...]] | None = None
) -> None:
    """Add ``--flag`` options for the named settings to an argparse parser.

    Help text is the comment beside the default; flags default to None so unset ones don't
    override the config file.
    """
    hints = typing.get_type_hints(Settings)
    comments = setting_comments()
    aliases = FLAG_ALIASES | (aliases or {})
    for name in names:
        field = _FIELDS[name]
        flags = ["--" + name.replace("_", "-"), *aliases.get(name, ())]
        help_text = f"{comments.get(name, '')} (default: {field.default!r})"
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
