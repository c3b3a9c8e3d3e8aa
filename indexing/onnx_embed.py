"""The embedder through onnxruntime, optionally with int8 weights: an option to measure per CPU.

Measured on 512 sample-corpus chunks, 2 cores with native bf16: torch fp32 28 chunks/s, torch
under bf16 autocast 50 (the default there), onnxruntime fp32 27, onnxruntime int8 49, at vectors
within cosine 0.96-1.00 of fp32's (mean 0.99). On 2 cores that lack bf16 (AVX-512 VNNI, 384
chunks) torch fp32 was the fastest: 43.5 chunks/s against onnxruntime int8's 40.7 and fp32's 28.2.
So int8 helps only where torch's own fp32 kernels are slow; ``make bench-index`` tells.

Why not sentence-transformers' own ``backend="onnx"``: it runs through optimum-onnx, whose only
release pins transformers < 4.58, and bookworm needs transformers 5. This module does the same
two steps itself: ``torch.onnx.export`` of the transformer, then onnxruntime's dynamic int8
quantization, once per model (cached under the cache folder); pooling and normalisation follow
the model's own sentence-transformers configuration (mean or CLS pooling).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_dir
from core.errors import ConfigError, ModelError
from core.sources import cache_root, embedder_id, embedder_path
from indexing.embed import EMBED_BATCH_SIZE

BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino-int8")  # the embed_backend setting
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_folder(name: str) -> Path:
    """A local sentence-transformers folder for ``name`` (the packaged default, a folder, the hub cache)."""
    path = Path(embedder_path(name))
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name))
    except Exception as e:  # offline and not cached, unknown id, ...
        raise ModelError(f"could not find the embedder {name!r} locally for ONNX export: {e}") from e


def pooling_of(folder: Path) -> tuple[str, bool]:
    """("mean" or "cls", normalise?) from the folder's modules.json and pooling config."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return "mean", True
    modules = json.loads(modules_file.read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
    extra = set(kinds) - {"Transformer", "Pooling", "Normalize"}
    if pooling is None or extra:
        raise ConfigError(
            f"{folder}: the ONNX embedder supports Transformer + Pooling (+ Normalize) models, not {kinds}; "
            "use --embed-backend torch"
        )
    config = json.loads((folder / pooling["path"] / "config.json").read_text())
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean", "Normalize" in kinds
    if modes == ["pooling_mode_cls_token"]:
        return "cls", "Normalize" in kinds
    raise ConfigError(
        f"{folder}: pooling {modes} is not supported by the ONNX embedder; use --embed-backend torch"
    )


def exported(folder: Path, int8: bool, cache_dir: str | Path | None = None) -> Path:
    """The model's ONNX file (int8: dynamically quantized), exported on first use and cached by the
    weights file's path, size and mtime, so another model or new weights never reuse a stale export
    (and loading never reads the weights just to find the cache)."""
    weights = next(
        (folder / f for f in ("model.safetensors", "pytorch_model.bin") if (folder / f).is_file()), None
    )
    if weights is None:
        raise ModelError(f"{folder}: no model.safetensors or pytorch_model.bin to export")
    stat = weights.stat()
    digest = hashlib.sha256(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[
        :16
    ]
    target = cache_root(cache_dir) / "onnx" / f"{folder.name}-{digest}"
    if not (target / "model.onnx").is_file():
        with atomic_dir(target) as tmp:
            _export(folder, tmp / "model.onnx")
    if not int8:
        return target / "model.onnx"
    out = target / "model_int8.onnx"
    if not out.is_file():  # quantized on first use: the OpenVINO backend reads the fp32 file only
        partial = target / f"model_int8.onnx.{os.getpid()}.tmp"
        _quantize(target / "model.onnx", partial)
        os.replace(partial, out)
    return out


def _export(folder: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    sample = tokenizer(
        ["a sample sentence", "another one, a little longer"], padding=True, return_tensors="pt"
    )
    names = [k for k in INPUTS if k in sample]

    class LastHiddenState(torch.nn.Module):  # keyword arguments: transformers 5 reordered forward's
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, args, strict=True))).last_hidden_state

    axes = {k: {0: "batch", 1: "tokens"} for k in [*names, "last_hidden_state"]}
    # The tracer warns that masking's Python branches become constants and that opset 17 builds
    # advanced indexing from several operators: both hold for every batch shape of this encoder (a
    # test compares the exported vectors with torch's), and on a first `make demo` they were the
    # only tracebacks a user saw.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator", category=UserWarning)
        torch.onnx.export(
            LastHiddenState(), tuple(sample[k] for k in names), str(out), input_names=names,
            output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs "consider pre-processing" advice on the root logger
    try:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


class OnnxEmbedder:
    """A :class:`~indexing.embed.TextEncoder` on onnxruntime (``int8``: quantized weights)."""

    def __init__(
        self,
        name: str,
        int8: bool = True,
        batch_size: int = EMBED_BATCH_SIZE,
        cache_dir: str | Path | None = None,
    ):
        from transformers import AutoTokenizer

        self.backend = self.precision = self._backend_name(int8)
        self._check_installed()
        folder = model_folder(name)
        self.name = embedder_id(name)
        self.batch_size = batch_size
        self.pooling, self.normalize = pooling_of(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        config_file = folder / "sentence_bert_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.max_length = int(config.get("max_seq_length") or self.tokenizer.model_max_length)
        self.max_tokens = self.max_length - len(self.tokenizer("")["input_ids"])
        self.session, self.inputs = self._open(folder, int8, cache_dir)
        self.dim = int(self.encode(["dimension probe"]).shape[1])

    def _backend_name(self, int8: bool) -> str:
        return "onnx-int8" if int8 else "onnx"

    # what the backend imports, and how to get it
    REQUIRES: tuple[str, ...] = ("onnxruntime", "onnx")
    INSTALL = "pip install 'bookworm[onnx]'"

    def _check_installed(self) -> None:
        """Refuse with the install command before any export; find_spec imports nothing."""
        import importlib.util

        if missing := [m for m in self.REQUIRES if importlib.util.find_spec(m) is None]:
            raise ConfigError(
                f"embed_backend {self.backend} needs {' and '.join(self.REQUIRES)} ({', '.join(missing)} "
                f"missing): {self.INSTALL}, or use --embed-backend torch"
            )

    def _open(self, folder: Path, int8: bool, cache_dir: str | Path | None) -> tuple[Any, list[str]]:
        """A runner with onnxruntime's ``run(None, feed) -> [last_hidden_state]``, and its input names."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        path = exported(folder, int8, cache_dir)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return session, [i.name for i in session.get_inputs()]

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32 rows of length 1, like :meth:`indexing.embed.Embedder.encode`."""
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths pad less
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for start in _batches(len(texts), self.batch_size, progress):
            rows = order[start : start + self.batch_size]
            vecs = self._encode_batch([texts[i] for i in rows])
            for i, v in zip(rows, vecs, strict=True):
                out[i] = v
        vecs = np.stack(out).astype(np.float32)
        if self.normalize:
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vecs)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        batch = model_inputs(self.tokenizer, texts, self.max_length)
        feed = {k: batch[k] for k in self.inputs}
        hidden = self.session.run(None, feed)[0]
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)


def model_inputs(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """The exported model's inputs for ``texts``, padded to the longest: the encoder's batches and
    the OpenVINO calibration batches are made by this one call."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {k: batch[k].astype(np.int64) for k in INPUTS if k in batch}


def _batches(n: int, size: int, progress: bool) -> Any:
    starts = range(0, n, size)
    if not progress:
        return starts
    import sys

    from tqdm.auto import tqdm

    return tqdm(starts, desc="Batches", file=sys.stderr)
