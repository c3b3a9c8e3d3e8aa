"""`make bench`: run the index, train and answer benchmarks, then one table of their ratios.

Each benchmark measures its own baselines in the same run and prints lines
``ratio A/B: X.XX``; this runner collects every one into the table, with its goal. Run it
alone: on 2 cores any concurrent job distorts the timings.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from core.config import add_settings_args, settings_from_args

RATIO = re.compile(r"^ratio (?P<what>.+?): (?P<value>[0-9.]+|nan|inf)\s*$")

BENCHES = [
    ("index", "benchmarks.bench_index"),
    ("train", "benchmarks.bench_train"),
    ("answer", "benchmarks.bench_answer"),
]

# ratio printed (without the backend's name where it varies) -> (goal, what it means); a ratio not
# listed here still gets its row, with no goal
GOALS = {
    "no-op/full build": ("< 0.10", "no-op rebuild / full build time (lower is better)"),
    "full build/torch": ("<= 0.60", "full build time, the CPU's fast embed backend / torch"),
    "packed/padded useful tokens/s": (">= 3.00", "useful tokens/s, packed / padded to 512"),
    "model's first token, bf16/fp32 prompt matmuls": ("<= 0.70", "time to first token, bf16 / fp32 prompt"),
    "assistant/plain generate": ("<= 1.10", "assistant / plain model.generate time"),
}


def goal_of(what: str) -> tuple[str, str]:
    """The goal and meaning of a printed ratio ("full build openvino-int8/torch" -> the build row)."""
    key = re.sub(r"^full build \S+/torch$", "full build/torch", what)
    return GOALS.get(key, ("-", "-"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    add_settings_args(parser, "corpus_dir", "index_dir")
    parser.add_argument("--only", choices=[b[0] for b in BENCHES], action="append", help="run only these")
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    per_bench_args = {
        "index": ["--corpus", settings.corpus_dir],
        "train": ["--index", settings.index_dir],
        "answer": ["--index", settings.index_dir],
    }
    rows = []
    for name, module in BENCHES:
        if args.only and name not in args.only:
            continue
        print(f"\n=== bench-{name}: python -m {module}", flush=True)
        t0 = time.time()
        ratios: list[tuple[str, str]] = []
        with subprocess.Popen(
            [sys.executable, "-m", module, *per_bench_args[name]], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # stream, so progress shows while it runs
                print(line, end="", flush=True)
                if match := RATIO.match(line):
                    ratios.append((match["what"], match["value"]))
        secs = time.time() - t0
        if not ratios:
            ratios = [("-", "failed" if proc.returncode else "no ratio")]
        rows += [(name, what, value, *goal_of(what), secs) for what, value in ratios]
    print("\n| bench | ratio | value | goal | meaning | seconds |\n|---|---|---|---|---|---|")
    for name, what, value, goal, meaning, secs in rows:
        print(f"| {name} | {what} | {value} | {goal} | {meaning} | {secs:.0f} |")
    return 0 if all(r[2] not in {"failed", "no ratio"} for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
