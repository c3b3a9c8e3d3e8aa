"""Presets -> valid generate() arguments; streaming, beams, seeds and stop strings on a tiny GPT-2."""

from __future__ import annotations

import dataclasses

import pytest

from assistant.generate import Generation, TokenStreamer, cut_at_stop, partial_stop
from assistant.presets import (
    CUSTOM,
    PARAM_HELP,
    PRESET_NAMES,
    PRESETS,
    GenerationParams,
    get_params,
    preset_name,
)
from core.errors import ConfigError

TABLE = {  # the table: temperature, top_k, top_p, repetition_penalty, max_new_tokens, num_beams
    "precise": (0.3, 0, 1.0, 1.3, 150, 1),  # + copy_boost 3.0
    "technical": (0.3, 0, 0.85, 1.5, 150, 4),
    "balanced": (0.7, 0, 0.9, 1.2, 200, 4),
    "creative": (0.9, 50, 0.95, 1.2, 200, 1),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_values_and_valid_generate_kwargs(name: str) -> None:
    from transformers import GenerationConfig

    p = PRESETS[name]
    values = (p.temperature, p.top_k, p.top_p, p.repetition_penalty, p.max_new_tokens, p.num_beams)
    assert values == TABLE[name]
    kwargs = p.generate_kwargs(prompt_len=10)
    assert "max_length" not in kwargs and kwargs["max_new_tokens"] == p.max_new_tokens
    assert kwargs["repetition_penalty"] == 1.0  # transformers' own would count the prompt
    assert len(kwargs.pop("logits_processor")) == 1  # ours counts generated tokens only (no sources given)
    if not p.do_sample:  # sampling knobs are not passed where they would be ignored
        assert kwargs["temperature"] is None and kwargs["top_p"] is None
    GenerationConfig(**kwargs).validate(strict=True)  # raises on ignored or contradictory flags
    assert p.streams == (p.num_beams == 1)


def test_repetition_penalty_ignores_the_prompt() -> None:
    """A token only in the sources (the prompt) keeps its score; a token the answer already said is
    penalised. transformers' default penalty would push the model away from every source word."""
    import torch

    processor = GenerationParams(repetition_penalty=1.5).generate_kwargs(prompt_len=4)["logits_processor"][0]
    input_ids = torch.tensor([[5, 6, 7, 5, 8]])  # prompt 5 6 7 5 | generated 8
    scores = torch.full((1, 10), 3.0)
    out = processor(input_ids, scores.clone())
    assert out[0, 7].item() == pytest.approx(3.0)  # only in the prompt: not penalised
    assert out[0, 5].item() == pytest.approx(3.0)
    assert out[0, 8].item() == pytest.approx(2.0)  # generated already: 3.0 / 1.5
    assert "logits_processor" not in GenerationParams(repetition_penalty=1.0).generate_kwargs(prompt_len=4)


@pytest.mark.parametrize(
    ("generated", "boosted"),
    [
        ([], {}),  # nothing generated yet: nothing to continue
        ([9], {}),  # 9 is in no source
        ([3], {4: 1.0, 7: 1.0}),  # 3 is followed by 4 (source 1) and 7 (source 2)
        ([2, 3], {4: 2.0, 7: 1.0}),  # "2 3" continues with 4: boosted twice
        ([5], {}),  # 5 ends source 1 and does not run on into source 2
        ([6], {}),  # 6 ends a sentence: whether to go on is left to the model
        ([2, 6], {}),  # ... even where "2 6" is in no source and 6 is followed by 1 in one
    ],
)
def test_copy_boost_favours_continuing_the_sources(generated: list[int], boosted: dict[int, float]) -> None:
    import torch

    from assistant.decoding import SourceCopyLogitsProcessor

    sources = [[1, 2, 3, 4, 5], [3, 7], [6, 1]]
    processor = SourceCopyLogitsProcessor(sources, prompt_len=2, boost=1.0, sentence_ends={6})
    input_ids = torch.tensor([[8, 8, *generated]])
    out = processor(input_ids, torch.zeros(1, 10))
    assert {i: v for i, v in enumerate(out[0].tolist()) if v} == boosted


def test_sentence_end_ids_are_the_tokens_that_end_a_sentence(tiny_gpt2_dir) -> None:
    from transformers import AutoTokenizer

    from assistant.decoding import sentence_end_ids

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    ends = sentence_end_ids(tok)
    texts = {tok.convert_tokens_to_string([t]): i for t, i in tok.get_vocab().items()}
    for text in (".", "?", "!", "\n"):
        assert texts[text] in ends, text
    for text in (",", "a", " ", ":"):
        if text in texts:
            assert texts[text] not in ends, text
    assert all(tok.decode([i]).rstrip(" ").endswith((".", "!", "?", "…", "\n")) for i in ends)


def test_copy_boost_is_passed_only_with_sources() -> None:
    from assistant.decoding import SourceCopyLogitsProcessor

    p = PRESETS["precise"]
    assert p.copy_boost == 3.0
    with_sources = p.generate_kwargs(prompt_len=3, sources=[[1, 2]])["logits_processor"]
    assert any(isinstance(x, SourceCopyLogitsProcessor) for x in with_sources)
    assert not any(isinstance(x, SourceCopyLogitsProcessor) for x in p.generate_kwargs(3)["logits_processor"])
    with pytest.raises(ConfigError, match="copy_boost"):
        GenerationParams(copy_boost=-1)


def test_beam_presets_are_labelled_slower_and_the_default_streams_deterministically() -> None:
    from assistant.presets import DEFAULT_PRESET, PRESET_HELP

    default = PRESETS[DEFAULT_PRESET]
    assert default.streams and not default.do_sample
    for name, p in PRESETS.items():
        assert ("slower" in PRESET_HELP[name]) == (not p.streams)


def test_sampling_semantics() -> None:
    assert PRESETS["technical"].do_sample is False  # beam search: deterministic, factual
    assert PRESETS["balanced"].do_sample and PRESETS["balanced"].num_beams > 1  # beam-sample
    assert PRESETS["creative"].do_sample and PRESETS["creative"].streams
    idle = PRESETS["technical"].inactive()
    assert {"temperature", "top_k", "top_p"} <= set(idle) and "beam search" in idle["temperature"]
    assert "temperature" not in PRESETS["balanced"].inactive()
    assert PRESETS["balanced"].inactive()["top_k"] == "0 = off"
    assert GenerationParams(repetition_penalty=1.0).inactive()["repetition_penalty"]


def test_custom_and_validation() -> None:
    assert get_params(CUSTOM, temperature=0.5).temperature == 0.5
    assert get_params("creative", num_beams=2).num_beams == 2
    assert preset_name(PRESETS["balanced"]) == "balanced"
    assert preset_name(PRESETS["balanced"].replace(top_k=7)) == CUSTOM
    assert PRESET_NAMES == ("precise", "technical", "balanced", "creative", "custom")
    with pytest.raises(ConfigError, match="unknown preset"):
        get_params("wild")
    with pytest.raises(ConfigError, match="unknown generation parameter"):
        get_params("technical", max_length=10)
    with pytest.raises(ConfigError, match="top_p"):
        GenerationParams(top_p=1.5)


def test_param_help_covers_every_parameter() -> None:
    fields = {f.name for f in dataclasses.fields(GenerationParams)}
    assert set(PARAM_HELP) == fields
    assert "creativity dial" in PARAM_HELP["temperature"]
    assert "rambling" in PARAM_HELP["max_new_tokens"]
    assert all("\n" not in h for h in PARAM_HELP.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("an answer\nQuestion: next", ("an answer", True)), ("no stop", ("no stop", False))],
)
def test_cut_at_stop(text: str, expected: tuple[str, bool]) -> None:
    assert cut_at_stop(text, ("\nQuestion:",)) == expected


