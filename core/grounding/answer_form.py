"""Whether a sentence has the form of an answer to the question's kind (pure: no model).

Evidence is scored by what a sentence is about (cosine and question words), which ranks the
sentence that introduces a topic ("flex provides a mechanism for conditionally activating
rules.", "SBCL has the ability to save its state as a file") with the one that answers it. The
lead quote is the answer, so the order between them matters: a "How do I ..." question is
answered by a sentence that names what to type (``is.na(x)``, ``--script``, "the bg command"),
a "What is X?" question by one that says what X is ("Promise objects are part of R's lazy
evaluation mechanism.").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.grounding.sentences import content_words

# "How do I ...", "how can you ...", "how to ...": a way to do something. Not "How does flex choose
# a rule?" or "How are structs translated?", which ask how something works, in words.
_HOW = re.compile(r"^\s*how\s+(?:to\b|(?:do|can|could|should|would|may|might)\s+(?:i|you|we|one)\b)", re.I)
_WHAT = re.compile(r"^\s*what (?:is|are|does|do)\b", re.I)
# something to type: a call, an option, a dotted/colon/underscore identifier, a shell construct,
# or a named command, function, option, ...
_CODE = re.compile(
    r"\w\(|(?<![\w-])--?[a-z][\w-]*|(?<![\w@.])[a-z]\w*[.:_][a-z]\w*(?![\w@.])|[$%][({\w]|\{\w+\.\.|"
    r"\bthe\s+\S+\s+(?:command|function|option|builtin|statement|macro|directive|operator|keyword)\b",
    re.I,
)
# "X is a ...", "An X refers to ...": a subject of at most 6 words with no clause break, then a verb
# that defines ("B-Trees are to external memory searching what ..." is a comparison, not a definition)
_DEFINES = re.compile(
    r"^(?:(?:a|an|the)\s+)?((?:[^\s,;:]+\s+){0,5}?[^\s,;:]+)\s+"
    r"(?:(?:is|are)\s+(?:a|an|the|one|part|used|called|defined)|refers? to|means?|denotes?|stands? for)\b",
    re.I,
)


def question_kind(question: str) -> str:
    """ "how" (asks for a way to do something), "what" (asks what something is or does), or ""."""
    if _HOW.match(question):
        return "how"
    if _WHAT.match(question):
        return "what"
    return ""


def answer_forms(question: str, sentences: Sequence[str]) -> list[float]:
    """Per sentence, 1.0 when it has the form that answers ``question``'s kind, else 0.0; the
    question is read once for all of them (evidence scores up to 40 candidates per question).

    "how": the sentence names something to type that the question does not already hold;
    "what": the sentence opens by saying what the question's subject is: every word before its
    "is a", "refers to", ... is one of the question's ("The camlidl stub generator is invoked" is not
    about camlidl itself).
    """
    kind = question_kind(question)
    if kind == "how":
        asked = {m.group(0).lower() for m in _CODE.finditer(question)}
        return [float(any(m.group(0).lower() not in asked for m in _CODE.finditer(s))) for s in sentences]
    if kind == "what":
        words = set(content_words(question))
        return [float(_defines(s, words)) for s in sentences]
    return [0.0] * len(sentences)


def titled(question: str, headings: Sequence[str]) -> list[float]:
    """Per sentence, given the heading right above it ("" for none): 1.0 when ``question`` asks
    "What is X?" and the heading is X: all its words are the question's and they are at least half
    of them ("3.6.6 Here Documents" for "What is a here document in bash?"; not "3.6.7 Here
    Strings", nor "1.1 What is Bash?", which names only where the question is asked), or the heading
    is the synopsis of a command the question names (:func:`_synopsis_of`), else 0.0.

    A manual's section opens by saying what its title is, often without naming it again ("This
    type of redirection instructs the shell to read input ..."), while the next section may open
    with the very words of the question ("A variant of here documents, the format is ...") and
    read closer to it for the embedder. Only for "What is X?": a "How does X work?" question over
    a section titled X more often wants a sentence further down (for every kind, three more of the
    54 dev questions' leads changed, each to a lower F1)."""
    if question_kind(question) != "what":
        return [0.0] * len(headings)
    words = set(content_words(question))
    return [float(_names(heading, words) or _synopsis_of(heading, words)) for heading in headings]


def _synopsis_of(heading: str, question_words: set[str]) -> bool:
    """``heading`` is a definition's synopsis ("export [-fn] [-p] [name[=value]]": a command's name in
    lower case, then its options) of a command the question names ("What does the export builtin
    do?"): the sentence under it says what that command does, where the manual's lists of builtins
    ("The Bash exec builtin takes additional options ... the environment") say "builtin" and
    "environment" as often."""
    term, _, rest = heading.strip().partition(" ")
    return term[:1].islower() and rest[:1] in ("[", "-") and term.lower() in question_words


def _names(heading: str, question_words: set[str]) -> bool:
    """All of ``heading``'s words (section numbers aside) are among ``question_words``, and they
    are at least half of those."""
    words = {w for w in content_words(heading) if any(ch.isalpha() for ch in w)}
    return bool(words) and words <= question_words and 2 * len(words) >= len(question_words)


def _defines(sentence: str, question_words: set[str]) -> bool:
    m = _DEFINES.match(sentence.strip())
    subject = set(content_words(m.group(1))) if m else set()
    return bool(subject) and subject <= question_words
