"""What to search for when a question leans on the one before it ("How do I declare one?").

Retrieval reads only the question, and the prompt keeps no earlier turns by default (a 135M model
copies them), so a follow-up would be searched on its own words: "How do I declare one?" finds
whatever declares anything. A question that reads as a follow-up is searched together with the
previous one; a question that stands alone is searched as it is, so changing the subject costs
nothing. Pure: word lists only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.grounding.sentences import content_words

# words that point back at something said before; "that" is left out: it is mostly a relative
# pronoun ("the option that ..."), which a question that stands alone uses all the time
ANAPHORS = frozenset({"it", "its", "they", "them", "their", "this", "these", "those", "one", "ones"})
MAX_CONTENT_WORDS = 4  # a longer question with "it" names its subject itself ("... continue it in bash?")
_OPENERS = re.compile(r"^\s*(and|also|what about|how about|and what about)\b", re.I)
_WORDS = re.compile(r"[a-z']+")


def is_follow_up(question: str) -> bool:
    """``question`` refers back (a pronoun and few words of its own, or "And ..."/"What about ...")."""
    if _OPENERS.match(question):
        return True
    words = set(_WORDS.findall(question.lower()))
    return bool(words & ANAPHORS) and len(content_words(question)) <= MAX_CONTENT_WORDS


def search_query(question: str, earlier: Sequence[str] = ()) -> str:
    """What retrieval and evidence selection read for ``question``, asked after the questions
    ``earlier`` (oldest first): the question itself, or, for a follow-up, the query of the one
    before it and the question, so a chain of follow-ups keeps its subject."""
    if not earlier or not is_follow_up(question):
        return question
    return f"{search_query(earlier[-1], earlier[:-1])} {question}"
