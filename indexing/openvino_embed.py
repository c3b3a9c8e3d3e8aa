"""The embedder on OpenVINO with int8 weights *and* activations: the fastest backend measured on a CPU
without native bf16.

Measured on 384 sample-corpus body chunks, 2 cores with AVX-512 VNNI and no bf16, idle: torch fp32
41-43 chunks/s, onnxruntime int8 (dynamic, weights only) 39-41, OpenVINO fp32 45, **OpenVINO int8
(static, NNCF) 63-72** with the first layer in fp32 (80-87 with it in int8; see FIRST_LAYER_PATTERN),
at cosine to torch fp32 min 0.992, mean 0.996. Full builds of the sample corpus took 0.61-0.70x
torch's in the same run, with the same retrieval. Static quantization is what makes the
difference: activation ranges are fixed ahead of time, so every MatMul runs on VNNI int8 kernels
without quantizing its input at run time. onnxruntime's own static quantization of the same export
was slower (35 chunks/s) and less faithful (mean cosine 0.94).

Static quantization needs calibration text. It comes from ``calibration.txt`` beside this file (the
project's own documentation: technical prose with code, tables and numbers), not from the books being
indexed, so one quantized model serves every index and the same model is rebuilt on every machine.
Calibrating on sample-corpus chunks instead gave the same vectors to the third decimal (mean cosine
0.9961 vs 0.9955).

The fp32 ONNX export is :mod:`indexing.onnx_embed`'s; tokenisation, batching and pooling are the
ONNX embedder's too, only the runner differs. Quantizing takes ~20 s on 2 cores, once per model,
in a child process (cached beside the export, keyed by the calibration text, NNCF's version and
the layers kept in fp32).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_dir
from core.errors import ModelError
from indexing.embed import EMBED_BATCH_SIZE, OPENVINO_REQUIRES
from indexing.onnx_embed import OnnxEmbedder, exported, model_inputs

BACKEND = "openvino-int8"
CALIBRATION = Path(__file__).with_name("calibration.txt")
CALIBRATION_BATCH = 8  # texts per calibration batch; 54 paragraphs -> 7 batches
# The first layer's MatMuls stay fp32. With them in int8, repetitive text far from any calibration
# paragraph (dot leaders of a contents page: ". . . . 9 + + . . .") came out at cosine 0.50 to torch's
# vector; with them in fp32 the worst of 384 sample chunks is 0.946 and the mean 0.991, for ~13% of
# the embedding speed. Keeping only its attention or only its feed-forward in fp32 left 0.72-0.78. A name
# pattern of this module's own ONNX export (BERT-style encoders); other names match nothing.
FIRST_LAYER_PATTERN = r".*/layer\.0/.*MatMul.*"


def calibration_texts(path: Path | None = None) -> list[str]:
    """The calibration paragraphs: blank-line separated, whitespace collapsed, empty ones dropped."""
    path = path or CALIBRATION
    paragraphs = (" ".join(p.split()) for p in path.read_text(encoding="utf-8").split("\n\n"))
    return [p for p in paragraphs if p]


class OpenVinoEmbedder(OnnxEmbedder):
    """A :class:`~indexing.embed.TextEncoder` on OpenVINO's CPU plugin, int8 through NNCF."""

    def __init__(self, name: str, batch_size: int = EMBED_BATCH_SIZE, cache_dir: str | Path | None = None):
        super().__init__(name, int8=True, batch_size=batch_size, cache_dir=cache_dir)

    def _backend_name(self, int8: bool) -> str:
        return BACKEND

    REQUIRES = OPENVINO_REQUIRES
    INSTALL = "pip install openvino nncf onnx (bookworm's own dependencies)"

    def _open(self, folder: Path, int8: bool, cache_dir: str | Path | None) -> tuple[Any, list[str]]:
        import openvino as ov

        fp32 = exported(folder, int8=False, cache_dir=cache_dir)
        xml = self._quantized(fp32, folder)
        # LATENCY: one inference stream using every core. THROUGHPUT splits the cores into streams
        # that only pay off with several requests in flight; with one it ran at half the speed.
        with same_signal_stack():
            compiled = ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        names = [p.get_any_name() for p in compiled.inputs]
        return _Runner(compiled), names

    def _quantized(self, fp32: Path, folder: Path) -> Path:
        """The int8 OpenVINO model beside the fp32 export, made on first use."""
        from importlib.metadata import version

        recipe = CALIBRATION.read_bytes() + f"{version('nncf')}|{FIRST_LAYER_PATTERN}".encode()
        digest = hashlib.sha256(recipe).hexdigest()[:12]
        target = fp32.parent / f"openvino-int8-{digest}"
        if not (target / "model.xml").is_file():
            print("Quantizing the embedder to int8 for OpenVINO (once, ~20 s)...", file=sys.stderr)
            with atomic_dir(target) as tmp:
                _quantize_in_child(fp32, tmp / "model.xml", folder, self.max_length)
        return target / "model.xml"


