"""Shared fixtures: PDFs the tests write themselves, and a tiny GPT-2 with a tokenizer trained here.

No test reads the shared corpus folder or reaches the Hugging Face hub.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on the network in tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_TEXT = (
    "The shell reads commands and runs them. Redirection sends output to a file. "
    "Use 2> to redirect standard error, and > to redirect standard output. "
    "A pipeline connects the output of one command to the input of the next. "
    "Variables hold strings; arrays hold lists of strings. Functions group commands. "
) * 20


def make_pdf(path: str | Path, pages: Sequence[str]) -> Path:
    """Write a PDF with one page per string (text layer, core font)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 5, text)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


@pytest.fixture
def pdf_factory(tmp_path: Path):
    """``pdf_factory("book.pdf", ["page 1 text", "page 2 text"])`` -> path in tmp_path/corpus."""

    def factory(name: str, pages: Sequence[str]) -> Path:
        return make_pdf(tmp_path / "corpus" / name, pages)

    return factory


def build_tiny_gpt2(out: Path, texts: Sequence[str] = (TINY_TEXT,), n_positions: int = 256) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` and save a tiny random GPT-2 beside it."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    out.mkdir(parents=True, exist_ok=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=n_positions,
    )  # like GPT-2: no pad token
    tok.save_pretrained(out)
    import torch

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 (2 layers, 32 dims) and its tokenizer; shared by the session, treat as read-only."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))
