"""Section titles -> the questions a reader would ask ("Using Pipelines" -> "How do I use pipelines?").

Pure: no I/O, no model. Title case hides which words are names, so :func:`proper_names` reads them
from the book text, and phrases keep code tokens and acronyms as written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence

from indexing.records import Chunk

MAX_TITLE_WORDS = 10  # longer outline titles are statements (FAQ lines), not topics


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Front/back matter and generic headings: no reader asks "What is preface?".
_NOT_TOPICS = word_set(
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
_GENERIC_HEADS = word_set("examples example notes preliminaries definitions definition details")
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
_HOW_NEXT = word_set("do does did can could is are should much many would will")
PREPOSITIONS = word_set("of for in on with to by from within as at via into under about between")
# -ing words that start noun phrases ("Debugging Options", "Missing values", "String operations"):
# reading them as verbs gives "How do I miss values?". Followed by a preposition they are verbs again
# ("Indexing by vectors" -> "How do I index by vectors?").
_NOMINAL_ING = word_set(
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


def is_code_or_name(token: str) -> bool:
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
        if w in names or is_code_or_name(w) or (len(w) == 1 and w.isupper() and w != "A"):
            out.append(w)
        else:
            out.append(w.lower())
    return out


def is_plural(head: str) -> bool:
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
    if is_question_title(text):
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


def is_question_title(text: str) -> bool:
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
        if w in _NOMINAL_ING and nxt not in PREPOSITIONS:
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
        if w.lower() in PREPOSITIONS:
            break
        first_part.append(w)
    if not first_part:
        return None
    head = first_part[-1]
    if len(first_part) > 1 and head.lower().endswith(("able", "ible")):  # "Values Available"
        head = first_part[-2]
    if head.lower() in _GENERIC_HEADS:
        return None
    plural = is_plural(head) or "and" in [w.lower() for w in first_part]
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
