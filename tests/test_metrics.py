"""Pure scoring used by `make eval`."""

from __future__ import annotations

import math

import pytest

from benchmarks.metrics import percentile, retrieval_metrics, token_f1


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Use 2> [1]. See [2, 3] and [1].", [1, 2, 3]), ("no citations", []), ("[10]", [10])],
)
def test_cited_numbers(text: str, expected: list[int]) -> None:
    from benchmarks.metrics import cited_numbers

    assert cited_numbers(text) == expected


@pytest.mark.parametrize(
    ("answerable", "unanswerable", "threshold", "accuracy"),
    [
        ([0.6, 0.7, 0.8], [0.2, 0.3], 0.6, 1.0),  # separable: the lowest score that keeps all answerable
        ([0.5, 0.7], [0.2, 0.6], 0.5, 0.75),  # overlap: best balanced accuracy, lowest threshold on ties
        ([0.5], [], 0.0, None),  # nothing to separate
    ],
)
def test_choose_threshold(answerable, unanswerable, threshold, accuracy) -> None:
    from benchmarks.metrics import choose_threshold

    t, acc = choose_threshold(answerable, unanswerable)
    assert t == pytest.approx(threshold)
    assert (acc != acc) if accuracy is None else acc == pytest.approx(accuracy)


@pytest.mark.parametrize(
    ("ranked", "gold", "expected"),
    [
        ([[("x/a.pdf", [3])]], [("a.pdf", [3])], {"hit@1": 1.0, "hit@3": 1.0, "hit@5": 1.0, "mrr@5": 1.0}),
        (
            [[("b.pdf", [3]), ("a.pdf", [2]), ("a.pdf", [4, 5])]],
            [("a.pdf", [5])],
            {"hit@1": 0.0, "hit@3": 1.0, "hit@5": 1.0, "mrr@5": 1 / 3},
        ),
        (
            [[("a.pdf", [1])], [("b.pdf", [9])]],
            [("a.pdf", [1]), ("b.pdf", [8])],
            {"hit@1": 0.5, "hit@3": 0.5, "hit@5": 0.5, "mrr@5": 0.5},
        ),
    ],
)
def test_retrieval_metrics(ranked, gold, expected) -> None:
    assert retrieval_metrics(ranked, gold) == pytest.approx(expected)
