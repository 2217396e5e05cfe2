"""Deterministic transcript segments (recogniser output and references) for demo and tests.

Built from the Hindi–English example in ``tests/data/hinglish``: each segment pairs a
reference line with its recogniser-like hypothesis (misspelled place names), spread over
streams, with a few generic errors (a dropped or an inserted word) mixed in.
"""

from __future__ import annotations

import random
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "hinglish"
T0_MS = 1_764_000_000_000


def example_pairs() -> list[tuple[str, str]]:
    refs = (EXAMPLE / "ref.txt").read_text(encoding="utf-8").splitlines()
    hyps = (EXAMPLE / "hyp.txt").read_text(encoding="utf-8").splitlines()
    return list(zip(refs, hyps, strict=True))


def segments(n: int, streams: int = 3, seed: int = 5) -> list[tuple[dict, dict]]:
    """``n`` (hypothesis segment, reference segment) pairs."""
    rng = random.Random(seed)
    pairs = example_pairs()
    out = []
    for i in range(n):
        ref, hyp = pairs[i % len(pairs)]
        words = hyp.split()
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), "uh")
        if rng.random() < 0.2 and len(words) > 3:
            words.pop(rng.randrange(len(words)))
        stream = f"stream-{i % streams}"
        base = {"segment_id": f"seg-{seed}-{i}", "stream_id": stream, "ts": T0_MS + i * 1000}
        out.append(({**base, "speaker": "host", "text": " ".join(words)}, {**base, "text": ref}))
    return out
