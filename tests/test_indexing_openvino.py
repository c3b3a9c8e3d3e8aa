"""The OpenVINO int8 embedder (static int8 through NNCF) against sentence-transformers on the real
MiniLM, and which backend "auto" picks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_pdf
from tests.test_indexing_build import PLANTED, filler

OPENVINO = all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf"))
needs_openvino = pytest.mark.skipif(
    not OPENVINO, reason="openvino/nncf not installed (pip install openvino nncf)"
)

TEXTS = [
    "Redirect standard error with 2> file.",
    "A pipeline connects the standard output of one command to the input of the next.",
    "lambda calculus",
    "A data frame is a list of variables of the same number of rows with unique row names.",
]
# A contents page's dot leaders, from the sample corpus: nothing like the calibration text. With the
# first layer in int8 too its vector came out at cosine 0.50 to torch's.
DOT_LEADERS = " ".join([". " * 30 + "9 + +", ". " * 40 + "9 – -", ". " * 40 + "9"])


@pytest.mark.parametrize(
    "text, paragraphs",
    [
        ("one\n\ntwo", ["one", "two"]),
        ("  a\n  b  \n\n\n\nc\t d\n", ["a b", "c d"]),  # lines joined, runs of blank lines are one break
        ("\n\n\n", []),
        ("only one", ["only one"]),
    ],
)
def test_calibration_texts(tmp_path: Path, text: str, paragraphs: list[str]) -> None:
    from indexing.openvino_embed import calibration_texts

    path = tmp_path / "calibration.txt"
    path.write_text(text)
    assert calibration_texts(path) == paragraphs


def test_the_shipped_calibration_text_is_real_prose() -> None:
    from indexing.openvino_embed import calibration_texts

    paragraphs = calibration_texts()
    assert len(paragraphs) >= 40 and all(len(p.split()) > 20 for p in paragraphs)


# (backend asked, embedder, CUDA present, openvino installed, int8 dot products) -> the backend that runs
RESOLVE = [
    ("auto", "all-MiniLM-L6-v2", False, True, True, "openvino-int8"),
    ("auto", "sentence-transformers/all-MiniLM-L6-v2", False, True, True, "openvino-int8"),
    ("auto", "all-MiniLM-L6-v2", False, True, False, "torch"),  # no VNNI: int8 is no faster than fp32
    ("auto", "all-MiniLM-L6-v2", False, True, None, "openvino-int8"),  # flags unknown: as measured before
    ("auto", "all-MiniLM-L6-v2", True, True, True, "torch"),  # a GPU beats any CPU backend
    ("auto", "all-MiniLM-L6-v2", False, False, True, "torch"),  # openvino missing: torch, not an error
    # the int8 recipe was checked on MiniLM only
    ("auto", "BAAI/bge-small-en-v1.5", False, True, True, "torch"),
    ("onnx-int8", "all-MiniLM-L6-v2", True, True, False, "onnx-int8"),  # an explicit choice is kept
    ("openvino-int8", "all-MiniLM-L6-v2", False, True, False, "openvino-int8"),
    ("torch", "all-MiniLM-L6-v2", False, True, True, "torch"),
]


@pytest.mark.parametrize("backend, name, cuda, installed, vnni, expected", RESOLVE)
def test_resolve_backend(
    monkeypatch, backend: str, name: str, cuda: bool, installed: bool, vnni: bool | None, expected: str
):
    import indexing.embed

    monkeypatch.setattr(indexing.embed, "cuda_available", lambda: cuda)
    monkeypatch.setattr(indexing.embed, "openvino_installed", lambda: installed)
    monkeypatch.setattr(indexing.embed, "cpu_int8_dot", lambda: vnni)
    assert indexing.embed.resolve_backend(backend, name) == expected


CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 {}\nbogomips\t: 4890\n"


@pytest.mark.parametrize(
    ("cpuinfo", "int8_dot", "bf16"),
    [
        (CPUINFO.format("avx avx2 fma f16c"), False, False),  # this project's 2-core AMD machine
        (CPUINFO.format("avx2 avx512f avx512_vnni"), True, False),  # AVX-512 VNNI, no bf16
        (CPUINFO.format("avx2 avx_vnni"), True, False),  # AVX-VNNI (client cores)
        (CPUINFO.format("avx2 avx512_vnni avx512_bf16 amx_bf16 amx_int8"), True, True),
        ("processor\t: 0\nFeatures\t: fp asimd asimddp\n", None, False),  # ARM: no x86 flags line
    ],
)
def test_cpu_flags_table(monkeypatch, cpuinfo: str, int8_dot: bool | None, bf16: bool):
    from core import hardware

    flags = hardware.flags_of(cpuinfo)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    assert hardware.cpu_int8_dot() is int8_dot
    assert hardware.cpu_supports_bf16() is bf16


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.mark.slow
@needs_openvino
def test_openvino_vectors_agree_with_torch(cache: Path, capsys) -> None:
    from indexing.embed import Embedder, load_encoder

    texts = [*TEXTS, DOT_LEADERS]
    torch_vecs = Embedder("all-MiniLM-L6-v2", bf16=False).encode(texts)
    encoder = load_encoder("all-MiniLM-L6-v2", "openvino-int8", cache_dir=str(cache))
    assert "Quantizing" in capsys.readouterr().err  # made once, said so
    vecs = encoder.encode(texts)
    assert encoder.dim == 384 and encoder.max_tokens == 254 and encoder.backend == "openvino-int8"
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cosines = (torch_vecs * vecs).sum(axis=1)
    assert cosines[:-1].min() > 0.98 and cosines[-1] > 0.9, cosines
    assert np.allclose(encoder.encode(texts[::-1])[::-1], vecs, atol=1e-4)  # rows put back in order
    again = load_encoder("all-MiniLM-L6-v2", "openvino-int8", cache_dir=str(cache))
    assert "Quantizing" not in capsys.readouterr().err  # the cached model is reused
    assert np.allclose(again.encode(texts), vecs, atol=1e-5)


@pytest.mark.slow
@needs_openvino
def test_an_openvino_index_is_queried_on_openvino(cache: Path, tmp_path: Path, monkeypatch) -> None:
    from assistant.retrieve import Retriever
    from indexing.build import build_index
    from indexing.embed import resolve_backend

    monkeypatch.setenv("BOOKWORM_CACHE", str(cache))  # the quantized model above is reused
    corpus = tmp_path / "corpus"
    make_pdf(corpus / "lisp.pdf", [*filler("lisp", 2), PLANTED + " " + filler("lisp", 1)[0]])
    make_pdf(corpus / "shell.pdf", filler("shell"))
    index = tmp_path / "index"
    build_index(corpus, index, embed_backend="openvino-int8", workers=1, progress=False, log=lambda m: None)
    retriever = Retriever.load(index)
    assert retriever.manifest["embedder"]["backend"] == "openvino-int8"
    assert retriever.search("Which compiler emits zygomorphic bytecode?", 1)[0].chunk.file == "lisp.pdf"
    if resolve_backend("auto") == "openvino-int8":  # a CPU machine: "auto" means the index's backend
        log: list[str] = []
        build_index(corpus, index, embed_backend="auto", workers=1, progress=False, log=log.append)
        assert not any("embed backend" in m for m in log)  # nothing re-embedded


@pytest.mark.slow
@needs_openvino
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is read through Linux's libc")
def test_openvino_leaves_the_threads_signal_stack_alone(cache: Path) -> None:
    """OpenVINO's CPU plugin installs an alternate signal stack that is not the thread's to keep; a
    Ctrl-C delivered onto it later killed a fine-tune with a segmentation fault."""
    import ctypes

    from indexing.embed import load_encoder
    from indexing.openvino_embed import _StackT

    libc = ctypes.CDLL(None)

    def signal_stack() -> tuple:
        s = _StackT()
        libc.sigaltstack(None, ctypes.byref(s))
        return s.ss_sp, s.ss_flags, s.ss_size

    before = signal_stack()
    encoder = load_encoder("all-MiniLM-L6-v2", "openvino-int8", cache_dir=str(cache))
    encoder.encode(TEXTS)
    assert signal_stack() == before


@pytest.mark.parametrize(
    "backend, missing, says",
    [
        (
            "openvino-int8",
            "nncf",
            "needs openvino and nncf and onnx (nncf missing): pip install openvino nncf onnx",
        ),
        ("openvino-int8", "openvino", "(openvino missing)"),
        (
            "onnx-int8",
            "onnxruntime",
            "needs onnxruntime and onnx (onnxruntime missing): pip install 'bookworm[onnx]'",
        ),
    ],
)
def test_a_missing_package_is_named_with_its_install_command(monkeypatch, backend, missing, says) -> None:
    from core.errors import ConfigError
    from indexing.embed import load_encoder

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a)
    )
    with pytest.raises(ConfigError) as refused:
        load_encoder("all-MiniLM-L6-v2", backend)
    assert says in str(refused.value) and "--embed-backend torch" in str(refused.value)
