"""The README stays true: every setting and every make target is documented there."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f.name
        for f in dataclasses.fields(Settings)
        if f"| `{f.name}` | `--{f.name.replace('_', '-')}` | `{f.default!r}` | {f.metadata['help']} |\n"
        not in readme
    ]
    assert not missing, (
        f"README's configuration table lacks or misstates (name, flag, default, help): {missing}"
    )


def test_readme_documents_every_make_target():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"^([a-z][a-z-]*):.*## ", (ROOT / "Makefile").read_text(), flags=re.M)
    assert len(targets) > 10
    missing = [t for t in targets if f"`make {t}`" not in readme]
    assert not missing, f"README lacks make targets: {missing}"


def test_readme_setup_is_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make demo", "make test"]