STOPS = ("<sources>", "</sources>", "\nQuestion:")


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("A pipe connects two commands", 0),  # nothing a stop string starts with: all shown
        ("A pipe connects <", 1),  # may become "<sources>"
        ("A pipe connects </sour", 6),
        ("see [1]\nQuest", 6),
        ("a < b and c", 0),  # a stop string's first letters in the middle do not count
        ("", 0),
        ("<sources", 8),  # one letter short of the stop string itself
    ],
)
def test_partial_stop_holds_back_only_what_may_become_a_stop_string(text: str, held: int) -> None:
    assert partial_stop(text, STOPS) == held


@pytest.mark.parametrize(
    ("preset", "lookup", "expected"),
    [("precise", 10, 10), ("precise", 0, None), ("creative", 10, None), ("technical", 10, None)],
)
def test_prompt_lookup_only_for_greedy_decoding(preset: str, lookup: int, expected: int | None) -> None:
    kwargs = PRESETS[preset].generate_kwargs(prompt_len=5, prompt_lookup=lookup)
    assert kwargs.get("prompt_lookup_num_tokens") == expected


# --- on a tiny GPT-2 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tiny_gpt2_dir):
    from core.sources import load_lm, resolve_lm

    return load_lm(resolve_lm(str(tiny_gpt2_dir)))


