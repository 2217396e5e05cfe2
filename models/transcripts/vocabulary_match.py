"""Find vocabulary phrases in transcript text and replace them with their DisplayAs.

Pure logic, no PyFlink. Text is split into words: runs of letters, combining marks and digits
of any script (so a Devanagari vowel sign stays inside its word), compared NFC-normalised and
case-folded. Replacements cover whole words only (never part of a longer word); punctuation
and spacing around them are kept; the words of one match are separated by whitespace only.

Each entry gives one or two *forms*: the Phrase's words and, when present, the SoundsLike
pieces. Starting at a word, a form matches

1. *whole*: the word is the form written together (``newdelhi`` for New-Delhi);
2. *word by word*: the next n words are the form's n words, the first within its own
   tolerance (that is how candidates are found);
3. *run together*: 2 or more words written together spell the form written together and the
   first of them, at least 3 characters long, starts that spelling exactly (``connot place``
   for SoundsLike con-not-place);

each within the form's tolerated edit distance. Distances count edits of grapheme clusters
(a cluster misspelled, missing or added is one edit: a lost vowel sign in दिल्ली → दल्ली costs 1). The
tolerance grows with the form's length in code points (0 up to 3, 1 up to 7, 2 beyond), so
short words never drift. The closest match wins, then the longest; matches do not overlap.

``VocabularyMatcher`` finds candidates through indexes (grapheme deletions, exact prefixes)
memoised per word; ``NaiveMatcher`` tries every form at every word and gives the same result.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, field

import regex
from rapidfuzz.distance import Levenshtein

from models.transcripts.vocabulary import VocabularyEntry, normalize

WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*")
GRAPHEME = regex.compile(r"\X")
MAX_DISTANCE = 2


MIN_RUN_PREFIX = 3


@functools.lru_cache(maxsize=65536)
def graphemes(text: str) -> tuple[str, ...]:
    return tuple(text) if text.isascii() else tuple(GRAPHEME.findall(text))


def allowed_distance(spelling: str) -> int:
    """Edits tolerated for a form spelled ``spelling`` (normalised, written together)."""
    n = len(spelling)
    return 0 if n <= 3 else 1 if n <= 7 else MAX_DISTANCE


def distance(a: str, b: str, cutoff: int) -> int:
    """Grapheme-cluster edit distance, or ``cutoff + 1`` when above ``cutoff``."""
    if a.isascii() and b.isascii():
        return Levenshtein.distance(a, b, score_cutoff=cutoff)
    return Levenshtein.distance(graphemes(a), graphemes(b), score_cutoff=cutoff)


def _deletions(text: str, k: int) -> set[str]:
    """``text`` with every choice of up to ``k`` (<= 2) grapheme clusters removed."""
    g = graphemes(text)
    out = {text}
    if k >= 1:
        ones = [g[:i] + g[i + 1:] for i in range(len(g))]
        out.update("".join(t) for t in ones)
        if k >= 2:
            for t in ones:
                out.update("".join(t[:i] + t[i + 1:]) for i in range(len(t)))
    return out


@dataclass(frozen=True)
class Form:
    """One spelling of an entry: Phrase words or SoundsLike pieces, normalised; ``limit`` is
    the tolerance of the whole spelling, ``first_limit`` that of its first word alone."""

    entry: VocabularyEntry
    rule: str  # "phrase" or "sounds_like"
    words: tuple[str, ...]
    joined: str
    limit: int
    first_limit: int


@dataclass(frozen=True)
class Replacement:
    start: int  # character offsets in the (NFC) text
    end: int
    original: str
    replacement: str
    phrase: str
    rule: str  # phrase | phrase_near | sounds_like | sounds_like_near
    distance: int

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "original": self.original,
                "replacement": self.replacement, "phrase": self.phrase, "rule": self.rule,
                "distance": self.distance}


def make_forms(entries: list[VocabularyEntry]) -> list[Form]:
    forms = []
    for e in entries:
        spellings = [("phrase", e.phrase.split("-"))]
        if e.sounds_like:
            spellings.append(("sounds_like", list(e.sounds_like)))
        for rule, parts in spellings:
            words = tuple(normalize(w) for w in parts)
            joined = "".join(words)
            limit = allowed_distance(joined)
            forms.append(Form(e, rule, words, joined, limit,
                              min(limit, allowed_distance(words[0]))))
    return forms


Token = tuple[int, int, str]  # start, end, normalised word
_NONE: tuple[set[int], set[int], set[int]] = (set(), set(), set())


@dataclass
class VocabularyMatcher:
    entries: list[VocabularyEntry]
    memo_size: int = 200_000
    forms: list[Form] = field(init=False)

    def __post_init__(self) -> None:
        self.forms = make_forms(self.entries)
        self._whole: dict[str, list[int]] = {}
        self._first: dict[str, list[int]] = {}
        self._prefix: dict[str, list[int]] = {}
        for i, f in enumerate(self.forms):
            for key in _deletions(f.joined, f.limit):
                self._whole.setdefault(key, []).append(i)
            if len(f.words) > 1:
                for key in _deletions(f.words[0], f.first_limit):
                    self._first.setdefault(key, []).append(i)
            for n in range(MIN_RUN_PREFIX, len(f.joined)):
                self._prefix.setdefault(f.joined[:n], []).append(i)
        self._memo: dict[str, tuple[set[int], set[int], set[int]]] = {}
        # No form is within MAX_DISTANCE of a word longer than this (in grapheme clusters):
        # such a word is not looked up, so its cost stays linear in its length (a word's
        # deletions are quadratic in number and each as long as the word).
        self.longest = max((len(graphemes(f.joined)) for f in self.forms), default=0)

    def candidates(self, word: str) -> tuple[set[int], set[int], set[int]]:
        """Forms that may match starting at ``word``: (whole, word by word, run together)."""
        hit = self._memo.get(word)
        if hit is None:
            if len(word) > self.longest + MAX_DISTANCE and (
                    len(graphemes(word)) > self.longest + MAX_DISTANCE):
                return _NONE
            if len(self._memo) >= self.memo_size:
                self._memo.clear()
            keys = _deletions(word, MAX_DISTANCE)
            hit = self._memo[word] = (
                {i for k in keys for i in self._whole.get(k, ())},
                {i for k in keys for i in self._first.get(k, ())},
                set(self._prefix.get(word, ())),
            )
        return hit

    def match_at(self, tokens: list[Token], i: int, text: str) -> tuple[int, Form, int] | None:
        """Best (words used, form, distance) starting at token ``i``: closest, then longest."""
        whole, by_word, run = self.candidates(tokens[i][2])
        best: tuple[int, int, int] | None = None  # (-distance, words, -form index)

        def consider(n: int, d: int, k: int) -> None:
            nonlocal best
            if d <= self.forms[k].limit and (best is None or (-d, n, -k) > best):
                best = (-d, n, -k)

        def spaced(n: int) -> bool:  # the n words from i are separated by whitespace only
            return all(not text[tokens[j][1]:tokens[j + 1][0]].strip()
                       for j in range(i, i + n - 1))

        word = tokens[i][2]
        for k in whole:
            consider(1, distance(word, self.forms[k].joined, self.forms[k].limit), k)
        for k in by_word:
            f = self.forms[k]
            n = len(f.words)
            if i + n > len(tokens) or not spaced(n):
                continue
            if distance(word, f.words[0], f.first_limit) > f.first_limit:
                continue
            d = sum(distance(tokens[i + j][2], w, f.limit) for j, w in enumerate(f.words))
            consider(n, d, k)
        for k in run:
            f = self.forms[k]
            joined = word
            for n in range(2, len(tokens) - i + 1):
                if not spaced(n):
                    break
                joined += tokens[i + n - 1][2]
                if len(joined) > len(f.joined) + f.limit:
                    break
                consider(n, distance(joined, f.joined, f.limit), k)
        if best is None:
            return None
        neg_d, n, neg_k = best
        return n, self.forms[-neg_k], -neg_d

    def find(self, text: str) -> list[Replacement]:
        """Non-overlapping matches, left to right."""
        text = unicodedata.normalize("NFC", text)
        tokens = [(m.start(), m.end(), normalize(m.group())) for m in WORD.finditer(text)]
        out: list[Replacement] = []
        i = 0
        while i < len(tokens):
            match = self.match_at(tokens, i, text)
            if match is None:
                i += 1
                continue
            n, form, d = match
            start, end = tokens[i][0], tokens[i + n - 1][1]
            out.append(Replacement(start, end, text[start:end], form.entry.display,
                                   form.entry.phrase, form.rule if d == 0 else f"{form.rule}_near",
                                   d))
            i += n
        return out

    def apply(self, text: str) -> tuple[str, list[Replacement]]:
        """The corrected text (NFC) and what was replaced."""
        text = unicodedata.normalize("NFC", text)
        found = self.find(text)
        pieces, last = [], 0
        for r in found:
            pieces += [text[last:r.start], r.replacement]
            last = r.end
        pieces.append(text[last:])
        return "".join(pieces), found


class NaiveMatcher(VocabularyMatcher):
    """The baseline: every form is tried at every word (same rules; no index, no memo)."""

    def candidates(self, word: str) -> tuple[set[int], set[int], set[int]]:
        every = range(len(self.forms))
        return (
            set(every),
            {k for k in every if len(self.forms[k].words) > 1},
            {k for k in every if self.forms[k].joined.startswith(word)
             and MIN_RUN_PREFIX <= len(word) < len(self.forms[k].joined)},
        )