def _quantize_in_child(fp32: Path, out: Path, folder: Path, max_length: int) -> None:
    """Run :func:`quantize` in a fresh Python process: NNCF (and the scipy and scikit-learn it
    imports), its progress bars on stdout and its calibration memory stay out of the process that
    goes on to build the index, train or answer."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    args = [
        sys.executable,
        "-m",
        "indexing.openvino_embed",
        str(fp32),
        str(out),
        str(folder),
        str(max_length),
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ModelError(f"quantizing the embedder for OpenVINO failed: {tail}; use --embed-backend torch")


def quantize(fp32: Path, out: Path, folder: Path, max_length: int) -> None:
    """Static int8 quantization of the fp32 export with NNCF, calibrated on ``calibration.txt``."""
    import nncf
    import openvino as ov
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = calibration_texts()
    batches = [
        model_inputs(tokenizer, texts[i : i + CALIBRATION_BATCH], max_length)
        for i in range(0, len(texts), CALIBRATION_BATCH)
    ]
    nncf.set_log_level(logging.ERROR)
    model = nncf.quantize(
        ov.Core().read_model(str(fp32)),
        nncf.Dataset(batches),
        model_type=nncf.ModelType.TRANSFORMER,  # keeps softmax, layer norm and GELU in fp32
        subset_size=len(batches),
        ignored_scope=nncf.IgnoredScope(patterns=[FIRST_LAYER_PATTERN], validate=False),
    )
    ov.save_model(model, str(out))


class _Runner:
    """onnxruntime's ``run(None, feed)`` over a compiled OpenVINO model, so encoding is shared."""

    def __init__(self, compiled: Any):
        self.request = compiled.create_infer_request()
        self.output = compiled.outputs[0]

    def run(self, _: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with same_signal_stack():
            return [self.request.infer(feed)[self.output]]


class _StackT(ctypes.Structure):  # struct stack_t of <signal.h> (Linux)
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def same_signal_stack() -> Iterator[None]:
    """Give the calling thread back its alternate signal stack after an OpenVINO call.

    OpenVINO's CPU plugin installs an alternate signal stack (``sigaltstack``) on the thread that
    compiles or runs a model, and that memory is not the thread's to keep. Python installs its
    signal handlers with SA_ONSTACK, so a later Ctrl-C was delivered onto that stack and the
    process died of a segmentation fault instead of raising KeyboardInterrupt: seen in the test
    suite, Ctrl-C during a fine-tune in a process that had embedded on OpenVINO. Linux only; a no-op
    where libc cannot be reached.
    """
    libc = _libc()
    if libc is None:
        yield
        return
    before = _StackT()
    libc.sigaltstack(None, ctypes.byref(before))
    try:
        yield
    finally:
        after = _StackT()
        libc.sigaltstack(None, ctypes.byref(after))
        if (after.ss_sp, after.ss_flags, after.ss_size) != (before.ss_sp, before.ss_flags, before.ss_size):
            if before.ss_flags & SS_DISABLE:
                before = _StackT(None, SS_DISABLE, 0)
            libc.sigaltstack(ctypes.byref(before), None)


SS_DISABLE = 2  # <signal.h>: no alternate stack


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


if __name__ == "__main__":  # the child process of _quantize_in_child
    quantize(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
