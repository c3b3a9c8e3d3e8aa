"""`make bench-browser`: what a person at the chat sees, timed inside a real browser.

Serves the chat (`streamlit run ui/app.py`) on the given index and model, asks questions in
Chromium through Playwright, and times in the page itself (``performance.now()`` from the Enter
key, a MutationObserver noting each change) when the question appears, when the evidence ("From
your books") appears, and when the answer is done (its meta line). Polling from the test driver
would add its own delay to every figure. The server's own timings (first answer text) come from
the answer log, so the two can be told apart: what is left is Streamlit's delivery and the
browser's drawing, both on the same cores as the model.

Run it alone: the browser, the server and the model share the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from assistant.monitor import read_log
from benchmarks.dev_set import read_dev_questions

ROOT = Path(__file__).resolve().parents[1]

# In the page: times since the Enter key, noted by a MutationObserver as the chat changes.
WATCH = """() => {
  const chat = () => document.querySelectorAll('[data-testid="stChatMessage"]');
  const n0 = chat().length, t = {};
  window.__bench = t;
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter' && !t.enter) t.enter = performance.now();
  }, true);
  new MutationObserver(() => {
    if (!t.enter) return;
    const now = performance.now(), msgs = chat();
    if (!t.question && msgs.length > n0) t.question = now - t.enter;
    const answer = msgs.length >= n0 + 2 ? msgs[msgs.length - 1].innerText : '';
    if (!t.evidence && /From your books|do not seem to cover/.test(answer)) t.evidence = now - t.enter;
    if (!t.done && /done after|tok\\/s/.test(answer)) t.done = now - t.enter;
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app_args: list[str], port: int, log: Path, timeout_s: float = 120.0) -> subprocess.Popen:
    """``streamlit run ui/app.py -- APP_ARGS`` on 127.0.0.1:PORT, its output in ``log``; returns once
    it answers its health check (the browser test serves the app the same way)."""
    cmd = [
        str(Path(sys.executable).parent / "streamlit"),
        "run",
        str(ROOT / "ui" / "app.py"),
        "--server.headless=true",
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--",
        *app_args,
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"streamlit did not start in {timeout_s:.0f} s: {log.read_text()}")


def ask_all(url: str, questions: list[str], chromium: str, timeout_s: float) -> list[dict[str, float]]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url, timeout=timeout_s * 1000)
        for q in questions:
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=timeout_s * 1000)  # the first page waits for the model to load
            time.sleep(1.0)  # the previous answer's extras settle: each question starts from a still page
            page.evaluate(WATCH)
            box.fill(q)
            box.press("Enter")
            page.wait_for_function("() => window.__bench.done", timeout=timeout_s * 1000)
            times.append(page.evaluate("() => window.__bench"))
        browser.close()
    return times


def server_ttft(log_file: str) -> list[float]:
    """First answer text (ms) per answer, as the server logged it."""
    rows = read_log(log_file)
    return [r["ttft_ms"] for r in rows if r.get("type") == "answer" and r.get("ttft_ms") is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_browser", description=__doc__)
    parser.add_argument("--index", default="data/index")
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--questions", default="data/dev_questions.jsonl", help="dev-set JSONL")
    parser.add_argument("--n", type=int, default=6, help="questions asked (the first N)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a page or answer")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"bench-browser: no Chromium at {args.chromium} (apt-get install chromium)", file=sys.stderr)
        return 2
    questions = [q.question for q in read_dev_questions(args.questions)][: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        log_file = os.path.join(tmp, "answers.jsonl")
        port = free_port()
        app_args = ["--index", args.index, "--model", args.model, "--log-file", log_file]
        proc = serve(app_args, port, Path(tmp) / "server.log")
        try:
            times = ask_all(f"http://127.0.0.1:{port}", questions, args.chromium, args.timeout)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        ttft = server_ttft(log_file)
    report(questions, times, ttft)
    return 0


def report(questions: list[str], times: list[dict[str, float]], ttft: list[float]) -> None:
    print(f"{'question':48s} {'shown':>7s} {'evidence':>9s} {'server':>7s} {'done':>7s}  (ms after Enter)")
    for q, t, s in zip(questions, times, ttft + [float("nan")] * len(times), strict=False):
        print(f"{q[:48]:48s} {t['question']:7.0f} {t['evidence']:9.0f} {s:7.0f} {t['done']:7.0f}")
    for name in ("question", "evidence", "done"):
        xs = [t[name] for t in times]
        print(f"{name:9s} p50 {statistics.median(xs):6.0f} ms   max {max(xs):6.0f} ms")
    if ttft:
        print(f"server's first answer text p50 {statistics.median(ttft):.0f} ms (the answer log)")


if __name__ == "__main__":
    raise SystemExit(main())
