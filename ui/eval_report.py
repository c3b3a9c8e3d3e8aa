"""The newest `make eval` report (reports/eval-<date>.md), cut into markdown and chart parts.

Streamlit's markdown cannot load a relative image, so charts are shown with st.image.
"""

from __future__ import annotations

import re
from pathlib import Path

_IMAGE = re.compile(r"^!\[[^\]]*\]\(([^)\s]+)\)\s*$", re.M)


def latest_report(reports_dir: str | Path) -> Path | None:
    """The newest ``eval-YYYY-MM-DD.md`` (by name, then time written), or None."""
    reports = sorted(Path(reports_dir).glob("eval-*.md"), key=lambda p: (p.name, p.stat().st_mtime))
    return reports[-1] if reports else None


def split_report(text: str) -> list[tuple[str, str]]:
    """``[("md", text), ("image", "eval-...png"), ...]`` in order; empty text parts dropped."""
    parts: list[tuple[str, str]] = []
    last = 0
    for m in _IMAGE.finditer(text):
        parts.append(("md", text[last : m.start()]))
        parts.append(("image", m.group(1)))
        last = m.end()
    parts.append(("md", text[last:]))
    return [(kind, value.strip() if kind == "md" else value) for kind, value in parts if value.strip()]
