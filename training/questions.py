"""Questions with verbatim answers, made from the books' own structure (pure: no I/O, no model).

Two rules feed the answer-from-sources (RAFT-style) training examples:

- ``outline``: a section title from the PDF outline becomes a question ("Using Pipelines" ->
  "How do I use pipelines?"); the answer is the first sentences after that heading in the text.
- ``definition``: a defining sentence ("A shell function is a ...") gives "What is a shell
  function?", answered by that sentence (and the next one when it is short enough).

Every answer is 1-3 consecutive complete sentences cut from one body chunk's text, so the
trained model learns to quote its sources; ``QA.chunk_id`` names that oracle chunk. How a title
becomes a question is :mod:`training.titles`; what may be quoted, :mod:`training.answers`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from core.grounding.sentences import Span, content_words, split_sentences
from indexing.outline import OutlineEntry
from indexing.records import Chunk
from training.answers import (
    MAX_ANSWER_WORDS,
    NEW_HEADING,
    QA,
    extend_answer,
    good_sentence,
    is_complete,
    is_junk,
    n_words,
    norm_question,
)
from training.titles import (
    PREPOSITIONS,
    is_code_or_name,
    is_plural,
    is_question_title,
    proper_names,
    question_for_title,
    strip_label,
    word_set,
)

MAX_SKIPPED = 2  # sentences after a heading that may be furniture before the answer starts
DEFINITION_WORDS = (8, 60)  # a definition sentence's length, inclusive
STEM_LETTERS = 5  # "profiler" and "profiling", "pipeline" and "pipelines" share their first five


# ---------------------------------------------------------------------------------------------
# Outline questions


def outline_questions(outlines: Mapping[str, Sequence[OutlineEntry]], chunks: Sequence[Chunk]) -> list[QA]:
    """One question per outline entry whose heading is found in its page's body text.

    Args:
        outlines: file (``Chunk.file``, relative to the corpus) -> its outline entries.
        chunks: the index's chunks, in index order (neighbours in a file are consecutive).
    Returns:
        QAs in file-name order, then outline order; one per distinct question.
    """
    by_file: dict[str, list[Chunk]] = {}
    for c in chunks:
        if c.kind == "body":
            by_file.setdefault(c.file, []).append(c)
    names = proper_names(chunks)
    seen: set[str] = set()
    out: list[QA] = []
    for file in sorted(outlines):
        entries = outlines[file]
        file_chunks = by_file.get(file, [])
        headings = [" ".join(strip_label(e.title).split()) for e in entries]
        for entry in entries:
            question = question_for_title(entry.title, names)
            if question is None or norm_question(question) in seen:
                continue
            found = _section_answer(strip_label(entry.title), entry.page, file_chunks, headings)
            if found is None or not on_topic(entry.title, found[1]):
                continue
            seen.add(norm_question(question))
            out.append(QA("outline", question, found[0].chunk_id, found[1]))
    return out


def on_topic(title: str, answer: str) -> bool:
    """Does the section's opening speak of its title? A title that already is a question (an FAQ
    entry: "Can I ...?" -> "Yes, just about anywhere") is answered whatever its words.

    A section often opens with a remark about the chapter ("The discussion in this section is
    somewhat more technical", under "Scope") or a sub-heading's text ("All symbols are in the
    SB-POSIX package", under "Lisp names for C names"): 70 of the sample corpus's 654 outline
    answers share no word with their title. Trained on, they teach the model to cite a passage that
    does not answer the question (held-out citations 0.60 -> 0.75 with them left out).
    """
    text = strip_label(" ".join(title.split()))
    if is_question_title(text):
        return True
    return bool(_stems(text) & _stems(answer))


def _stems(text: str) -> set[str]:
    out = set()
    for word in content_words(text):
        for part in re.split(r"[-_.]", word):  # "fasl-format" speaks of "FASL format"
            if len(part) >= 3 and part.isalpha():
                out.add(part[:STEM_LETTERS])
    return out


def _title_pattern(title: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in title.split()]
    return re.compile(r"(?<![\w\[])" + r"\s+".join(words) + r"(?![\w\]])", re.I)


def _section_answer(
    title: str, page: int, file_chunks: Sequence[Chunk], headings: Sequence[str]
) -> tuple[Chunk, str] | None:
    """(chunk, answer) for the heading ``title`` on ``page``, or None.

    The title also occurs in running text and cross-references, so occurrences that look like a
    heading (a section number before it, the exact case, a sentence break before it) are tried first.
    """
    pattern = _title_pattern(title)
    candidates = []
    for i, chunk in enumerate(file_chunks):
        if not chunk.page_start <= page <= chunk.page_end:
            continue
        for m in pattern.finditer(chunk.text):
            before = chunk.text[max(0, m.start() - 12) : m.start()]
            numbered = bool(re.search(r"(?:^|\s)(?:\d+|[A-Z])(?:\.\d+)*\s+$", before))
            exact = m.group() == " ".join(m.group().split()) and m.group() == title
            at_break = m.start() == 0 or bool(re.search(r"[.!?:]['\"’”)]*\s+$", before))
            candidates.append(((not numbered, not exact, not at_break, i, m.start()), i, m.end()))
    for _, i, end in sorted(candidates):
        answer = _answer_after(file_chunks[i].text, end, headings)
        if answer is not None:
            return file_chunks[i], answer
        if i + 1 < len(file_chunks):  # heading at the chunk's end: its text starts the next chunk
            nxt = file_chunks[i + 1]
            m = pattern.search(nxt.text)
            if m is not None:
                answer = _answer_after(nxt.text, m.end(), headings)
                if answer is not None:
                    return nxt, answer
    return None


def _answer_after(text: str, pos: int, headings: Sequence[str]) -> str | None:
    """The first good sentences after ``pos`` (the end of a heading in ``text``), or None."""
    spans = [s for s in split_sentences(text) if s.end > pos]
    pieces: list[Span] = []
    for k, s in enumerate(spans):
        if s.start < pos:  # the heading's own "sentence": keep what follows the heading
            rest = text[pos : s.end]
            start = pos + len(rest) - len(rest.lstrip())
            s = Span(start, s.end, text[start : s.end])
        if k == 0:
            s = _skip_headings(s, text, headings)
        if s.text:
            pieces.append(s)
    for k, s in enumerate(pieces[: MAX_SKIPPED + 1]):
        if NEW_HEADING.match(s.text):
            return None  # the next section began: this one has no prose of its own here
        if good_sentence(s.text) and not _REFERS_BACK.match(s.text):
            return extend_answer(s, pieces[k + 1 :], text, headings)
    return None


# An answer must stand alone: "This is accomplished by ..." means nothing without the text before.
_REFERS_BACK = re.compile(r"^(?:It|They|That|Those|Such|Also|This is|These are|This was)\b")


def _skip_headings(s: Span, text: str, headings: Sequence[str]) -> Span:
    """Drop sub-headings that follow the heading ("1 Intro 1.1 The R environment R is ...")."""
    changed = True
    while changed:
        changed = False
        label = re.match(r"(?:\d+|[A-Z])(?:\.\d+)+\s+|\d+\s+", s.text)
        if label is None:  # a sub-heading has its number; "Shell functions are ..." is prose
            break
        body = s.text[label.end() :]
        for h in headings:
            if h and body.startswith(h + " ") and len(body) > len(h) + 1:
                start = s.end - len(body) + len(h) + 1
                s = Span(start, s.end, text[start : s.end])
                changed = True
                break
    return s


# ---------------------------------------------------------------------------------------------
# Definition questions

_TERM_TOKEN = r"[A-Za-z$`.][\w$`.'’()+\-/*<>=@%]*"
_TERM = rf"{_TERM_TOKEN}(?:\s+{_TERM_TOKEN}){{0,4}}"
_VERB = r"(?P<verb>is\s+(?=(?:a|an|the)\s)|are\s+|refers\s+to\s+|means\s+)"
_ANY_VERB = r"(?P<verb>is\s+|are\s+|refers\s+to\s+|means\s+)"  # "A <term> is ...", "The <term> is ..."
_ARTICLE_DEF = re.compile(rf"^(?P<article>A|An|The)\s+(?P<term>{_TERM}?)\s+{_ANY_VERB}(?P<rest>\S+)")
_PLAIN_DEF = re.compile(rf"^(?P<term>{_TERM}?)\s+{_VERB}(?P<rest>\S+)")
# Sentence openers that refer back or set a condition: "It is a ...", "If x is ..."
_NOT_TERM_START = word_set(
    """this it there that these those which here they we you he she its their our his her my your each
    every some any all both such one many most other another no none only also however thus so then now
    note see because since although while unless until after before once as in on for with if when where
    whether what who how why by at from to of and or but not first second finally example examples
    in other instead otherwise hence therefore usually often sometimes among like unlike besides beyond
    except including without through across around behind above below"""
)
_TERM_INNER_STOP = word_set(
    "that which who whose where when if there this these those it its their our your such"
)
_SUBORDINATORS = word_set(
    "if when where whether while because since unless that this it there so what how why"
)
# "The second component is ...", "The first two numbers are ...": a term that points elsewhere.
_VAGUE_TERM = word_set(
    """first second third fourth last final next previous following above below former latter primary
    main same other only rest remaining two three four result answer reason problem answer difference
    a an the"""
)
_TERM_STOP = word_set("is are was were be been being has have had can will would should may must not")
# After "are", words that make a statement about the term rather than define it ("are passed ...").
_NOT_DEFINING = (
    word_set(
        """not also now still then only always never usually often sometimes already given taken shown done
    seen written known available possible allowed ignored used set read made found both all each
    true false optional required ignored equivalent identical similar different"""
    )
    | PREPOSITIONS
)


def definition_questions(chunks: Sequence[Chunk]) -> list[QA]:
    """ "What is <term>?" for each defining sentence in body chunks; first occurrence wins."""
    names = proper_names(chunks)
    seen: set[str] = set()
    out: list[QA] = []
    for chunk in chunks:
        if chunk.kind != "body":
            continue
        spans = split_sentences(chunk.text)
        # A chunk can begin mid-sentence (a long sentence cut by the chunker; the overlap carries
        # whole sentences, so a whole first sentence is also in the previous chunk): skip it.
        for k in range(1, len(spans)):
            question = _definition_question(spans[k].text, names)
            if question is None or norm_question(question) in seen:
                continue
            seen.add(norm_question(question))
            answer = _extend_definition(spans[k], spans[k + 1 : k + 2], chunk.text)
            out.append(QA("definition", question, chunk.chunk_id, answer))
    return out


def _definition_question(sentence: str, names: Collection[str]) -> str | None:
    lo, hi = DEFINITION_WORDS
    if not lo <= n_words(sentence) <= hi or "[" in sentence or is_junk(sentence):
        return None
    if not is_complete(sentence):
        return None
    m = _ARTICLE_DEF.match(sentence) or _PLAIN_DEF.match(sentence)
    if m is None:
        return None
    article = m.groupdict().get("article")
    term_words = m.group("term").split()
    if not term_words or len(term_words) > 5 or not re.search(r"[A-Za-z]{2}", m.group("term")):
        return None
    if any(w.lower() in _TERM_STOP for w in term_words) or term_words[-1].lower() in PREPOSITIONS:
        return None
    first = (article or term_words[0]).lower()
    if first in _NOT_TERM_START or (article is None and term_words[0].lower() in {"a", "an", "the"}):
        return None
    if article is None and term_words[0].lower() in _NOT_TERM_START:
        return None
    if any(w.lower() in _VAGUE_TERM for w in term_words[1:] if article is None) or (
        article and any(w.lower() in _VAGUE_TERM for w in term_words)
    ):
        return None
    lowered = [w.lower() for w in term_words]
    if any(w in _TERM_INNER_STOP for w in lowered) or any(w in PREPOSITIONS and w != "of" for w in lowered):
        return None  # "A shell variable that ...", "Central to any language are ...": not a term
    verb = m.group("verb").split()[0]
    if (
        verb == "are"
        and article is None
        and not (is_plural(term_words[-1]) or is_code_or_name(term_words[-1]))
    ):
        return None  # "<singular> are ...": an inverted sentence, not a definition
    rest = m.group("rest").lower().strip(",.;:")
    if rest in _SUBORDINATORS or (rest.endswith("en") and rest != "open"):
        return None  # "is if ...", "is broken into ..."
    if article == "The" and len(term_words) == 1 and rest not in ("a", "an", "the"):
        return None  # "The size is large enough": which size? only a full definition stands alone
    if verb in ("is", "are") and (rest in _NOT_DEFINING or rest.endswith(("ed", "ly")) or rest in _TERM_STOP):
        return None  # "are passed by value", "is not": a statement about the term, not what it is
    if article is None and term_words[0][0].isupper() and _is_plain_capital(term_words[0], names):
        term_words[0] = term_words[0].lower()  # sentence-initial capital, not a name
    term = " ".join(term_words)
    if article:
        term = f"{article.lower()} {term}"
    return f"What {'are' if verb == 'are' else 'is'} {term}?"


def _is_plain_capital(word: str, names: Collection[str]) -> bool:
    """True for an ordinary word capitalised only because it starts the sentence."""
    return word not in names and not is_code_or_name(word) and len(word) > 1


def _extend_definition(first: Span, following: Sequence[Span], text: str) -> str:
    """The definition plus the next sentence when that one is prose and the whole stays short."""
    end = first.end
    for span in following:
        ok = good_sentence(span.text) and "[" not in span.text
        if ok and n_words(first.text) + n_words(span.text) <= MAX_ANSWER_WORDS:
            end = span.end
    return text[first.start : end]
