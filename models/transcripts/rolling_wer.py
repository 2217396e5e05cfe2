"""Rolling word error rate per stream, and pairing hypotheses with their references.

Pure logic, no PyFlink: small state objects driven by ``add`` so the Flink functions only
load, call and store them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from models.transcripts.wer import score_sentence


@dataclass(frozen=True)
class SegmentScore:
    """One segment scored against its reference, before and after the vocabulary."""

    stream_id: str
    segment_id: str
    ts: int
    ref_words: int
    errors: int
    errors_original: int


def score_segment(reference: dict, hypothesis: dict) -> SegmentScore:
    """``reference``: a transcript segment; ``hypothesis``: a corrected transcript."""
    corrected = score_sentence(reference["text"], hypothesis["text"])
    original = score_sentence(reference["text"], hypothesis["original_text"])
    return SegmentScore(hypothesis["stream_id"], hypothesis["segment_id"],
                        max(reference["ts"], hypothesis["ts"]), len(corrected.ref),
                        corrected.errors, original.errors)


@dataclass
class PendingPair:
    """Whichever of hypothesis and reference of one segment arrived first."""

    hypothesis: dict | None = None
    reference: dict | None = None

    def add(self, kind: str, message: dict) -> SegmentScore | None:
        """Record ``message`` (kind "hypothesis" or "reference"); the score once both are in.
        A repeat of a side replaces it (the newest wins) until the pair completes."""
        setattr(self, kind, message)
        if self.hypothesis is not None and self.reference is not None:
            return score_segment(self.reference, self.hypothesis)
        return None


@dataclass
class RollingWer:
    """WER over the last ``window`` segments of a stream, and since the start."""

    window: int = 100
    recent: deque = field(default_factory=deque)  # of (ref_words, errors, errors_original)
    segments_total: int = 0
    ref_words_total: int = 0
    errors_total: int = 0

    def add(self, s: SegmentScore) -> dict:
        self.recent.append((s.ref_words, s.errors, s.errors_original))
        while len(self.recent) > self.window:
            self.recent.popleft()
        self.segments_total += 1
        self.ref_words_total += s.ref_words
        self.errors_total += s.errors
        ref_words = sum(r for r, _, _ in self.recent)
        errors = sum(e for _, e, _ in self.recent)
        errors_original = sum(o for _, _, o in self.recent)
        return {
            "update_id": f"{s.stream_id}:{self.segments_total}",
            "stream_id": s.stream_id,
            "ts": s.ts,
            "segment_id": s.segment_id,
            "segments": len(self.recent),
            "ref_words": ref_words,
            "errors": errors,
            "wer": errors / ref_words if ref_words else 0.0,
            "wer_original": errors_original / ref_words if ref_words else 0.0,
            "segments_total": self.segments_total,
            "wer_total": self.errors_total / self.ref_words_total if self.ref_words_total else 0.0,
        }