def _ids(tokenizer, text="The shell reads commands. Question: what is a pipe?\nAnswer:"):
    return tokenizer(text, return_tensors="pt").input_ids


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_runs(tiny_lm, name: str) -> None:
    model, tok = tiny_lm
    params = PRESETS[name].replace(max_new_tokens=12)
    gen = Generation(model, tok, _ids(tok), params, stop_strings=("\nQuestion:",))
    pieces = list(gen)
    assert 1 <= gen.new_tokens <= 12
    assert "".join(pieces).strip() == gen.text
    assert gen.seconds > 0 and gen.tokens_per_s > 0


@pytest.mark.slow
def test_streaming_is_incremental_and_beams_whole(tiny_lm) -> None:
    model, tok = tiny_lm
    streamed = list(Generation(model, tok, _ids(tok), PRESETS["creative"].replace(max_new_tokens=30)))
    assert len(streamed) > 1  # pieces arrive as they are made
    whole = Generation(model, tok, _ids(tok), PRESETS["technical"].replace(max_new_tokens=30))
    assert len(list(whole)) == 1 and whole.text  # beams: one piece, the whole answer


@pytest.mark.slow
def test_same_seed_same_answer(tiny_lm) -> None:
    model, tok = tiny_lm

    def run(seed: int, preset: str = "creative") -> str:
        params = PRESETS[preset].replace(max_new_tokens=20, seed=seed)
        return Generation(model, tok, _ids(tok), params).run()

    assert run(7) == run(7)
    assert run(7, "balanced") == run(7, "balanced")  # beam-sample too
    assert len({run(s) for s in range(4)}) > 1  # and the seed matters


@pytest.mark.slow
def test_stop_string_ends_the_answer(tiny_lm) -> None:
    model, tok = tiny_lm
    free = Generation(model, tok, _ids(tok), PRESETS["creative"].replace(max_new_tokens=40, seed=1)).run()
    stop = free.split()[2]  # a word the model will produce
    gen = Generation(
        model, tok, _ids(tok), PRESETS["creative"].replace(max_new_tokens=40, seed=1), stop_strings=(stop,)
    )
    text = "".join(gen)
    assert gen.stopped_at_string and stop not in text and gen.new_tokens < 40


@pytest.mark.slow
def test_cancel_stops_at_the_next_token_and_abandoning_frees_the_model(tiny_lm) -> None:
    model, tok = tiny_lm
    params = PRESETS["creative"].replace(max_new_tokens=100, repetition_penalty=1.0)
    gen = Generation(model, tok, _ids(tok), params)
    gen.cancel()
    gen.run()
    assert gen.new_tokens == 1  # the criterion is checked after each new token

    gen = Generation(model, tok, _ids(tok), params)
    pieces = iter(gen)
    next(pieces)
    pieces.close()  # what Streamlit does to a stream when the user asks something else
    assert gen.cancelled.is_set()
    assert gen.lock.acquire(timeout=30)  # the worker stopped and released the shared model
    gen.lock.release()


