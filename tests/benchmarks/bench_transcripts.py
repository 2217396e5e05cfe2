"""Benchmark: segments/s through the vocabulary operator with a 1,000-phrase vocabulary,
against the naive baseline (every phrase tried at every word) on the same segments.

Segments are 20 words drawn Zipf-like from a 5,000-word lexicon (Latin and Devanagari), with
vocabulary phrases (some misspelled by one edit) mixed in. Prints one JSON line.
Run: ``./dev bench transcripts``.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from models.transcripts.vocabulary import VocabularyEntry
from models.transcripts.vocabulary_match import NaiveMatcher, VocabularyMatcher

LATIN = "abcdefghijklmnopqrstuvwxyz"
DEVANAGARI = "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह"
SIGNS = "ािीुूेैोौं"


def make_word(rng: random.Random, n: int) -> str:
    if rng.random() < 0.3:
        return "".join(rng.choice(DEVANAGARI) + (rng.choice(SIGNS) if rng.random() < 0.5 else "")
                       for _ in range(max(2, n // 2)))
    return "".join(rng.choice(LATIN) for _ in range(n))


def misspell(rng: random.Random, word: str) -> str:
    i = rng.randrange(len(word))
    return word[:i] + word[i + 1:] if len(word) > 5 else word


def workload(phrases: int, segments: int, seed: int = 1):
    rng = random.Random(seed)
    entries = []
    for i in range(phrases):
        words = [make_word(rng, rng.randint(4, 9)) for _ in range(rng.choice((1, 1, 2, 3)))]
        sounds = tuple(make_word(rng, 3) for _ in range(2)) if i % 5 == 0 else ()
        entries.append(VocabularyEntry("-".join(words), sounds_like=sounds))
    lexicon = [make_word(rng, rng.randint(2, 8)) for _ in range(5000)]
    weights = [1 / (r + 1) for r in range(len(lexicon))]
    texts = []
    for _ in range(segments):
        words = rng.choices(lexicon, weights, k=20)
        for _ in range(rng.randint(0, 2)):
            e = rng.choice(entries)
            words.insert(rng.randrange(len(words)),
                         " ".join(misspell(rng, w) for w in e.phrase.split("-")))
        texts.append(" ".join(words))
    return entries, texts


def rate(matcher: VocabularyMatcher, texts: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    replaced = sum(len(matcher.apply(t)[1]) for t in texts)
    return len(texts) / (time.perf_counter() - t0), replaced


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phrases", type=int, default=1000)
    parser.add_argument("--segments", type=int, default=5000)
    parser.add_argument("--baseline-segments", type=int, default=100)
    args = parser.parse_args()
    entries, texts = workload(args.phrases, args.segments)
    t0 = time.perf_counter()
    fast = VocabularyMatcher(entries)
    build_s = time.perf_counter() - t0
    seg_per_s, replaced = rate(fast, texts)
    no_memo_per_s, _ = rate(VocabularyMatcher(entries, memo_size=0), texts[:1000])
    base_per_s, _ = rate(NaiveMatcher(entries), texts[:args.baseline_segments])
    print(json.dumps({
        "bench": "transcripts", "phrases": args.phrases, "segments": args.segments,
        "segments_per_s": round(seg_per_s), "segments_per_s_without_memo": round(no_memo_per_s),
        "baseline_segments_per_s": round(base_per_s, 1), "ratio": round(seg_per_s / base_per_s),
        "ratio_without_memo": round(no_memo_per_s / base_per_s),
        "replacements": replaced, "index_build_s": round(build_s, 2),
    }))


if __name__ == "__main__":
    main()
