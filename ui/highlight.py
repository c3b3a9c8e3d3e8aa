"""Markdown for a retrieved passage with the question's words highlighted (pure, no Streamlit)."""

from __future__ import annotations

import re

# Words too common to be worth highlighting in a passage.
_STOP = """a about an and are as at be but by can could do does did for from had has have how i if in
into is it its me my not of on or should so than that the their them then there these they this
to was we what when where which who why will with would you your use using used way ways"""
STOPWORDS = frozenset(_STOP.split())

_WORD = re.compile(r"[A-Za-z0-9_]+")
# Everything CommonMark lets us escape, plus "$" (Streamlit renders $...$ as LaTeX) and ":" (emoji codes).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:&])")


def question_terms(question: str) -> list[str]:
    """Lower-cased stems of the question's content words, longest first.

    A stem is the word less a short suffix, so "redirect" also marks "redirection".
    """
    stems = set()
    for word in _WORD.findall(question.lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        stems.add(word[: max(4, len(word) - 2)] if len(word) > 5 else word)
    return sorted(stems, key=lambda s: (-len(s), s))


def escape_markdown(text: str) -> str:
    """Text shown literally in markdown: markdown, LaTeX and emoji codes escaped."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def highlight(text: str, question: str, style: str = ":orange-background[{}]") -> str:
    """Markdown of ``text`` with each word that starts with a question term wrapped in ``style``.

    Whitespace is collapsed: PDF line breaks and indents would otherwise become markdown structure.
    """
    terms = question_terms(question)
    text = " ".join(text.split())
    if not terms:
        return escape_markdown(text)
    out, last = [], 0
    for m in _WORD.finditer(text):
        if any(m.group().lower().startswith(t) for t in terms):
            out.append(escape_markdown(text[last : m.start()]))
            out.append(style.format(escape_markdown(m.group())))
            last = m.end()
    out.append(escape_markdown(text[last:]))
    return "".join(out)


class DollarEscaper:
    """Escape ``$`` outside code spans, piece by piece, so streamed text renders as it will later.

    Streamlit renders ``$...$`` as LaTeX, which mangles shell answers (``$HOME``); inside backticks
    a ``$`` is literal already. Each backtick flips the state, so a ``` fence flips it once.
    """

    def __init__(self) -> None:
        self.in_code = False

    def feed(self, piece: str) -> str:
        out = []
        for ch in piece:
            if ch == "`":
                self.in_code = not self.in_code
            elif ch == "$" and not self.in_code:
                out.append("\\")
            out.append(ch)
        return "".join(out)


def answer_markdown(text: str) -> str:
    """An answer (or question) as markdown: as written, except ``$`` outside code is literal."""
    return DollarEscaper().feed(text)


def mark_evidence(
    text: str, spans: list[tuple[int, int]], question: str, style: str = ":green-background[{}]"
) -> str:
    """Markdown of a passage with its evidence sentences (``text[start:end]``) in ``style`` and the
    question's words highlighted elsewhere, so a reader finds the quoted sentence in its context.

    The passage's line breaks (a chunk keeps them only after a heading or a paragraph) stay line
    breaks, so "8.3 on.exit" shows as the heading it is, not as the first words of a sentence."""
    spans = sorted(spans)
    lines = []
    for line in re.finditer(r"[^\n]+", text):
        a, b = line.start(), line.end()
        inside = [(max(s, a), min(e, b)) for s, e in spans if s < b and e > a and 0 <= s < e <= len(text)]
        rendered = _mark_line(text, a, b, inside, question, style)
        if rendered:
            lines.append(rendered)
    return "  \n".join(lines)  # two spaces: a markdown hard line break


def _mark_line(text: str, a: int, b: int, spans: list[tuple[int, int]], question: str, style: str) -> str:
    """``text[a:b]`` (one line) as markdown, ``spans`` (inside it, sorted) in ``style``."""
    out, last = [], a
    for start, end in spans:
        if start < last:
            continue  # overlapping span: leave that text as it is
        out.append(highlight(text[last:start], question))
        out.append(style.format(escape_markdown(" ".join(text[start:end].split()))))
        last = end
    out.append(highlight(text[last:b], question))
    return " ".join(part.strip() for part in out if part.strip())


UNSUPPORTED_BADGE = ":red-badge[not found in your books]"


def mark_unsupported(text: str, unsupported: list[str], badge: str = UNSUPPORTED_BADGE) -> str:
    """The answer as markdown with a badge after each sentence the support check did not find
    in the passages (the sentences are exact substrings of ``text``)."""
    md, pos = [], 0
    for sentence in unsupported:
        at = text.find(sentence, pos)
        if at < 0:
            continue
        end = at + len(sentence)
        md.append(text[pos:end] + " " + badge)
        pos = end
    md.append(text[pos:])
    return answer_markdown("".join(md))