@pytest.mark.slow
def test_bf16_prompt_matmuls_cover_the_prompt_only(tiny_lm) -> None:
    """Only the forward call that reads the prompt runs its matmuls in bf16: the decoding calls
    run in fp32, the switch is back afterwards (after a failure too), and a Generation with it
    keeps prompt lookup."""
    import torch

    from assistant.generate import _set_fp32_matmuls, bf16_prompt_matmuls

    model, tok = tiny_lm
    ids = _ids(tok)
    seen: list[str] = []

    def record(module, args) -> None:  # runs inside the model's forward, after its own hooks
        old = _set_fp32_matmuls("none")
        _set_fp32_matmuls(old)
        seen.append(old)

    inner = next(model.children()).register_forward_pre_hook(record)
    try:
        with torch.inference_mode(), bf16_prompt_matmuls(model):
            model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=3,
                min_new_tokens=3,
                do_sample=False,
            )
        assert seen == ["bf16", "none", "none"]  # the prompt, then one call per further token
        assert _set_fp32_matmuls("none") == "none"  # and it is off again
    finally:
        inner.remove()

    with pytest.raises(IndexError), bf16_prompt_matmuls(model):  # a failed prompt turns it off too
        model(input_ids=torch.tensor([[10**9]]))
    assert _set_fp32_matmuls("none") == "none"

    greedy = PRESETS["precise"].replace(max_new_tokens=12)
    gen = Generation(model, tok, ids, greedy, prefill="bf16", prompt_lookup=4)
    assert gen.prompt_lookup == 4 and gen.run() and gen.new_tokens >= 1  # prompt lookup stays on


@pytest.mark.slow
def test_token_streamer_hands_out_each_token_without_broken_characters(tiny_lm) -> None:
    import torch

    _, tok = tiny_lm
    text = "Use 2>&1 to send stderr café 😀 to the same place"
    ids = tok(text).input_ids
    streamer = TokenStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    streamer.put(torch.tensor([[0]]))  # the prompt: skipped
    pieces = []
    for i in ids:
        streamer.put(torch.tensor([[i]]))
        while not streamer.text_queue.empty():
            pieces.append(streamer.text_queue.get())
    streamer.end()
    pieces.extend(iter(streamer.text_queue.get, streamer.stop_signal))
    assert "".join(pieces) == tok.decode(ids)
    assert not any("\ufffd" in p for p in pieces)  # a split emoji waits for its last byte
    assert sum(bool(p) for p in pieces) > len(text.split())  # symbols and word parts stream too
    assert streamer.first_token_at is not None


@pytest.mark.slow
def test_prompt_lookup_gives_the_same_greedy_text(tiny_lm) -> None:
    model, tok = tiny_lm
    ids = _ids(tok, "the pipe sends output to input. the pipe sends output to input. the pipe")
    params = PRESETS["precise"].replace(max_new_tokens=24)
    plain = Generation(model, tok, ids, params)
    looked_up = Generation(model, tok, ids, params, prompt_lookup=10)
    assert plain.run() == looked_up.run() and plain.new_tokens == looked_up.new_tokens
    assert looked_up.tokens_per_s > 0


@pytest.mark.slow
def test_stop_string_ends_a_prompt_lookup_answer(tiny_lm) -> None:
    """Prompt lookup adds several tokens a step; the stop check still sees where a stop string began."""
    model, tok = tiny_lm
    ids = _ids(tok, "the pipe sends output to input. the pipe sends output to input. the pipe")
    params = PRESETS["precise"].replace(max_new_tokens=40, repetition_penalty=1.0, copy_boost=0.0)
    free = Generation(model, tok, ids, params, prompt_lookup=10).run()
    assert len(free) >= 12, free
    stop = free[len(free) // 2 : len(free) // 2 + 4]  # first seen halfway through the answer
    gen = Generation(model, tok, ids, params, stop_strings=(stop,), prompt_lookup=10)
    text = "".join(gen)
    assert gen.stopped_at_string and stop not in text and gen.new_tokens < 40
