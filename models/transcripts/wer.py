"""Word error rate, scored with jiwer and reported the way the ``wer`` command prints it.

Pure logic, no PyFlink. Words are whitespace-separated tokens. Per line the report shows REF
and HYP aligned (matching words in lower case; errors in upper case, ``*`` runs where a word
was deleted or inserted, substitutions padded to the same width), then ``SENTENCE n`` and the
``Correct`` / ``Errors`` lines; at the end the sentence count, WER, WRR and SER.

Conventions, where the classic tool is silent or odd: an empty reference line counts its
hypothesis words as insertions in the totals and prints Correct 100.0% / Errors 0.0% (the
tool's own convention for that line); SER counts the sentences that have at least one error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jiwer


@dataclass(frozen=True)
class SentenceScore:
    ref: tuple[str, ...]
    hyp: tuple[str, ...]
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    # (op, ref_start, ref_end, hyp_start, hyp_end); op in equal/substitute/delete/insert
    chunks: tuple[tuple[str, int, int, int, int], ...] = field(repr=False, default=())

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


@dataclass(frozen=True)
class CorpusScore:
    sentences: tuple[SentenceScore, ...]

    @property
    def ref_words(self) -> int:
        return sum(len(s.ref) for s in self.sentences)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.sentences)

    @property
    def hits(self) -> int:
        return sum(s.hits for s in self.sentences)

    @property
    def sentence_errors(self) -> int:
        return sum(1 for s in self.sentences if s.errors)

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else 0.0

    @property
    def wrr(self) -> float:
        return self.hits / self.ref_words if self.ref_words else 0.0

    @property
    def ser(self) -> float:
        return self.sentence_errors / len(self.sentences) if self.sentences else 0.0


def score_sentence(ref: str, hyp: str, *, ignore_case: bool = False) -> SentenceScore:
    """Align one reference line with one hypothesis line."""
    if ignore_case:
        ref, hyp = ref.lower(), hyp.lower()
    ref_words, hyp_words = tuple(ref.split()), tuple(hyp.split())
    if not ref_words:
        chunks = (("insert", 0, 0, 0, len(hyp_words)),) if hyp_words else ()
        return SentenceScore(ref_words, hyp_words, 0, 0, 0, len(hyp_words), chunks)
    if not hyp_words:
        return SentenceScore(ref_words, hyp_words, 0, 0, len(ref_words), 0,
                             (("delete", 0, len(ref_words), 0, 0),))
    out = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words))
    chunks = tuple((c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx)
                   for c in out.alignments[0])
    return SentenceScore(ref_words, hyp_words, out.hits, out.substitutions, out.deletions,
                         out.insertions, chunks)


def score_lines(refs: list[str], hyps: list[str], *, ignore_case: bool = False) -> CorpusScore:
    if len(refs) != len(hyps):
        raise ValueError(f"the reference has {len(refs)} lines and the hypothesis {len(hyps)}: "
                         "lines are compared pairwise, so they must have the same number")
    return CorpusScore(tuple(score_sentence(r, h, ignore_case=ignore_case)
                             for r, h in zip(refs, hyps, strict=True)))


def aligned(s: SentenceScore) -> tuple[str, str]:
    """The REF: and HYP: lines of one sentence."""
    ref_out: list[str] = []
    hyp_out: list[str] = []
    for op, r0, r1, h0, h1 in s.chunks:
        if op == "equal":
            ref_out += [w.lower() for w in s.ref[r0:r1]]
            hyp_out += [w.lower() for w in s.hyp[h0:h1]]
        elif op == "delete":
            ref_out += [w.upper() for w in s.ref[r0:r1]]
            hyp_out += ["*" * len(w) for w in s.ref[r0:r1]]
        elif op == "insert":
            ref_out += ["*" * len(w) for w in s.hyp[h0:h1]]
            hyp_out += [w.upper() for w in s.hyp[h0:h1]]
        else:  # substitute: pair words, pad the shorter to the same width
            for rw, hw in zip(s.ref[r0:r1], s.hyp[h0:h1], strict=True):
                width = max(len(rw), len(hw))
                ref_out.append(rw.upper().ljust(width))
                hyp_out.append(hw.upper().ljust(width))
    return " ".join(["REF:", *ref_out]), " ".join(["HYP:", *hyp_out])


def format_sentence(s: SentenceScore, number: int) -> str:
    n = len(s.ref)
    if n:
        correct_rate, error_rate = s.hits / n, s.errors / n
    else:
        correct_rate, error_rate = 1.0, 0.0
    ref_line, hyp_line = aligned(s)
    return "\n".join([
        ref_line, hyp_line, f"SENTENCE {number:d}",
        f"Correct          = {correct_rate:6.1%}  {s.hits:3d}   ({n:6d})",
        f"Errors           = {error_rate:6.1%}  {s.errors:3d}   ({n:6d})",
    ])


def format_totals(c: CorpusScore) -> str:
    n, count = c.ref_words, len(c.sentences)
    return "\n".join([
        f"Sentence count: {count}",
        f"WER: {c.wer:10.3%} ({c.errors:10d} / {n:10d})",
        f"WRR: {c.wrr:10.3%} ({c.hits:10d} / {n:10d})",
        f"SER: {c.ser:10.3%} ({c.sentence_errors:10d} / {count:10d})",
    ])


def format_report(c: CorpusScore) -> str:
    parts = [format_sentence(s, i) for i, s in enumerate(c.sentences, start=1)]
    return "\n".join([*parts, format_totals(c)])


def report_json(c: CorpusScore) -> dict:
    return {
        "sentences": [
            {"sentence": i, "ref_words": len(s.ref), "hits": s.hits, "errors": s.errors,
             "substitutions": s.substitutions, "deletions": s.deletions,
             "insertions": s.insertions, "ref": " ".join(s.ref), "hyp": " ".join(s.hyp)}
            for i, s in enumerate(c.sentences, start=1)
        ],
        "sentence_count": len(c.sentences), "ref_words": c.ref_words, "errors": c.errors,
        "hits": c.hits, "sentence_errors": c.sentence_errors,
        "wer": c.wer, "wrr": c.wrr, "ser": c.ser,
    }
