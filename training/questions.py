"""Questions with verbatim answers, made from the books' own structure (pure: no I/O, no model).

Two rules feed the answer-from-sources (RAFT-style) training examples:

- ``outline``: a section title from the PDF outline becomes a question ("Using Pipelines" ->
  "How do I use pipelines?"); the answer is the first sentences after that heading in the text.
- ``definition``: a defining sentence ("A shell function is a ...") gives "What is a shell
  function?", answered by that sentence (and the next one when it is short enough).

Every answer is 1-3 consecutive complete sentences cut from one body chunk's text, so the
trained model learns to quote its sources; ``QA.chunk_id`` names that oracle chunk.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence

from core.grounding.sentences import Span, content_words, split_sentences
from indexing.outline import OutlineEntry
from indexing.records import Chunk

MAX_ANSWER_WORDS = 60  # an answer is a short quote, not a page
MAX_ANSWER_SENTENCES = 3
MIN_SENTENCE_WORDS = 5  # shorter "sentences" are headings, labels or page furniture
MAX_TITLE_WORDS = 10  # longer outline titles are statements (FAQ lines), not topics
MAX_SKIPPED = 2  # sentences after a heading that may be furniture before the answer starts
MAX_NON_ALPHA = 0.30  # share of non-letters above which a sentence is code or a table
DEFINITION_WORDS = (8, 60)  # a definition sentence's length, inclusive
STEM_LETTERS = 5  # "profiler" and "profiling", "pipeline" and "pipelines" share their first five


@dataclasses.dataclass(frozen=True)
class QA:
    rule: str  # "outline" or "definition"
    question: str
    chunk_id: str  # the oracle chunk the answer is quoted from
    answer: str  # 1-3 consecutive complete sentences, a verbatim substring of that chunk's text


# ---------------------------------------------------------------------------------------------
# Titles -> questions


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Front/back matter and generic headings: no reader asks "What is preface?".
_NOT_TOPICS = _words(
    """index contents preface acknowledgements acknowledgments copying copyright license licence
    introduction overview summary foreword references bibliography credits appendix notes examples
    example miscellaneous glossary faq appendices"""
) | {
    "table of contents",
    "gnu free documentation license",
    "gnu general public license",
    "concept index",
    "about this document",
}
# A title whose head noun is one of these names a kind of section, not a topic.
_GENERIC_HEADS = _words("examples example notes preliminaries definitions definition details")
_QUESTION_START = re.compile(
    r"^(?:what|how|why|when|where|which|who|whom|whose|is|are|can|could|does|do|did|should|will|"
    r"would|was|were|has|have)\b",
    re.I,
)
# Section labels: "3.2.1 ", "A.1 ", "Chapter 4: ", "Appendix B ", "B " (a bare "A"/"I" is a word).
_LABEL = re.compile(
    r"^(?:(?:chapter|section|appendix|part)\s+(?:[A-Z]|\d+|[IVX]+)(?:\.\d+)*\.?\s*[:.\-–—]?\s*"
    r"|(?:\d+|[A-Z])(?:\.\d+)+\.?\s*[:.\-–—]?\s+"
    r"|\d+\.?\s*[:.\-–—]?\s+"
    r"|(?-i:[B-HJ-Z]\s+(?=[A-Z])|A\s+(?=(?:A|An|The)\s)))",
    re.I,
)
_FINITE_VERB = re.compile(
    r"\s(?:is|are|was|were|does|do|can|cannot|should|will|says|has|messes|need|needs|"
    r"isn't|aren't|doesn't|don't|won't|can't|isn’t|doesn’t|don’t|can’t)\s",
    re.I,
)
MAX_QUESTION_TITLE_WORDS = 16  # titles that already are questions (FAQ entries) may run longer
# "How" opens a question only before these: "How the Input Is Matched" is a topic, not a question.
_HOW_NEXT = _words("do does did can could is are should much many would will")
_PREPOSITIONS = _words("of for in on with to by from within as at via into under about between")
# -ing words that start noun phrases ("Debugging Options", "Missing values", "String operations"):
# reading them as verbs gives "How do I miss values?". Followed by a preposition they are verbs again
# ("Indexing by vectors" -> "How do I index by vectors?").
_NOMINAL_ING = _words(
    """debugging programming scanning matching parsing processing logging profiling editing naming
    quoting packaging threading networking looping rounding recycling missing trailing leading floating
    existing remaining following pending string thing nothing something everything anything during
    operating warning working"""
)
# Gerunds whose verb the spelling rules below get wrong or cannot decide.
_GERUND_TABLE = {
    "adding": "add",
    "changing": "change",
    "arranging": "arrange",
    "controlling": "control",
    "cancelling": "cancel",
    "labelling": "label",
    "modelling": "model",
    "deleting": "delete",
    "completing": "complete",
    "ignoring": "ignore",
    "restoring": "restore",
    "exploring": "explore",
    "monitoring": "monitor",
    "bringing": "bring",
    "hanging": "hang",
    "belonging": "belong",
}
_VOWELS = "aeiouy"
_UNDOUBLE = tuple(c + c for c in "bdgmnprt")  # running -> run; not ll/ss ("calling", "passing")
_E_ENDINGS = ("v", "z", "c", "rs", "ns", "ps", "ls", "rg", "dg", "at")  # saving, coercing, parsing, ...
_E_AFTER_VC = ("ok", "ud", "in", "il", "ar", "id", "ut", "ur", "ir", "ap", "ag")  # invoke, define, ...
_NO_E_AFTER_VC = ("it", "en", "er", "on", "el", "op", "ol", "om", "ow")  # edit, open, enter, develop


def verb_of_gerund(word: str) -> str | None:
    """The verb of an English -ing form ("using" -> "use", "running" -> "run"), or None when the
    spelling rules cannot tell (the caller then asks a "What is" question instead)."""
    w = word.lower()
    if w in _GERUND_TABLE:
        return _GERUND_TABLE[w]
    if not w.endswith("ing") or len(w) < 5 or not w.isalpha():
        return None
    stem = w[:-3]
    if not any(c in _VOWELS for c in stem):
        return None  # "string", "thing"
    if stem.endswith(_UNDOUBLE):
        return stem[:-1]
    if stem[-1] in "wxy":
        return stem  # showing, fixing, copying
    if stem.endswith(_E_ENDINGS) or (len(stem) > 2 and stem[-1] == "l" and stem[-2] not in _VOWELS + "l"):
        return stem + "e"  # saving, customizing, coercing, parsing, creating, handling, enabling
    last2 = stem[-2:]
    vowel_pair = len(stem) > 2 and stem[-2] in _VOWELS and stem[-3] in _VOWELS and stem[-4:-2] != "qu"
    if vowel_pair or (last2[0] not in _VOWELS and last2[1] not in _VOWELS):
        return stem  # loading, reading; printing, installing, searching
    # vowel + single consonant: "mak", "us", "edit", "invok"
    groups = len(re.findall(r"[aeiouy]+", stem.replace("qu", "q")))
    if groups == 1:
        return stem + "e"  # one syllable, consonant not doubled: the verb had a silent e (make, use)
    if stem.endswith(_E_AFTER_VC):
        return stem + "e"
    if stem.endswith(_NO_E_AFTER_VC):
        return stem
    return None


def _is_code_or_name(token: str) -> bool:
    """Tokens that keep their case: acronyms, identifiers, mixed case ("PostScript", "sb-alien")."""
    letters = [c for c in token if c.isalpha()]
    if not letters:
        return True
    if (
        "-" in token
        and re.fullmatch(r"[A-Za-z][a-z]*(?:-[A-Za-z][a-z]*)+", token)
        and len(token.split("-")[0]) > 1
    ):
        return False  # a hyphenated word in title case ("High-level", "Locale-Specific")
    if any(c.isdigit() or c in "_-$./()<>=:@%+#*^|" for c in token):
        return True
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return True
    return any(c.isupper() for c in token[1:])  # mixed case: "PostScript", "McIlroy"


def _lower_phrase(words: Sequence[str], names: Collection[str]) -> list[str]:
    """Lower-case title words except names (given) and code or acronym tokens."""
    out = []
    for w in words:
        if w in names or _is_code_or_name(w) or (len(w) == 1 and w.isupper() and w != "A"):
            out.append(w)
        else:
            out.append(w.lower())
    return out


def _is_plural(head: str) -> bool:
    h = head.lower()
    if not h.endswith("s") or len(h) < 3:
        return False
    if h in ("basics", "topics"):
        return True
    return not h.endswith(("ss", "us", "is", "ics", "news", "series", "'s", "’s"))


def strip_label(title: str) -> str:
    """The title without its section label ("3.2 Shell Functions" -> "Shell Functions")."""
    title = " ".join(title.split())
    stripped = _LABEL.sub("", title, count=1).strip()
    return stripped or title


def question_for_title(title: str, names: Collection[str] = frozenset()) -> str | None:
    """A question a reader would ask that the section titled ``title`` answers, or None.

    ``names``: words that keep their capital ("Bash"); title case hides which words are names
    (``proper_names`` finds them in the book text).
    """
    text = " ".join(title.split())
    if not text or re.fullmatch(r"(?:appendix|chapter|section|part)\s+\S+", text, re.I):
        return None
    text = strip_label(text)
    if len(text) <= 1 or not re.search(r"[A-Za-z]{2}", text):
        return None
    words = text.split()
    low = text.lower().rstrip("?.! ")
    if low in _NOT_TOPICS or re.search(r"\bindex\b", low) or len(words) > MAX_QUESTION_TITLE_WORDS:
        return None
    if re.match(r"how to\s", text, re.I):  # "How to Report Bugs" -> "How do I report bugs?"
        rest = _your_to_my(_lower_phrase(words[2:], names))
        return "How do I " + " ".join(rest).rstrip("?") + "?" if rest else None
    if _is_question_title(text):
        return text if text.endswith("?") else text.rstrip(".!:; ") + "?"
    if len(words) > MAX_TITLE_WORDS or words[0].lower() in {"how", "i", "we", "you", "my"}:
        return None  # a statement or a complaint ("I need to scan ...") rather than a topic
    if text.endswith((".", "!", "?")) or _FINITE_VERB.search(f" {text} "):
        return None  # a statement ("Memory leak - 16386 bytes allocated by malloc.")
    if re.search(r"[,;]|\.\s", text) or re.fullmatch(r"\S*[A-Za-z]\S*\d", text):
        return None  # lists of topics; placeholder labels ("deleteme00", "unnamed-faq-62")
    if ":" in text:  # "Repetitive execution: for loops, ..." -> its topic before the colon
        text = text.split(":", 1)[0].strip()
        words = text.split()
        if not words:
            return None
    verb_question = _gerund_question(words, names)
    if verb_question:
        return verb_question
    return _noun_question(words, names)


def _is_question_title(text: str) -> bool:
    """ "Can I include comments?", "How do I scan?" are questions; "How the Input Is Matched" is not."""
    words = text.split()
    if not words:
        return False
    how_ok = words[0].lower() != "how" or (len(words) > 1 and words[1].lower() in _HOW_NEXT)
    return bool(_QUESTION_START.match(text)) and how_ok


def _your_to_my(words: list[str]) -> list[str]:
    swap = {"your": "my", "yours": "mine", "you": "me", "yourself": "myself"}
    return [swap.get(w, w) for w in words]


def _gerund_question(words: Sequence[str], names: Collection[str]) -> str | None:
    """ "Using Pipelines" -> "How do I use pipelines?"; None unless it is clearly a verb phrase."""
    verbs: list[str] = []
    i = 0
    while i < len(words):  # "Getting and setting attributes": both gerunds become verbs
        w = words[i].lower()
        if not w.endswith("ing"):
            break
        nxt = words[i + 1].lower() if i + 1 < len(words) else ""
        if w in _NOMINAL_ING and nxt not in _PREPOSITIONS:
            return None
        if nxt == "of":
            return None  # "Handling of Types" is a noun phrase
        verb = verb_of_gerund(w)
        if verb is None:
            return None
        verbs.append(verb)
        i += 1
        if i < len(words) - 1 and words[i].lower() in ("and", "or") and words[i + 1].lower().endswith("ing"):
            verbs.append(words[i].lower())
            i += 1
            continue
        break
    if not verbs or i >= len(words):  # no gerund, or no object ("Starting and Stopping")
        return None
    rest = _your_to_my(_lower_phrase(words[i:], names))
    for k in range(1, len(rest) - 1):  # "Getting Support and Reporting Bugs": "... and report bugs"
        if rest[k - 1] in ("and", "or") and rest[k].endswith("ing") and rest[k] not in _NOMINAL_ING:
            rest[k] = verb_of_gerund(rest[k]) or rest[k]
    return "How do I " + " ".join(verbs + rest) + "?"


def _noun_question(words: Sequence[str], names: Collection[str]) -> str | None:
    """ "Shell Functions" -> "What are shell functions?"; "The Set Builtin" -> "What is the set builtin?"."""
    lowered = _lower_phrase(words, names)
    first_part: list[str] = []
    for w in lowered:
        if w.lower() in _PREPOSITIONS:
            break
        first_part.append(w)
    if not first_part:
        return None
    head = first_part[-1]
    if len(first_part) > 1 and head.lower().endswith(("able", "ible")):  # "Values Available"
        head = first_part[-2]
    if head.lower() in _GENERIC_HEADS:
        return None
    plural = _is_plural(head) or "and" in [w.lower() for w in first_part]
    articles = {"the", "a", "an"}
    if lowered[0].lower() in articles:
        lowered[0] = lowered[0].lower()
    elif len(first_part) < len(lowered) and lowered[len(first_part)].lower() == "of" and not plural:
        lowered = ["the", *lowered]  # "Format of the Input File" -> "the format of the input file"
    return f"What {'are' if plural else 'is'} {' '.join(lowered)}?"


_WORD_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_AFTER_LOWER_WORD = re.compile(r"\b[a-z][a-z]*,?\s+$")  # running prose, not a heading or a sentence start


def proper_names(chunks: Sequence[Chunk], min_count: int = 2) -> frozenset[str]:
    """Capitalised words the books write capitalised after a lower-case word ("run Bash with"),
    and seldom in lower case: those keep their capital in a question. Headings are title case
    and inline in the text, so a capital after a capital word says nothing."""
    capital: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for chunk in chunks:
        if chunk.kind != "body":
            continue
        text = chunk.text
        for m in _WORD_TOKEN.finditer(text):
            w = m.group()
            if w[0].islower():
                lower[w.lower()] += 1
            elif _AFTER_LOWER_WORD.search(text[max(0, m.start() - 20) : m.start()]) and not re.match(
                r"\s+\d", text[m.end() : m.end() + 2]
            ):  # "see Section 4.3": a cross-reference, not a name
                capital[w] += 1
    return frozenset(
        w for w, n in capital.items() if n >= min_count and n >= 3 * lower[w.lower()] and w[1:].islower()
    )


# ---------------------------------------------------------------------------------------------
# Sentences: what counts as a quotable one

_COMPLETE_END = re.compile(r"[.!?][\"'’”)\]]*$")
_COMPLETE_START = re.compile(r"^(?:[A-Z\"'‘“`$(]|[a-z]\w*[._$(-]\w)")  # or a code token: "read.table is"
_NEW_HEADING = re.compile(r"^\d+(?:\.\d+)*\s+[A-Z]")  # "1.3 R and statistics ...": the next section


def _n_words(text: str) -> int:
    return len(text.split())


def _is_junk(text: str) -> bool:
    """Code, tables, links: not prose a question can be answered with."""
    if "http" in text or "•" in text or re.search(r"\S@\S+\.\w", text):
        return True
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return True
    return sum(not c.isalpha() for c in chars) / len(chars) > MAX_NON_ALPHA


def _is_complete(text: str) -> bool:
    if re.search(r"\b[A-Z]\.$", text):
        return False  # "... designer, John M.": cut at an initial, not at a sentence end
    return bool(_COMPLETE_START.match(text) and _COMPLETE_END.search(text)) and not _NEW_HEADING.match(text)


def _good_sentence(text: str) -> bool:
    return _n_words(text) >= MIN_SENTENCE_WORDS and _is_complete(text) and not _is_junk(text)


def _extend(first: Span, following: Sequence[Span], text: str, headings: Sequence[str] = ()) -> str:
    """``first`` plus the consecutive good sentences after it, within the answer limits; a sentence
    that begins with another heading (the next section, or the next FAQ question) ends it."""
    end, words, n = first.end, _n_words(first.text), 1
    for span in following:
        if (
            n >= MAX_ANSWER_SENTENCES
            or not _good_sentence(span.text)
            or _starts_with_heading(span.text, headings)
        ):
            break
        if words + _n_words(span.text) > MAX_ANSWER_WORDS:
            break
        end, words, n = span.end, words + _n_words(span.text), n + 1
    return text[first.start : end]


def _starts_with_heading(sentence: str, headings: Sequence[str]) -> bool:
    low = " ".join(sentence.lower().split())
    return any(h and low.startswith(h.lower()) for h in headings)


def _norm_question(q: str) -> str:
    return " ".join(q.lower().rstrip("?").split())


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
            if question is None or _norm_question(question) in seen:
                continue
            found = _section_answer(strip_label(entry.title), entry.page, file_chunks, headings)
            if found is None or not on_topic(entry.title, found[1]):
                continue
            seen.add(_norm_question(question))
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
    if _is_question_title(text):
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
        if _NEW_HEADING.match(s.text):
            return None  # the next section began: this one has no prose of its own here
        if _good_sentence(s.text) and not _REFERS_BACK.match(s.text):
            return _extend(s, pieces[k + 1 :], text, headings)
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
_NOT_TERM_START = _words(
    """this it there that these those which here they we you he she its their our his her my your each
    every some any all both such one many most other another no none only also however thus so then now
    note see because since although while unless until after before once as in on for with if when where
    whether what who how why by at from to of and or but not first second finally example examples
    in other instead otherwise hence therefore usually often sometimes among like unlike besides beyond
    except including without through across around behind above below"""
)
_TERM_INNER_STOP = _words(
    "that which who whose where when if there this these those it its their our your such"
)
_SUBORDINATORS = _words("if when where whether while because since unless that this it there so what how why")
# "The second component is ...", "The first two numbers are ...": a term that points elsewhere.
_VAGUE_TERM = _words(
    """first second third fourth last final next previous following above below former latter primary
    main same other only rest remaining two three four result answer reason problem answer difference
    a an the"""
)
_TERM_STOP = _words("is are was were be been being has have had can will would should may must not")
# After "are", words that make a statement about the term rather than define it ("are passed ...").
_NOT_DEFINING = (
    _words(
        """not also now still then only always never usually often sometimes already given taken shown done
    seen written known available possible allowed ignored used set read made found both all each
    true false optional required ignored equivalent identical similar different"""
    )
    | _PREPOSITIONS
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
            if question is None or _norm_question(question) in seen:
                continue
            seen.add(_norm_question(question))
            answer = _extend_definition(spans[k], spans[k + 1 : k + 2], chunk.text)
            out.append(QA("definition", question, chunk.chunk_id, answer))
    return out


def _definition_question(sentence: str, names: Collection[str]) -> str | None:
    lo, hi = DEFINITION_WORDS
    if not lo <= _n_words(sentence) <= hi or "[" in sentence or _is_junk(sentence):
        return None
    if not _is_complete(sentence):
        return None
    m = _ARTICLE_DEF.match(sentence) or _PLAIN_DEF.match(sentence)
    if m is None:
        return None
    article = m.groupdict().get("article")
    term_words = m.group("term").split()
    if not term_words or len(term_words) > 5 or not re.search(r"[A-Za-z]{2}", m.group("term")):
        return None
    if any(w.lower() in _TERM_STOP for w in term_words) or term_words[-1].lower() in _PREPOSITIONS:
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
    if any(w in _TERM_INNER_STOP for w in lowered) or any(w in _PREPOSITIONS and w != "of" for w in lowered):
        return None  # "A shell variable that ...", "Central to any language are ...": not a term
    verb = m.group("verb").split()[0]
    if (
        verb == "are"
        and article is None
        and not (_is_plural(term_words[-1]) or _is_code_or_name(term_words[-1]))
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
    return word not in names and not _is_code_or_name(word) and len(word) > 1


def _extend_definition(first: Span, following: Sequence[Span], text: str) -> str:
    """The definition plus the next sentence when that one is prose and the whole stays short."""
    end = first.end
    for span in following:
        ok = _good_sentence(span.text) and "[" not in span.text
        if ok and _n_words(first.text) + _n_words(span.text) <= MAX_ANSWER_WORDS:
            end = span.end
    return text[first.start : end]
