"""Pure scoring used by `make eval`."""

from __future__ import annotations

import math

import pytest

from benchmarks.metrics import percentile, token_f1


@pytest.mark.parametrize(
    ("pred", "ref", "f1"),
    [
        ("Use 2> file", "use 2> file", 1.0),
        ("The answer.", "answer", 1.0),  # articles and punctuation ignored
        ("", "", 1.0),
        ("something", "", 0.0),
        ("red blue", "green", 0.0),
        ("redirect stderr with 2>", "2> redirects stderr", 2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3)),
    ],
)
def test_token_f1(pred: str, ref: str, f1: float):
    assert token_f1(pred, ref) == pytest.approx(f1)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1, 2, 3, 4], 50, 2.5), ([5], 95, 5.0), ([1, 2, 3, 4, 5], 0, 1), ([1, 2, 3, 4, 5], 100, 5)],
)
def test_percentile(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_empty_is_nan():
    assert math.isnan(percentile([], 50))
