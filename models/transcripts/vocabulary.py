"""Custom vocabularies: loading the four-column table and matching phrases in transcripts.

Pure logic, no PyFlink. The table is tab-separated with the header
``Phrase  IPA  SoundsLike  DisplayAs``:

- ``Phrase`` is required; words of a multi-word phrase are joined by hyphens, never spaces.
- ``IPA`` and ``SoundsLike`` are optional and exclusive. ``SoundsLike`` is hyphen-separated
  pieces (``dil-lee``). IPA is kept for recognisers that decode with it; text matching here uses
  the Phrase and SoundsLike spellings only (turning IPA into spellings needs a G2P model).
- ``DisplayAs`` is what replaces a match; empty means the Phrase with its hyphens as spaces.

Matching the entries in text is ``models.transcripts.vocabulary_match``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import regex

HEADER = ("Phrase", "IPA", "SoundsLike", "DisplayAs")
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
    """NFC and case-folded: the form in which spellings are compared."""
    return unicodedata.normalize("NFC", text).casefold()


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
