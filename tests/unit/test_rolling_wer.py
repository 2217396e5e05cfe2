import pytest

from models.transcripts.rolling_wer import PendingPair, RollingWer, SegmentScore

REF = {"segment_id": "s1", "stream_id": "a", "text": "go to delhi now", "ts": 10}
HYP = {"segment_id": "s1", "stream_id": "a", "text": "go to delhi", "ts": 12,
       "original_text": "go to dilli"}


@pytest.mark.parametrize("order", [("hypothesis", "reference"), ("reference", "hypothesis")])
def test_pair_scores_once_both_halves_arrive_in_either_order(order):
    pair = PendingPair()
    first, second = order
    msgs = {"hypothesis": HYP, "reference": REF}
    assert pair.add(first, msgs[first]) is None
    score = pair.add(second, msgs[second])
    assert score == SegmentScore("a", "s1", 12, 4, 1, 2)  # 1 deletion; before: +1 substitution


def test_rolling_window_and_totals():
    rolling = RollingWer(window=2)
    updates = [rolling.add(SegmentScore("a", f"s{i}", i, 10, e, e + 1))
               for i, e in enumerate([1, 3, 5])]
    assert [u["segments"] for u in updates] == [1, 2, 2]
    assert updates[-1]["wer"] == pytest.approx(8 / 20)           # last two: 3 + 5 of 20
    assert updates[-1]["wer_original"] == pytest.approx(10 / 20)
    assert updates[-1]["wer_total"] == pytest.approx(9 / 30)
    assert updates[-1]["update_id"] == "a:3"


def test_empty_reference_counts_insertions_without_dividing_by_zero():
    update = RollingWer().add(SegmentScore("a", "s", 0, 0, 2, 2))
    assert update["wer"] == 0.0 and update["errors"] == 2
