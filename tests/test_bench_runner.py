"""`make bench`'s table: every ratio a benchmark prints gets a row with its goal."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import RATIO, goal_of


@pytest.mark.parametrize(
    "line, what, goal",
    [
        ("ratio no-op/full build: 0.00\n", "no-op/full build", "< 0.10"),
        ("ratio full build openvino-int8/torch: 0.61\n", "full build openvino-int8/torch", "<= 0.60"),
        ("ratio full build onnx-int8/torch: 0.88\n", "full build onnx-int8/torch", "<= 0.60"),
        ("ratio packed/padded useful tokens/s: 3.46\n", "packed/padded useful tokens/s", ">= 3.00"),
        ("ratio model's first token, bf16/fp32 prompt matmuls: 0.66\n", None, "<= 0.70"),
        ("ratio assistant/plain generate: 1.02\n", "assistant/plain generate", "<= 1.10"),
        ("ratio something new/old: nan\n", "something new/old", "-"),  # still a row, no goal
    ],
)
def test_every_printed_ratio_gets_its_goal(line: str, what: str | None, goal: str) -> None:
    match = RATIO.match(line)
    assert match is not None
    assert what is None or match["what"] == what
    assert goal_of(match["what"])[0] == goal


def test_other_lines_are_not_ratios() -> None:
    assert RATIO.match("build   full (torch):   85.62 s\n") is None
