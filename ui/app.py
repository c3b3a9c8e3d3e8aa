"""bookworm chat: ask computer-science questions of your own PDF books.

    streamlit run ui/app.py -- --index data/index --model models/finetuned

A thin edge over ``assistant``: it keeps the chat history, the sidebar's generation
settings and the 👍/👎 clicks; retrieval, prompting and generation live in ``assistant``.
The page reads top to bottom as the steps below; each part lives in the file named for it:
``startup`` (flags, status checks, the shared assistant), ``sidebar`` (model and index, preset
and parameters), ``chat_page`` and ``message_view`` (the Chat tab), ``model_tab`` (the Model tab).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

if __package__ in (None, ""):  # `streamlit run ui/app.py` puts ui/ on the path, not the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ui.chat_page import chat_page
from ui.model_tab import model_view
from ui.sidebar import sidebar_settings, sidebar_status
from ui.startup import assistant_or_stop, settings_or_stop, show_status_or_stop


def main() -> None:
    st.set_page_config(page_title="bookworm", page_icon="📚")
    st.title(":material/menu_book: bookworm")
    st.caption("Ask computer-science questions of your own books. Every answer lists the passages behind it.")
    settings = settings_or_stop(sys.argv[1:])
    show_status_or_stop(settings)
    bot = assistant_or_stop(settings)
    sidebar_status(bot)
    preset, params, k = sidebar_settings(settings)
    chat_tab, model_tab = st.tabs([":material/chat: Chat", ":material/monitoring: Model"])
    with model_tab:
        model_view(bot, settings.model_dir, settings.log_file)
    chat_page(chat_tab, bot, settings.log_file, preset, params, k)


main()
