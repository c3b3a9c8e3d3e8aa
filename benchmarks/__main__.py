"""`make bench`: run the index, train and answer benchmarks, then one table of their ratios.

Each benchmark measures its own baseline in the same run and ends with a line
``ratio A/B: X.XX``; this runner only collects those lines. Run it alone: on 2 cores any
concurrent job distorts the timings.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from core.config import add_settings_args, settings_from_args

RATIO = re.compile(r"^ratio (?P<what>.+?): (?P<value>[0-9.]+|nan|inf)\s*$")

# (name, module, goal, what the ratio means)
BENCHES = [
    ("index", "benchmarks.bench_index", "< 0.10", "no-op rebuild / full build time (lower is better)"),
    ("train", "benchmarks.bench_train", ">= 3.00", "useful tokens/s, packed / padded to 512"),
    ("answer", "benchmarks.bench_answer", "<= 1.10", "assistant / plain model.generate time"),
]


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
    for name, module, goal, meaning in BENCHES:
        if args.only and name not in args.only:
            continue
        print(f"\n=== bench-{name}: python -m {module}", flush=True)
        t0 = time.time()
        match = None
        with subprocess.Popen(
            [sys.executable, "-m", module, *per_bench_args[name]], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # stream, so progress shows while it runs
                print(line, end="", flush=True)
                match = RATIO.match(line) or match
        value = match["value"] if match else "failed" if proc.returncode else "no ratio"
        rows.append((name, match["what"] if match else "-", value, goal, meaning, time.time() - t0))
    print("\n| bench | ratio | value | goal | meaning | seconds |\n|---|---|---|---|---|---|")
    for name, what, value, goal, meaning, secs in rows:
        print(f"| {name} | {what} | {value} | {goal} | {meaning} | {secs:.0f} |")
    return 0 if all(r[2] not in {"failed", "no ratio"} for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
