"""The HNSW recall benchmark's corpus-like vectors: grown from real rows, never from zero rows."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_index import corpus_like

DIM = 64


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("zero_share", [0.0, 0.5, 0.9])
def test_copies_come_from_real_rows_only(zero_share: float) -> None:
    # two real directions, padded with zero rows as the store holds contents and index chunks
    rng = np.random.default_rng(1)
    a, b = _unit(rng.normal(size=DIM)), _unit(rng.normal(size=DIM))
    n_zero = int(100 * zero_share)
    base = np.vstack(
        [np.tile(a, (50 - n_zero // 2, 1)), np.tile(b, (50 - n_zero // 2, 1)), np.zeros((n_zero, DIM))]
    )
    vecs = corpus_like(base.astype(np.float32), 500, np.random.default_rng(0))
    assert vecs.shape == (500, DIM) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    # each copy sits near one of the two directions (noise as large as the vector: cosine ~0.7);
    # a copy of a zero row would be pure noise, at cosine ~0 to both
    nearest = np.maximum(vecs @ a, vecs @ b)
    assert nearest.min() > 0.4
    assert 0.6 < np.median(nearest) < 0.8


def test_batch_sizes_alternate_and_the_encoders_own_size_is_restored(capsys) -> None:
    from benchmarks.bench_index import bench_batch_sizes

    class Fake:
        batch_size = 8

        def __init__(self) -> None:
            self.seen: list[int] = []

        def encode(self, texts: list[str]) -> np.ndarray:
            self.seen.append(self.batch_size)
            return np.zeros((len(texts), 4), dtype=np.float32)

    fake = Fake()
    bench_batch_sizes(fake, "fake", ["a chunk"] * 16, (8, 64), rounds=2)
    assert fake.seen == [8, 64, 8, 64] and fake.batch_size == 8
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("embed   fake batch 8 / 64: ") and out[1].startswith(
        "ratio chunks/s batch 8/64: "
    )
