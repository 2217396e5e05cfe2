"""WER report on a hand-worked example.

Sentence 1: "the cat sat on the mat" -> "the bat sat on mat": cat->bat (S), "the" deleted (D);
  4 hits of 6.  Sentence 2: "hello world" -> "hello big world": "big" inserted (I); 2 of 2.
Sentence 3: empty reference -> "uh": 1 insertion.  Sentence 4: "a b c" -> "": 3 deletions.
Totals: 11 reference words, 2+1+1+3 = 7 errors (WER 7/11), 6 hits (WRR 6/11), 4 of 4 sentences
with errors (SER 4/4).
"""

import json
import subprocess
import sys

import pytest

from models.transcripts.wer import format_report, report_json, score_lines, score_sentence

REFS = ["the cat sat on the mat", "hello world", "", "a b c"]
HYPS = ["the bat sat on mat", "hello big world", "uh", ""]

EXPECTED = """\
REF: the CAT sat on THE mat
HYP: the BAT sat on *** mat
SENTENCE 1
Correct          =  66.7%    4   (     6)
Errors           =  33.3%    2   (     6)
REF: hello *** world
HYP: hello BIG world
SENTENCE 2
Correct          = 100.0%    2   (     2)
Errors           =  50.0%    1   (     2)
REF: **
HYP: UH
SENTENCE 3
Correct          = 100.0%    0   (     0)
Errors           =   0.0%    1   (     0)
REF: A B C
HYP: * * *
SENTENCE 4
Correct          =   0.0%    0   (     3)
Errors           = 100.0%    3   (     3)
Sentence count: 4
WER:    63.636% (         7 /         11)
WRR:    54.545% (         6 /         11)
SER:   100.000% (         4 /          4)"""


def test_report_matches_the_hand_worked_example():
    assert format_report(score_lines(REFS, HYPS)) == EXPECTED


def test_counts_by_kind():
    s = score_sentence("the cat sat on the mat", "the bat sat on mat")
    assert (s.hits, s.substitutions, s.deletions, s.insertions) == (4, 1, 1, 0)
    c = score_lines(REFS, HYPS)
    assert (c.errors, c.ref_words, c.hits, c.sentence_errors) == (7, 11, 6, 4)
    assert report_json(c)["wer"] == pytest.approx(7 / 11)


def test_substitution_pads_to_the_same_width():
    report = format_report(score_lines(["go to bengaluru"], ["go to bangalore"]))
    assert "REF: go to BENGALURU" in report
    assert "HYP: go to BANGALORE" in report
    report = format_report(score_lines(["a cat"], ["a elephant"]))
    assert "REF: a CAT     " in report and "HYP: a ELEPHANT" in report


def test_ignore_case():
    assert score_sentence("Delhi is big", "delhi IS big", ignore_case=True).errors == 0
    assert score_sentence("Delhi is big", "delhi IS big").errors == 2


def test_line_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same number"):
        score_lines(["a"], ["a", "b"])


def test_cli_prints_the_report_and_json(tmp_path):
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("\n".join(REFS) + "\n")
    hyp.write_text("\n".join(HYPS) + "\n")
    out = subprocess.run([sys.executable, "-m", "onair.cli", "wer", str(ref), str(hyp)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == EXPECTED
    out = subprocess.run([sys.executable, "-m", "onair.cli", "wer", str(ref), str(hyp), "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["errors"] == 7
