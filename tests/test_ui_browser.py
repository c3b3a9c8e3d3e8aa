"""One real-browser check: `streamlit run` headless, driven by Debian's chromium through Playwright.

The app serves a real tiny index (one generated PDF, the offline MiniLM embedder) and the tiny
GPT-2 fixture, passed after ``--`` as a user would. Set ``BOOKWORM_SCREENSHOT=docs/screenshot.png``
to keep the screenshot.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.bench_browser import WATCH, free_port, serve
from tests import ui_support

tiny_index, tiny_lm = ui_support.tiny_index, ui_support.tiny_lm  # session fixtures

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"
    ),
]


def ask_in_browser(
    url: str, question: str, screenshot: Path, timeout_ms: int = 60_000, height: int = 1000
) -> tuple[str, str, dict[str, float]]:
    """Open the app, ask, wait for the answer's sources, screenshot; returns the sources' text,
    the whole answer message's text (evidence, answer, sources), and when (ms after the Enter key,
    noted in the page as `make bench-browser` notes them) the question, the evidence and the
    finished answer appeared."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.goto(url)
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=timeout_ms)
            page.evaluate(WATCH)
            box.fill(question)
            box.press("Enter")
            # the answer's expander (the sidebar's parameter help mentions "sources" too)
            answer = page.get_by_test_id("stChatMessage").nth(1)
            sources = answer.get_by_test_id("stExpander").filter(has_text="Sources (")
            sources.first.wait_for(timeout=timeout_ms)
            sources.first.locator("summary").click()  # open it, so the screenshot shows the passages
            sources.first.get_by_test_id("stMarkdownContainer").last.wait_for(timeout=timeout_ms)
            page.wait_for_timeout(600)  # let the expander's opening animation finish
            # the chat sticks to its end; scroll up like a user until the question is at the top
            question_box = page.get_by_test_id("stChatMessage").nth(-2).bounding_box()
            if question_box and question_box["y"] < 80:
                page.mouse.move(700, 500)
                page.mouse.wheel(0, question_box["y"] - 80)
                page.wait_for_timeout(500)
            page.get_by_test_id("stFeedback").first.wait_for(timeout=timeout_ms)
            text = sources.first.inner_text()
            message = page.get_by_test_id("stChatMessage").last.inner_text()
            page.screenshot(path=str(screenshot))  # the viewport: Streamlit scrolls inside it
            return text, message, page.evaluate("() => window.__bench")
        finally:
            browser.close()


def test_browser_question_shows_answer_and_sources(tiny_index, tiny_lm, tmp_path):
    port = free_port()
    args = [
        "--index",
        str(tiny_index),
        "--model",
        str(tiny_lm),
        "--corpus",
        str(tiny_index.parent / "corpus"),
        "--log-file",
        str(tmp_path / "answers.jsonl"),
        "--preset", "creative",  # streams; no copy_boost, so the random tiny model makes things up
    ]  # fmt: skip
    proc = serve(args, port, tmp_path / "streamlit.log", timeout_s=30)
    try:
        shot = tmp_path / "screenshot.png"
        question = "How do I redirect stderr to a file?"
        sources, message, shown = ask_in_browser(f"http://127.0.0.1:{port}/", question, shot)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "bashref.pdf p" in sources, (tmp_path / "streamlit.log").read_text()
    # the books' sentences come first, then the tiny random model's answer, whose made-up
    # sentences the support check marks
    assert message.index("From your books") < message.index("Sources"), message
    assert "not found in your books" in message, message
    # in the page's own clock: the question, then the evidence, then the finished answer
    assert 0 < shown["question"] <= shown["evidence"] <= shown["done"], shown
    assert shot.stat().st_size > 10_000
    if keep := os.environ.get("BOOKWORM_SCREENSHOT"):
        shutil.copy(shot, ROOT / keep)


if __name__ == "__main__":  # re-take the README screenshot from a running `make app`:
    # .venv/bin/python -m tests.test_ui_browser http://localhost:8501 docs/screenshot.png
    url, out = sys.argv[1], Path(sys.argv[2])
    question = sys.argv[3] if len(sys.argv) > 3 else "How do I redirect stderr to a file in bash?"
    print(ask_in_browser(url, question, out, timeout_ms=600_000, height=1350)[1][:600])
