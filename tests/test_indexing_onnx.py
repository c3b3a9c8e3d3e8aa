"""The ONNX embedder (onnxruntime, fp32 and int8) against sentence-transformers on the real MiniLM."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_pdf
from tests.test_indexing_build import PLANTED, filler

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
        reason="onnxruntime/onnx not installed (pip install 'bookworm[onnx]')",
    ),
]

TEXTS = [
    "Redirect standard error with 2> file.",
    "A pipeline connects the standard output of one command to the input of the next.",
    "lambda calculus",
    "A data frame is a list of variables of the same number of rows with unique row names.",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


# the export's known tracer warnings are silenced where it runs (a first `make demo` printed them
# as tracebacks); the first case exports into the fresh cache, so a new one fails here
@pytest.mark.filterwarnings("error::torch.jit.TracerWarning")
@pytest.mark.parametrize("backend, min_cosine", [("onnx", 0.9999), ("onnx-int8", 0.95)])
def test_onnx_vectors_agree_with_torch(cache: Path, backend: str, min_cosine: float) -> None:
    from indexing.embed import Embedder, load_encoder

    torch_vecs = Embedder("all-MiniLM-L6-v2", bf16=False).encode(TEXTS)
    onnx = load_encoder("all-MiniLM-L6-v2", backend, cache_dir=str(cache))
    vecs = onnx.encode(TEXTS)
    assert onnx.dim == 384 and onnx.max_tokens == 254 and onnx.backend == backend
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    cosines = (torch_vecs * vecs).sum(axis=1)
    assert cosines.min() > min_cosine, cosines
    # order-independent: encoding sorts by length internally and puts rows back
    assert np.allclose(onnx.encode(TEXTS[::-1])[::-1], vecs, atol=1e-5)
    assert onnx.count_tokens_many(TEXTS) == Embedder("all-MiniLM-L6-v2").count_tokens_many(TEXTS)


def test_an_int8_index_is_queried_on_int8(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.retrieve import Retriever
    from indexing.build import build_index

    monkeypatch.setenv("BOOKWORM_CACHE", str(cache))  # the export above is reused
    corpus = tmp_path / "corpus"
    make_pdf(corpus / "lisp.pdf", [*filler("lisp", 2), PLANTED + " " + filler("lisp", 1)[0]])
    make_pdf(corpus / "shell.pdf", filler("shell"))
    index = tmp_path / "index"
    log: list[str] = []
    build_index(corpus, index, embed_backend="onnx-int8", workers=1, progress=False, log=log.append)
    retriever = Retriever.load(index)
    assert retriever.manifest["embedder"]["backend"] == "onnx-int8"
    hits = retriever.search("Which compiler emits zygomorphic bytecode?", 1)
    assert hits[0].chunk.file == "lisp.pdf"
    build_index(corpus, index, embed_backend="torch", workers=1, progress=False, log=log.append)
    assert any("embed backend" in m for m in log)  # another backend: every file is embedded again
