"""Text -> normalised vectors with sentence-transformers (the default model ships offline)."""

from __future__ import annotations

import importlib.util
from typing import Protocol

import numpy as np

from core.errors import ModelError
from core.hardware import cpu_int8_dot, cpu_supports_bf16, cuda_available
from core.sources import DEFAULT_EMBEDDER, embedder_id, embedder_path

# Chunks per encode() batch while building (the embed_batch_size setting's default). Small batches
# are faster on a CPU: a batch is padded to its longest text, and a small one's activations stay in
# the cache. On 2 cores (AVX-512 VNNI, no bf16), 900 book chunks: OpenVINO int8 89 chunks/s at 8,
# 83 at 16, 74 at 64, 69 at 128; torch fp32 52 at 8, 44 at 64. Full builds, same vectors: the four
# books 55.2 -> 47.0 s, the sample corpus 39.0 -> 33.2 s (64 -> 8). A GPU wants bigger batches.
EMBED_BATCH_SIZE = 8


class TextEncoder(Protocol):
    """What indexing needs from an embedder; tests pass small fakes with this shape."""

    name: str  # canonical id, recorded in the manifest
    dim: int
    max_tokens: int  # word-pieces of text that fit, special tokens excluded

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray: ...

    def count_tokens_many(self, texts: list[str]) -> list[int]: ...


def resolve_backend(backend: str, name: str = DEFAULT_EMBEDDER) -> str:
    """The backend "auto" stands for here: torch on a CUDA GPU; on a CPU with int8 dot-product
    instructions (VNNI), OpenVINO int8 for the default embedder where openvino and nncf are installed
    (~1.5x torch fp32 on 2 cores, same retrieval; see indexing.openvino_embed), else torch: without
    VNNI int8 is no faster (a full build took 1.07x torch's on AVX2-only cores). Where the CPU's flags
    cannot be read (not x86 Linux) OpenVINO is kept where installed. Other embedders stay on torch:
    the int8 recipe was checked on all-MiniLM-L6-v2 only. Other backend names are returned as they are."""
    if backend != "auto":
        return backend
    if cuda_available() or embedder_id(name) != embedder_id(DEFAULT_EMBEDDER):
        return "torch"
    return "openvino-int8" if openvino_installed() and cpu_int8_dot() is not False else "torch"


# what the OpenVINO backend imports (nncf only in its quantizing child process); its embedder refuses
# with the same list, so "auto" never picks a backend that would then refuse
OPENVINO_REQUIRES = ("openvino", "nncf", "onnx")


def openvino_installed() -> bool:
    """Whether the OpenVINO backend can run, without importing it (that takes ~1 s)."""
    return all(importlib.util.find_spec(m) is not None for m in OPENVINO_REQUIRES)


def load_encoder(
    name: str = DEFAULT_EMBEDDER,
    backend: str = "torch",
    batch_size: int = EMBED_BATCH_SIZE,
    cache_dir: str | None = None,
) -> TextEncoder:
    """The embedder ``name`` on ``backend``: "torch" (sentence-transformers), "onnx", "onnx-int8"
    (onnxruntime), "openvino-int8", or "auto" (:func:`resolve_backend`)."""
    backend = resolve_backend(backend, name)
    if backend == "torch":
        return Embedder(name, batch_size=batch_size)
    if backend == "openvino-int8":
        from indexing.openvino_embed import OpenVinoEmbedder

        return OpenVinoEmbedder(name, batch_size=batch_size, cache_dir=cache_dir)
    from indexing.onnx_embed import BACKENDS, OnnxEmbedder

    if backend not in BACKENDS:
        raise ModelError(f"unknown embed backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return OnnxEmbedder(name, int8=backend == "onnx-int8", batch_size=batch_size, cache_dir=cache_dir)


# Texts embedded after the build are short (queries, evidence and answer sentences, 5-60 words):
# a batch is padded to its longest text, so small batches waste less padding. 34 evidence
# sentences embedded in 150 ms at batch 8, 280 ms at 64 (2 cores).
QUERY_BATCH_SIZE = 8


def encoder_for_index(
    manifest: dict, cache_dir: str | None = None, batch_size: int = QUERY_BATCH_SIZE
) -> TextEncoder:
    """The embedder an index was built with, on the same backend: queries must be encoded as the
    chunks were (int8 vectors sit within cosine ~0.99 of fp32's, enough to move a ranking)."""
    embedder = manifest["embedder"]
    return load_encoder(
        embedder["name"], embedder.get("backend", "torch"), batch_size=batch_size, cache_dir=cache_dir
    )


class Embedder:
    """A sentence-transformers model.

    >>> e = Embedder("all-MiniLM-L6-v2")
    >>> e.encode(["how do I redirect stderr?"]).shape
    (1, 384)
    """

    def __init__(
        self,
        name: str = DEFAULT_EMBEDDER,
        batch_size: int = EMBED_BATCH_SIZE,
        device: str | None = None,
        bf16: bool | None = None,
    ):
        """``bf16``: encode under bf16 autocast; None = where the CPU has native bf16 (measured here:
        all-MiniLM-L6-v2 2.1x faster, cosine to the fp32 vectors >= 0.999, same dev-set retrieval)."""
        from sentence_transformers import SentenceTransformer

        self.name = embedder_id(name)
        self.backend = "torch"
        self.batch_size = batch_size
        try:
            self.model = SentenceTransformer(embedder_path(name), device=device)
        except (OSError, ValueError) as e:
            raise ModelError(
                f"could not load the embedder {name!r}: {e}. Use a local sentence-transformers folder, "
                f"or the default {DEFAULT_EMBEDDER} (works offline)."
            ) from e
        on_cpu = self.model.device.type == "cpu"
        self.bf16 = (on_cpu and cpu_supports_bf16()) if bf16 is None else bf16
        self.precision = "bf16-autocast" if self.bf16 else "fp32"
        self.dim = int(self.model.get_embedding_dimension())
        # max_seq_length counts [CLS] and [SEP] too
        n_special = len(self.model.tokenizer("")["input_ids"])
        self.max_tokens = int(self.model.max_seq_length) - n_special

    def count_tokens(self, text: str) -> int:
        return self.count_tokens_many([text])[0]

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = self.model.tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # no "longer than the maximum" warnings: counting is the point
        )["input_ids"]
        return [len(x) for x in ids]

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32, each row of length 1 (inner product = cosine)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        autocast = torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        with autocast:
            vecs = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        vecs = np.asarray(vecs, dtype=np.float32)
        # normalise in float32 after the cast back, so every row has length 1 to float32 precision
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vecs)
