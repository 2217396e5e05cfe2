"""``onair wer``: word error rate of transcripts, before and after a vocabulary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from onair.cli.common import CliError


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None


def cmd_wer(args: argparse.Namespace) -> int:
    from models.transcripts.wer import format_report, report_json, score_lines

    refs, hyps = _read_lines(args.reference), _read_lines(args.hypothesis)
    try:
        before = score_lines(refs, hyps, ignore_case=args.ignore_case)
    except ValueError as e:
        raise CliError(str(e)) from None
    if not args.vocab:
        print(json.dumps(report_json(before), ensure_ascii=False) if args.json
              else format_report(before))
        return 0

    from models.transcripts.vocabulary import VocabularyError, load_vocabulary
    from models.transcripts.vocabulary_match import VocabularyMatcher

    try:
        matcher = VocabularyMatcher(load_vocabulary(args.vocab))
    except (VocabularyError, OSError) as e:
        raise CliError(str(e)) from None
    corrected = [matcher.apply(h) for h in hyps]
    after = score_lines(refs, [text for text, _ in corrected], ignore_case=args.ignore_case)
    changes = [{"line": n, "replacements": [r.as_dict() for r in reps]}
               for n, (_, reps) in enumerate(corrected, start=1) if reps]
    if args.json:
        print(json.dumps({"before": report_json(before), "after": report_json(after),
                          "changes": changes}, ensure_ascii=False))
        return 0
    print("=== before the vocabulary")
    print(format_report(before))
    print("\n=== after the vocabulary")
    print(format_report(after))
    print("\n=== what the vocabulary changed")
    for change in changes:
        for r in change["replacements"]:
            print(f"line {change['line']}: {r['original']!r} -> {r['replacement']!r} "
                  f"({r['rule']}, distance {r['distance']})")
    print(f"WER {before.wer:.3%} -> {after.wer:.3%}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("wer", help="word error rate of HYPOTHESIS against REFERENCE, line by line")
    p.add_argument("reference")
    p.add_argument("hypothesis")
    p.add_argument("-i", "--ignore-case", action="store_true", help="compare case-insensitively")
    p.add_argument("--vocab", help="apply this vocabulary (Phrase/IPA/SoundsLike/DisplayAs TSV) "
                                   "to the hypothesis first and report before and after")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_wer)

