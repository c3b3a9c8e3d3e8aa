"""What the page needs before it can chat: its flags, the status checks, and the shared assistant.

Each ``*_or_stop`` step shows a message and stops the page when it cannot go on: expected
situations (a bad flag, no index yet, no model yet) are messages, never stack traces.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import streamlit as st

from assistant import pipeline, status
from core.config import Settings, add_settings_args, settings_from_args, settings_in
from core.errors import BookwormError
from core.layout import IndexFiles, ModelFiles

# what `python -m assistant ask` takes, and the corpus folder the status check compares the index with
SETTINGS_FLAGS = (*settings_in("retrieval", "model", "answering"), "corpus_dir")


# --- settings -----------------------------------------------------------------------


def parse_settings(argv: list[str]) -> Settings:
    """The flags after ``--`` in ``streamlit run ui/app.py -- --index DIR``, as in the CLIs."""
    parser = argparse.ArgumentParser(prog="streamlit run ui/app.py --", add_help=False)
    add_settings_args(parser, *SETTINGS_FLAGS)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise BookwormError(f"unknown argument(s) after `--`: {' '.join(unknown)}\n\n{parser.format_usage()}")
    return settings_from_args(args)


def settings_or_stop(argv: list[str]) -> Settings:
    try:
        return parse_settings(argv)
    except BookwormError as e:
        st.error(str(e))
        st.stop()


# --- status -------------------------------------------------------------------------


def _with_target(message: str, target: str | None) -> str:
    """The problem's message, ending with the command that fixes it (e.g. `make index`)."""
    if target and target not in message:
        message += f" Run `{target}`."
    return message


@st.cache_data(ttl=30, show_spinner=False)
def check_status(index_dir: str, model_dir: str, corpus_dir: str, embedder: str) -> list[status.Problem]:
    """Cheap file checks, but the staleness check hashes the PDFs: once per 30 s, not per click."""
    return status.check(index_dir, model_dir, corpus_dir=corpus_dir, embedder=embedder)


def show_status_or_stop(settings: Settings) -> None:
    """Each problem with the command that fixes it; stops the page on an error (no index, ...)."""
    problems = check_status(settings.index_dir, settings.model_dir, settings.corpus_dir, settings.embedder)
    blocking = [p for p in problems if p.level == "error"]
    for p in blocking:
        st.info(_with_target(p.message, p.make_target), icon=":material/info:")
    if blocking:
        st.stop()
    for p in problems:
        show = st.warning if p.level == "warning" else st.info
        icon = ":material/warning:" if p.level == "warning" else ":material/info:"
        show(_with_target(p.message, p.make_target), icon=icon)


# --- the shared assistant -----------------------------------------------------------


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def artefact_stamp(settings: Settings) -> tuple[float, ...]:
    """Changes when `make index` or `make train` rewrites their manifests: the app then reloads."""
    model = ModelFiles(settings.model_dir)
    return _mtime(IndexFiles(settings.index_dir).manifest), _mtime(model.manifest), _mtime(model.config)


@st.cache_resource(show_spinner="Loading the model and the index (once)…", max_entries=1)
def load_assistant(settings: Settings, stamp: tuple[float, ...]) -> pipeline.Assistant:
    """One assistant shared by every session (it serialises generation itself).

    ``stamp`` is only part of the cache key: a rebuilt index or a new model replaces the old one.
    """
    # looked up on the module at call time, so the UI tests can swap in a fake Assistant
    return pipeline.Assistant.from_settings(settings, log_file=None)  # the app logs answers itself


def assistant_or_stop(settings: Settings) -> pipeline.Assistant:
    try:
        return load_assistant(settings, artefact_stamp(settings))
    except BookwormError as e:
        st.error(str(e))
        st.stop()
