"""training: the pure parts (split, packing, caps), settings checks and the CLI edges. Fast, no model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import ConfigError
from core.layout import ModelFiles
from indexing.records import Chunk, write_chunks
from training.data import pack, pad_to_max_length, split_chunks, spread, trim_overlap
from training.evaluate import eval_blocks
from training.finetune import Hyperparameters, choose_device_precision, stale_reason, work_dir

EOS = 0
PAD = 99  # distinct from EOS so "no padding" is checkable


@pytest.mark.parametrize(
    ("token_lists", "block_size", "expected"),
    [
        # stream 1 2 3 E 4 5 E -> two full blocks, remainder [E] dropped
        ([[1, 2, 3], [4, 5]], 3, [[1, 2, 3], [EOS, 4, 5]]),
        # exact fit: nothing dropped
        ([[1, 2], [3]], 5, [[1, 2, EOS, 3, EOS]]),
        # block of 1 token: every token its own block
        ([[7], [8]], 1, [[7], [EOS], [8], [EOS]]),
        # a chunk longer than a block spills into the next one
        ([[1, 2, 3, 4, 5, 6]], 4, [[1, 2, 3, 4]]),
        # stream shorter than one block: kept whole as one short block (documented exception)
        ([[1]], 4, [[1, EOS]]),
        ([[1], [2]], 8, [[1, EOS, 2, EOS]]),
        # nothing in, nothing out
        ([], 4, []),
    ],
)
def test_pack_table(token_lists, block_size, expected):
    assert pack(token_lists, block_size, EOS) == expected


@pytest.mark.parametrize("block_size", [1, 2, 3, 5, 8, 13])
def test_pack_properties(block_size):
    token_lists = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [10, 11], [12] * 7]
    stream = [t for ids in token_lists for t in [*ids, EOS]]
    blocks = pack(token_lists, block_size, EOS)
    flat = [t for b in blocks for t in b]
    assert all(len(b) == block_size for b in blocks)  # every block full length
    assert flat == stream[: len(flat)]  # order preserved, EOS between chunks
    assert PAD not in flat  # no padding anywhere
    assert len(stream) - len(flat) < block_size  # only the remainder is dropped
    assert len(flat) == (len(stream) // block_size) * block_size


def test_pack_rejects_bad_block_size():
    with pytest.raises(ValueError, match="block_size"):
        pack([[1]], 0, EOS)


def test_padded_recipe_is_the_guides():
    rows = pad_to_max_length([[1, 2], [3, 4, 5, 6, 7]], 4, PAD)
    assert rows == [[1, 2, PAD, PAD], [3, 4, 5, 6]]  # padded, truncated


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (5, 0, [0, 1, 2, 3, 4]),
        (5, 9, [0, 1, 2, 3, 4]),
        (10, 5, [0, 2, 4, 6, 8]),
        (10, 3, [0, 3, 6]),
        (3, 1, [0]),
    ],
)
def test_spread(n, k, expected):
    assert spread(n, k) == expected


def test_eval_blocks_caps_evenly():
    ids = [[i] for i in range(1, 40)]  # 78-token stream -> 19 blocks of 4
    blocks = eval_blocks(ids, 4, EOS, max_blocks=3)
    assert len(blocks) == 3 and blocks[0] == [1, EOS, 2, EOS]
    assert eval_blocks(ids, 4, EOS) == pack(ids, 4, EOS)


def _chunks(spec: dict[str, int]) -> list[Chunk]:
    out = []
    for file, n in spec.items():
        for i in range(n):
            out.append(Chunk(f"{file}-{i}", file, i + 1, i + 1, f"{file} text number {i} " * 3, 10))
    return out


@pytest.mark.parametrize(
    ("spec", "fraction", "held_out"),
    [
        # centres of equal strides: the held-out chunks sample the whole file, not its tail
        ({"a.pdf": 20, "b.pdf": 40}, 0.05, {"a.pdf": [10], "b.pdf": [10, 30]}),
        ({"a.pdf": 10}, 0.25, {"a.pdf": [2, 7]}),  # round(2.5) = 2 chunks
        ({"a.pdf": 2, "b.pdf": 1}, 0.05, {"a.pdf": [1]}),  # at least one; a 1-chunk file only trains
        ({"a.pdf": 3}, 0.9, {"a.pdf": [0, 2]}),  # never the whole file
    ],
)
def test_split_deterministic_disjoint_spread(spec, fraction, held_out):
    chunks = _chunks(spec)
    first, second = split_chunks(chunks, fraction), split_chunks(list(chunks), fraction)
    assert first == second  # deterministic
    train_ids = {c.chunk_id for c in first.train}
    eval_ids = {c.chunk_id for c in first.eval}
    assert not train_ids & eval_ids  # disjoint
    assert train_ids | eval_ids == {c.chunk_id for c in chunks}  # nothing lost
    assert eval_ids == {f"{file}-{i}" for file, idx in held_out.items() for i in idx}


def test_split_trims_overlap_with_training_neighbours():
    a = Chunk("a0", "f", 1, 1, "alpha beta gamma delta epsilon zeta eta theta", 8)
    b = Chunk("a1", "f", 1, 1, "epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi", 8)
    c = Chunk("a2", "f", 2, 2, "lambda mu nu xi omicron pi rho sigma tau", 8)
    split = split_chunks([a, b, c], 0.34)  # holds out the middle chunk
    assert [x.chunk_id for x in split.eval] == ["a1"]
    assert split.eval[0].text == "iota kappa"  # shared prefix and suffix removed
    assert [x.text for x in split.train] == [a.text, c.text]  # training text untouched
    desc = split.describe(0.34)
    assert desc["eval_chunk_ids"] == ["a1"] and len(desc["eval_chunk_ids_sha256"]) == 64


@pytest.mark.parametrize(
    ("previous", "text", "expected"),
    [
        ("the quick brown fox jumps over the lazy dog", "jumps over the lazy dog and away", "and away"),
        (
            "no shared words in this one at all",
            "something else entirely here",
            "something else entirely here",
        ),
        ("ends with a b", "a b c", "a b c"),  # under MIN_OVERLAP_CHARS: coincidence, kept
    ],
)
def test_trim_overlap(previous, text, expected):
    assert trim_overlap(previous, text) == expected


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError):
        split_chunks(_chunks({"a": 3}), 1.0)


def hp(**changes) -> Hyperparameters:
    return dataclasses.replace(Hyperparameters.from_settings(Settings()), **changes)


def test_hyperparameters_defaults_are_the_guides():
    h = hp()
    assert (h.epochs, h.batch_size, h.learning_rate, h.block_size) == (3.0, 2, 5e-5, 512)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"eval_fraction": 0.0}, "eval_fraction"),
        ({"max_steps": 0}, "max_steps"),
        ({"precision": "fp8"}, "precision"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
    ],
)
def test_hyperparameters_checked(changes, message):
    with pytest.raises(ConfigError, match=message):
        hp(**changes)


def test_cpu_precision_choices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device, precision = choose_device_precision("auto")
    assert device in {"cpu", "mps"} and precision in {"bf16", "fp32"}
    assert choose_device_precision("fp32")[1] == "fp32"
    with pytest.raises(ConfigError, match="fp16"):
        choose_device_precision("fp16")


def test_work_dir_is_beside_the_output():
    assert work_dir("models/finetuned") == Path("models/.finetuned.work")


def _index(tmp_path: Path) -> Path:
    index = tmp_path / "index"
    index.mkdir()
    write_chunks(index / "chunks.jsonl", _chunks({"a.pdf": 4}))
    return index


def _fake_model(tmp_path: Path, index: Path, h: Hyperparameters, base: str = "gpt2") -> Path:
    from indexing.store import chunks_sha256

    out = tmp_path / "model"
    out.mkdir()
    manifest = {
        "format": 2,
        "base_model": {"requested": base, "used": "smollm2-135m"},
        "data": {"chunks_sha256": chunks_sha256(index)},
        "hyperparameters": dataclasses.asdict(h),
    }
    ModelFiles(out).manifest.write_text(json.dumps(manifest))
    return out


def test_stale_reason(tmp_path):
    index = _index(tmp_path)
    out = _fake_model(tmp_path, index, hp(time_budget=10.0))
    assert stale_reason(out, index, "gpt2", hp(time_budget=10.0)) is None
    assert "base model" in stale_reason(out, index, "distilgpt2", hp(time_budget=10.0))
    assert "learning_rate" in stale_reason(out, index, "gpt2", hp(time_budget=10.0, learning_rate=1e-4))
    write_chunks(index / "chunks.jsonl", _chunks({"a.pdf": 5}))
    assert "chunks changed" in stale_reason(out, index, "gpt2", hp(time_budget=10.0))
    assert "no trained model" in stale_reason(tmp_path / "none", index, "gpt2", hp())
    manifest = json.loads(ModelFiles(out).manifest.read_text())
    del manifest["format"]  # trained before the separator fix
    ModelFiles(out).manifest.write_text(json.dumps(manifest))
    assert "end-of-turn" in stale_reason(out, index, "gpt2", hp(time_budget=10.0))


def test_stale_when_the_fallback_is_no_longer_needed(tmp_path, monkeypatch):
    import core.sources
    from training import finetune

    index = _index(tmp_path)
    out = _fake_model(tmp_path, index, hp(time_budget=10.0))
    manifest = json.loads(ModelFiles(out).manifest.read_text())
    manifest["base_model"]["fallback_reason"] = "'gpt2' is not cached and the hub cannot be reached"
    ModelFiles(out).manifest.write_text(json.dumps(manifest))
    monkeypatch.setattr(core.sources, "_in_hub_cache", lambda name: False)
    monkeypatch.setattr(core.sources, "hub_reachable", lambda timeout=3.0: False)
    assert stale_reason(out, index, "gpt2", hp(time_budget=10.0)) is None  # still offline: keep it
    monkeypatch.setattr(core.sources, "hub_reachable", lambda timeout=3.0: True)
    assert "offline fallback" in finetune.stale_reason(out, index, "gpt2", hp(time_budget=10.0))


def test_cli_if_stale_skips(tmp_path, capsys):
    from training.__main__ import main

    index = _index(tmp_path)
    out = _fake_model(tmp_path, index, hp(time_budget=10.0))
    rc = main(["--index", str(index), "--output", str(out), "--time-budget", "10", "--if-stale"])
    assert rc == 0
    assert "up to date" in capsys.readouterr().out


def test_cli_missing_index_is_a_message(tmp_path, capsys):
    from training.__main__ import main

    rc = main(["--index", str(tmp_path / "nothing"), "--output", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "make index" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_cli_bad_setting_is_a_message(tmp_path, capsys):
    from training.__main__ import main

    rc = main(["--index", str(_index(tmp_path)), "--batch-size", "zero"])
    assert rc == 1
    assert "batch_size" in capsys.readouterr().err


def test_loss_curve_png(tmp_path):
    from training.plots import plot_loss_curve

    history = [{"step": 1, "loss": 5.0}, {"step": 5, "loss": 4.0}, {"step": 5, "eval_loss": 4.2}]
    path = plot_loss_curve(history, tmp_path / "loss.png", base_eval_loss=5.1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
