"""Custom vocabularies: loading the four-column table and matching phrases in transcripts.

Pure logic, no PyFlink. The table is tab-separated with the header
``Phrase  IPA  SoundsLike  DisplayAs``:

- ``Phrase`` is required; words of a multi-word phrase are joined by hyphens, never spaces.
- ``IPA`` and ``SoundsLike`` are optional and exclusive. ``SoundsLike`` is hyphen-separated
  pieces (``dil-lee``). IPA is kept for recognisers that decode with it; text matching here uses
  the Phrase and SoundsLike spellings only (turning IPA into spellings needs a G2P model).
- ``DisplayAs`` is what replaces a match; empty means the Phrase with its hyphens as spaces.

Matching works on word tokens (letters, combining marks and digits of any script, NFC-normalised
and case-folded), so a phrase never matches inside a longer word and punctuation around words
is kept. A window of consecutive words (separated by whitespace only) matches a form when its
words written together are within a small edit distance of the form written together: exact
first, else near-miss, where the allowed distance grows with the form's length in graphemes
(0 up to 3, 1 up to 7, 2 beyond), so a missing vowel sign in a Devanagari place name is found
but short words never drift. Candidates are found through a deletion index (all spellings
with up to the allowed number of characters removed), not by trying every phrase everywhere.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import regex
from rapidfuzz.distance import Levenshtein

HEADER = ("Phrase", "IPA", "SoundsLike", "DisplayAs")
WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*")
GRAPHEME = regex.compile(r"\X")
PHRASE_CHARS = regex.compile(r"^[\p{L}\p{M}\p{N}'’.]+(?:-[\p{L}\p{M}\p{N}'’.]+)*$")


class VocabularyError(ValueError):
    """Every bad row of a vocabulary file, each with its line number and reason."""

    def __init__(self, source: str, problems: list[tuple[int, str]]):
        self.problems = problems
        lines = "\n".join(f"  line {n}: {reason}" for n, reason in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


@dataclass(frozen=True)
class VocabularyEntry:
    phrase: str
    ipa: str = ""
    sounds_like: tuple[str, ...] = ()
    display_as: str = ""
    line: int = 0

    @property
    def display(self) -> str:
        return self.display_as or self.phrase.replace("-", " ")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def grapheme_len(text: str) -> int:
    return len(text) if text.isascii() else len(GRAPHEME.findall(text))


def allowed_distance(form: str) -> int:
    """Edit distance tolerated for a form (normalised, words written together)."""
    n = grapheme_len(form)
    return 0 if n <= 3 else 1 if n <= 7 else 2


def parse_vocabulary(text: str, source: str = "vocabulary") -> list[VocabularyEntry]:
    """Parse the table; raise ``VocabularyError`` listing every bad row."""
    problems: list[tuple[int, str]] = []
    entries: list[VocabularyEntry] = []
    lines = text.splitlines()
    if not lines or tuple(c.strip() for c in lines[0].split("\t")) != HEADER:
        got = lines[0] if lines else "(empty file)"
        raise VocabularyError(source, [(1, f"header must be {' TAB '.join(HEADER)}, got {got!r}")])
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) > len(HEADER):
            problems.append((number, f"{len(cells)} columns, expected at most 4 (tab-separated)"))
            continue
        phrase, ipa, sounds_like, display_as = (cells + [""] * 4)[:4]
        if not phrase:
            problems.append((number, "Phrase is empty; it is required on every row"))
            continue
        if " " in phrase:
            problems.append((number, f"Phrase {phrase!r} contains a space; join words with "
                                     "hyphens (New-Delhi)"))
            continue
        if not PHRASE_CHARS.match(phrase):
            problems.append((number, f"Phrase {phrase!r} has characters other than letters, "
                                     "marks, digits, apostrophes, periods and single hyphens"))
            continue
        if ipa and sounds_like:
            problems.append((number, "IPA and SoundsLike are both filled; use one or the other"))
            continue
        pieces: tuple[str, ...] = ()
        if sounds_like:
            pieces = tuple(sounds_like.split("-"))
            if any(not p or " " in p for p in pieces):
                problems.append((number, f"SoundsLike {sounds_like!r} must be pieces separated "
                                         "by single hyphens, without spaces"))
                continue
        key = normalize(phrase)
        if key in seen:
            problems.append((number, f"Phrase {phrase!r} repeats line {seen[key]}"))
            continue
        seen[key] = number
        entries.append(VocabularyEntry(phrase, ipa, pieces, display_as, number))
    if problems:
        raise VocabularyError(source, problems)
    return entries


def load_vocabulary(path: str | Path) -> list[VocabularyEntry]:
    path = Path(path)
    return parse_vocabulary(path.read_text(encoding="utf-8"), str(path))


@dataclass(frozen=True)
class Form:
    """One spelling of an entry to look for: its words (Phrase words or SoundsLike pieces,
    normalised) and those words written together."""

    entry: VocabularyEntry
    rule: str  # "phrase" or "sounds_like"
    words: tuple[str, ...]

    @property
    def joined(self) -> str:
        return "".join(self.words)


@dataclass(frozen=True)
class Replacement:
    start: int  # character offsets in the original text
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


def _forms(entries: list[VocabularyEntry]) -> list[Form]:
    forms = []
    for e in entries:
        forms.append(Form(e, "phrase", tuple(normalize(w) for w in e.phrase.split("-"))))
        if e.sounds_like:
            forms.append(Form(e, "sounds_like", tuple(normalize(p) for p in e.sounds_like)))
    return forms


def _deletions(s: str, k: int) -> set[str]:
    """``s`` with every choice of up to ``k`` (at most 2) characters removed."""
    out = {s}
    if k >= 1 and len(s) > 1:
        ones = {s[:i] + s[i + 1:] for i in range(len(s))}
        out |= ones
        if k >= 2 and len(s) > 2:
            for t in ones:
                out.update(t[:i] + t[i + 1:] for i in range(len(t)))
    return out


def _query_k(word: str) -> int:
    """The most any form within reach of ``word`` may allow: forms allowing k have at least
    4k graphemes (see allowed_distance), so a spelling within k of them has at least 3k."""
    g = grapheme_len(word)
    return 0 if g < 3 else 1 if g < 6 else 2


class _DeletionIndex:
    """Symmetric-delete index: strings within edit distance k share a string reachable from
    each by at most k deletions, so lookups are a few dict probes, not a scan."""

    def __init__(self) -> None:
        self.keys: dict[str, list[int]] = {}

    def add(self, text: str, k: int, item: int) -> None:
        for key in _deletions(text, k):
            self.keys.setdefault(key, []).append(item)

    def lookup(self, text: str) -> set[int]:
        found: set[int] = set()
        for key in _deletions(text, _query_k(text)):
            found.update(self.keys.get(key, ()))
        return found


@dataclass
class VocabularyMatcher:
    """Finds and replaces vocabulary phrases in text (see the module docstring).

    A form matches at a word either as one word (the recogniser ran the form's words
    together: ``newdelhi``) within ``allowed_distance`` of the form written together, or word
    by word, each word within its own allowed distance. Candidates for a word come from two
    deletion indexes (whole forms, and the first word of multi-word forms), memoised per word:
    spoken language repeats itself, so common words cost one dict lookup.
    """

    entries: list[VocabularyEntry]
    memo_size: int = 200_000
    forms: list[Form] = field(init=False)

    def __post_init__(self) -> None:
        self.forms = _forms(self.entries)
        self._whole, self._first = _DeletionIndex(), _DeletionIndex()
        for i, f in enumerate(self.forms):
            self._whole.add(f.joined, allowed_distance(f.joined), i)
            if len(f.words) > 1:
                self._first.add(f.words[0], allowed_distance(f.words[0]), i)
        self._memo: dict[str, tuple[set[int], set[int]]] = {}

    def _candidates(self, word: str) -> tuple[set[int], set[int]]:
        """(forms that may match ``word`` whole, multi-word forms that may start with it)."""
        hit = self._memo.get(word)
        if hit is None:
            if len(self._memo) >= self.memo_size:
                self._memo.clear()
            hit = self._memo[word] = (self._whole.lookup(word), self._first.lookup(word))
        return hit

    def _match_at(self, tokens: list[tuple[int, int, str]], i: int, text: str
                  ) -> tuple[int, Form, int] | None:
        """Best (words used, form, distance) starting at token ``i``: longest, then closest."""
        word = tokens[i][2]
        whole, first = self._candidates(word)
        best: tuple[int, Form, int] | None = None
        for k in whole:
            f = self.forms[k]
            limit = allowed_distance(f.joined)
            d = Levenshtein.distance(word, f.joined, score_cutoff=limit)
            if d <= limit and (best is None or (1, -d) > (best[0], -best[2])):
                best = (1, f, d)
        for k in first:
            f = self.forms[k]
            n = len(f.words)
            if i + n > len(tokens):
                continue
            total = 0
            for j, fw in enumerate(f.words):
                if j and text[tokens[i + j - 1][1]:tokens[i + j][0]].strip():
                    total = -1  # only whitespace may separate the words of one match
                    break
                limit = allowed_distance(fw)
                d = Levenshtein.distance(tokens[i + j][2], fw, score_cutoff=limit)
                if d > limit:
                    total = -1
                    break
                total += d
            if total >= 0 and (best is None or (n, -total) > (best[0], -best[2])):
                best = (n, f, total)
        return best

    def find(self, text: str) -> list[Replacement]:
        """Non-overlapping matches, left to right."""
        text = unicodedata.normalize("NFC", text)
        tokens = [(m.start(), m.end(), normalize(m.group())) for m in WORD.finditer(text)]
        out: list[Replacement] = []
        i = 0
        while i < len(tokens):
            match = self._match_at(tokens, i, text)
            if match is None:
                i += 1
                continue
            n, form, distance = match
            start, end = tokens[i][0], tokens[i + n - 1][1]
            rule = form.rule if distance == 0 else f"{form.rule}_near"
            out.append(Replacement(start, end, text[start:end], form.entry.display,
                                   form.entry.phrase, rule, distance))
            i += n
        return out

    def apply(self, text: str) -> tuple[str, list[Replacement]]:
        """The corrected text and what was replaced (offsets refer to the NFC input)."""
        text = unicodedata.normalize("NFC", text)
        found = self.find(text)
        pieces, last = [], 0
        for r in found:
            pieces += [text[last:r.start], r.replacement]
            last = r.end
        pieces.append(text[last:])
        return "".join(pieces), found


class NaiveMatcher(VocabularyMatcher):
    """The baseline: every form is a candidate at every word (same results; no index, no
    memo)."""

    def _candidates(self, word: str) -> tuple[set[int], set[int]]:
        everything = set(range(len(self.forms)))
        return everything, {i for i in everything if len(self.forms[i].words) > 1}
