import random
from pathlib import Path

import pytest

from models.transcripts.vocabulary import (
    VocabularyEntry,
    VocabularyError,
    load_vocabulary,
    parse_vocabulary,
)
from models.transcripts.vocabulary_match import NaiveMatcher, VocabularyMatcher

HEADER = "Phrase\tIPA\tSoundsLike\tDisplayAs\n"
DATA = Path(__file__).resolve().parents[1] / "data" / "hinglish"


def test_parses_rows_and_defaults_display_to_phrase_with_spaces():
    entries = parse_vocabulary(HEADER + "New-Delhi\t\t\t\nBengaluru\t\tbang-lore\t\n"
                                        "Kozhikode\tkoːɻikoːɖ\t\tCalicut\n")
    assert [e.phrase for e in entries] == ["New-Delhi", "Bengaluru", "Kozhikode"]
    assert entries[0].display == "New Delhi"
    assert entries[1].sounds_like == ("bang", "lore")
    assert entries[2].display == "Calicut" and entries[2].ipa == "koːɻikoːɖ"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("\t\t\tX", "Phrase is empty"),
        ("New Delhi\t\t\t", "contains a space"),
        ("New--Delhi\t\t\t", "characters other than"),
        ("Delhi\tdɪli\tdel-lee\t", "both filled"),
        ("Delhi\t\tdel lee\t", "pieces separated"),
        ("Delhi\t\tdel--lee\t", "pieces separated"),
        ("Delhi\t\t\t\textra", "5 columns"),
    ],
)
def test_each_bad_row_is_reported_with_line_number(row, reason):
    with pytest.raises(VocabularyError) as err:
        parse_vocabulary(HEADER + "Mumbai\t\t\t\n" + row + "\n")
    assert err.value.problems[0][0] == 3
    assert reason in err.value.problems[0][1]


def test_all_problems_are_reported_together_including_duplicates_and_header():
    with pytest.raises(VocabularyError) as err:
        parse_vocabulary(HEADER + "Delhi\t\t\t\n\t\t\t\ndelhi\t\t\t\nA B\t\t\t\n")
    # a row of tabs only is blank and skipped, like an empty line
    assert [n for n, _ in err.value.problems] == [4, 5]
    assert "repeats line 2" in err.value.problems[0][1]
    with pytest.raises(VocabularyError, match="header must be"):
        parse_vocabulary("Phrase\tDisplayAs\nDelhi\t\n")


def matcher(*rows: str) -> VocabularyMatcher:
    return VocabularyMatcher(parse_vocabulary(HEADER + "\n".join(rows) + "\n"))


def test_exact_and_hyphenated_phrases_match_spaces_case_insensitively():
    m = matcher("New-Delhi\t\t\t", "Goa\t\t\tGOA")
    text, reps = m.apply("we flew from new delhi to goa.")
    assert text == "we flew from New Delhi to GOA."
    assert [(r.original, r.rule, r.distance) for r in reps] == [("new delhi", "phrase", 0),
                                                                ("goa", "phrase", 0)]
    assert reps[0].start == 13 and reps[0].end == 22


def test_words_run_together_match_the_phrase():
    assert matcher("New-Delhi\t\t\t").apply("newdelhi rocks")[0] == "New Delhi rocks"


def test_near_miss_within_length_aware_tolerance():
    m = matcher("Bengaluru\t\t\t", "Goa\t\t\t")
    assert m.apply("in bengaluro today")[0] == "in Bengaluru today"      # 1 edit of 9
    assert m.apply("in bangalore today")[0] == "in bangalore today"      # 3 edits: too far
    assert m.apply("a gob of it")[0] == "a gob of it"                    # short: exact only


def test_no_replacement_inside_a_longer_word_and_punctuation_kept():
    m = matcher("Goa\t\t\t")
    assert m.apply("goan food, goa's beaches (goa)!")[0] == "goan food, goa's beaches (Goa)!"


def test_words_of_one_match_must_be_separated_by_whitespace_only():
    assert matcher("New-Delhi\t\t\t").apply("new, delhi")[0] == "new, delhi"


def test_sounds_like_pieces_in_any_grouping():
    m = matcher("Connaught-Place\t\tcon-not-place\tConnaught Place")
    for heard in ("con not place", "connot place", "connotplace"):
        assert m.apply(f"at {heard} now")[0] == "at Connaught Place now"
    assert m.apply("at connot place")[1][0].rule == "sounds_like"


def test_devanagari_missing_vowel_sign_is_one_edit():
    m = matcher("दिल्ली\t\t\t", "चांदनी-चौक\t\t\t")
    text, reps = m.apply("हम दल्ली में हैं, चंदनी चोक के पास")
    assert text == "हम दिल्ली में हैं, चांदनी चौक के पास"
    assert [(r.rule, r.distance) for r in reps] == [("phrase_near", 1), ("phrase_near", 2)]


def test_decomposed_input_is_normalised():
    m = matcher("Café-Central\t\t\t")
    assert m.apply("the cafe\u0301 central")[0] == "the Café Central"


@pytest.mark.parametrize("script", ["latin", "devanagari", "cyrillic"])
def test_fast_matcher_agrees_with_naive_on_random_text(script):
    rng = random.Random(script)
    alphabet = {"latin": "abcdefgh", "devanagari": "कखगदनमलि्ीुं",
                "cyrillic": "абвгдежз"}[script]

    def word() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 7)))

    entries = [VocabularyEntry("-".join(word() for _ in range(rng.randint(1, 3))),
                               sounds_like=tuple(word() for _ in range(2)) if i % 3 == 0 else ())
               for i in range(60)]
    fast, naive = VocabularyMatcher(entries), NaiveMatcher(entries)
    pool = [word() for _ in range(40)] + [w for e in entries for w in e.phrase.split("-")]
    for _ in range(150):
        text = " ".join(rng.choice(pool) for _ in range(12))
        assert fast.apply(text) == naive.apply(text)


def test_hinglish_example_file_loads():
    assert len(load_vocabulary(DATA / "vocab.tsv")) == 7


def test_a_word_longer_than_any_form_costs_no_candidate_search():
    import json

    from onair.sim.sample_hostile import transcript_cases

    matcher = VocabularyMatcher([VocabularyEntry("New-Delhi", sounds_like=("nu", "deli"))])
    for case in transcript_cases():
        if case.rejected is None:
            text = json.loads(case.value)["text"]
            out, found = matcher.apply(text)
            assert out == text and not found
            # A long word was never looked up (its deletions, quadratic in number, never built).
            assert all(len(word) <= matcher.longest + 2 for word in matcher._memo)
    assert matcher.candidates("x" * 10_000) == (set(), set(), set())
