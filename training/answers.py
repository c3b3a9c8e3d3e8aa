"""What a verbatim answer is: the QA record and the sentences that may be quoted as one (pure).

Every answer is 1-3 consecutive complete sentences cut from one body chunk's text, so the trained
model learns to quote its sources; code, tables, links and fragments are never quoted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from core.grounding.sentences import Span

MAX_ANSWER_WORDS = 60  # an answer is a short quote, not a page
MAX_ANSWER_SENTENCES = 3
MIN_SENTENCE_WORDS = 5  # shorter "sentences" are headings, labels or page furniture
MAX_NON_ALPHA = 0.30  # share of non-letters above which a sentence is code or a table


@dataclasses.dataclass(frozen=True)
class QA:
    rule: str  # "outline" or "definition"
    question: str
    chunk_id: str  # the oracle chunk the answer is quoted from
    answer: str  # 1-3 consecutive complete sentences, a verbatim substring of that chunk's text


_COMPLETE_END = re.compile(r"[.!?][\"'’”)\]]*$")
_COMPLETE_START = re.compile(r"^(?:[A-Z\"'‘“`$(]|[a-z]\w*[._$(-]\w)")  # or a code token: "read.table is"
NEW_HEADING = re.compile(r"^\d+(?:\.\d+)*\s+[A-Z]")  # "1.3 R and statistics ...": the next section


def n_words(text: str) -> int:
    return len(text.split())


def is_junk(text: str) -> bool:
    """Code, tables, links: not prose a question can be answered with."""
    if "http" in text or "•" in text or re.search(r"\S@\S+\.\w", text):
        return True
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return True
    return sum(not c.isalpha() for c in chars) / len(chars) > MAX_NON_ALPHA


def is_complete(text: str) -> bool:
    if re.search(r"\b[A-Z]\.$", text):
        return False  # "... designer, John M.": cut at an initial, not at a sentence end
    return bool(_COMPLETE_START.match(text) and _COMPLETE_END.search(text)) and not NEW_HEADING.match(text)


def good_sentence(text: str) -> bool:
    return n_words(text) >= MIN_SENTENCE_WORDS and is_complete(text) and not is_junk(text)


def extend_answer(first: Span, following: Sequence[Span], text: str, headings: Sequence[str] = ()) -> str:
    """``first`` plus the consecutive good sentences after it, within the answer limits; a sentence
    that begins with another heading (the next section, or the next FAQ question) ends it."""
    end, words, n = first.end, n_words(first.text), 1
    for span in following:
        if (
            n >= MAX_ANSWER_SENTENCES
            or not good_sentence(span.text)
            or _starts_with_heading(span.text, headings)
        ):
            break
        if words + n_words(span.text) > MAX_ANSWER_WORDS:
            break
        end, words, n = span.end, words + n_words(span.text), n + 1
    return text[first.start : end]


def _starts_with_heading(sentence: str, headings: Sequence[str]) -> bool:
    low = " ".join(sentence.lower().split())
    return any(h and low.startswith(h.lower()) for h in headings)


def norm_question(q: str) -> str:
    return " ".join(q.lower().rstrip("?").split())
