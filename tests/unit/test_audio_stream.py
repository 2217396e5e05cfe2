"""Alarm detection's pure logic: windows, band crop, reassembly, debounce, cooldown."""

from __future__ import annotations

import base64

import librosa
import numpy as np
import pytest

from models.alarms import sounds
from models.alarms.mel import (
    FeatureSpec,
    clip_windows,
    feature_names,
    log_mel_frames,
    mel_filters,
    window_starts,
)
from models.alarms.pcm import chunk_messages, decode_chunk, encode_pcm, resample
from models.alarms.stream import (
    Chunk,
    Debouncer,
    Sequencer,
    StreamDetector,
    StreamPolicy,
    Window,
    alert_message,
    decide_many,
    push_many,
)
from models.validation import InvalidRecord

SPEC = FeatureSpec()


def test_window_and_hop_arithmetic():
    half = FeatureSpec(hop_s=0.5)
    assert half.window_samples == 32_000 and half.hop_samples == 8_000
    assert half.frames_per_window == 1 + (32_000 - 512) // 250 == 126
    assert half.frames_per_hop == 32
    assert window_starts(31_999, half) == []
    assert window_starts(32_000, half) == [0]
    assert window_starts(48_000, half) == [0, 8_000, 16_000]
    # 10 s of audio: windows at 0, 0.5, ..., 8.0 s
    assert len(window_starts(160_000, half)) == 17
    # the default: a window every 0.25 s, 16 frames
    assert SPEC.hop_samples == 4_000 and SPEC.frames_per_hop == 16
    assert window_starts(40_000, SPEC) == [0, 4_000, 8_000]
    assert len(window_starts(160_000, SPEC)) == 33


def test_spec_rejects_hops_that_are_not_whole_frames():
    with pytest.raises(ValueError, match="hop_s"):
        FeatureSpec(hop_s=0.51)
    with pytest.raises(ValueError, match="band"):
        FeatureSpec(fmin_hz=5_000, fmax_hz=4_000)


def test_mel_filters_equal_librosa():
    weights, centres = mel_filters(16_000, 512, 48)
    np.testing.assert_allclose(weights, librosa.filters.mel(sr=16_000, n_fft=512, n_mels=48),
                               atol=1e-6)
    np.testing.assert_allclose(centres, librosa.mel_frequencies(50, fmin=0, fmax=8_000)[1:-1])


def test_band_crop_keeps_only_bands_centred_in_the_band():
    _, centres = mel_filters(16_000, 512, 48)
    inside = ((centres >= 400) & (centres <= 4_500)).sum()
    assert SPEC.n_bands == inside < 48
    narrow = FeatureSpec(fmin_hz=2_500, fmax_hz=3_500)
    assert 0 < narrow.n_bands < SPEC.n_bands
    # A 3 kHz tone lands in the narrow crop; a 1 kHz tone barely registers there.
    t = np.arange(16_000) / 16_000
    tone3k = log_mel_frames(np.sin(2 * np.pi * 3_000 * t).astype(np.float32), narrow)
    tone1k = log_mel_frames(np.sin(2 * np.pi * 1_000 * t).astype(np.float32), narrow)
    assert tone3k.max() - tone1k.max() > 30


def test_beat_features_find_a_temporal_four_group_under_loud_noise():
    rng = np.random.default_rng(3)
    group = sounds.alarm_sound("t4_piezo", SPEC.window_s, SPEC.sample_rate, rng)
    noise = sounds.noise(SPEC.window_s, SPEC.sample_rate, rng, "white")
    names = feature_names(SPEC)
    assert len(names) == SPEC.n_features

    def beat(x):
        features = dict(zip(names, clip_windows(x, SPEC)[1][0], strict=True))
        switched = np.array([v for k, v in features.items() if k.endswith("_switched")])
        return features, switched

    under_noise, switched = beat(sounds.mix_at_snr(noise, group, 0, 0.0))
    # Four 0.1 s beeps 0.2 s apart: on four times, level periodic at 0.2 s, not at 1 s.
    assert under_noise["beat_transitions"] >= 7
    assert under_noise["beat_ac_0p2s"] > 0.5 > under_noise["beat_ac_1s"]
    # What switches is the beep: its band rises while it is on, the white noise cancels out.
    _, tone_only = beat(group)
    assert np.argmax(switched) == np.argmax(tone_only)
    assert np.median(switched) < 1.0 < switched.max() - 10
    alone, switched = beat(noise)
    assert alone["beat_on_frac"] == 0 and not switched.any()


def test_streamed_windows_equal_whole_clip_windows_whatever_the_chunking():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(16_000 * 5).astype(np.float32) * 0.1
    _, expected = clip_windows(audio, SPEC)
    detector = StreamDetector(SPEC, StreamPolicy())
    got, pos, seq = [], 0, 0
    while pos < len(audio):
        n = int(rng.integers(100, 5_000))
        got += detector.push(Chunk(seq, 1_000_000.0 + pos / 16.0, audio[pos:pos + n]))
        pos, seq = pos + n, seq + 1
    # 5 s of audio: 2 s windows every 0.25 s
    assert len(got) == len(expected) == 13
    np.testing.assert_allclose(np.stack([w.features for w in got]), expected, atol=1e-4)
    assert [w.start_ts for w in got] == [1_000_000.0 + 250.0 * i for i in range(13)]
    assert len(feature_names(SPEC)) == expected.shape[1] == SPEC.n_features


def test_a_batch_of_interleaved_streams_gives_each_stream_its_own_windows():
    # push_many shares one FFT and one window pass among streams; each stream must still get
    # exactly the windows (and features) it gets alone, also across a long gap (a reset) and a
    # short one (zero-filled) inside one batch.
    rng = np.random.default_rng(5)
    policy = StreamPolicy(reorder_depth=0, max_gap_ms=500)
    streams = []
    for s in range(3):
        ts, chunks = 1_000_000.0, []
        for seq in range(60):
            n = int(rng.integers(800, 4_000))
            chunks.append(Chunk(seq, ts, (0.1 * rng.standard_normal(n)).astype(np.float32)))
            ts += n / 16.0 + (2_000.0 if (s, seq) == (1, 30) else 100.0 if seq == 40 else 0.0)
        streams.append(chunks)
    alone = [StreamDetector(SPEC, policy) for _ in streams]
    expected = [[w for c in chunks for w in d.push(c)]
                for d, chunks in zip(alone, streams, strict=True)]
    batched = [StreamDetector(SPEC, policy) for _ in streams]
    got: list[list[Window]] = [[] for _ in streams]
    arrivals = [(i, c) for seq in range(60) for i, chunks in enumerate(streams)
                for c in [chunks[seq]]]
    for lo in range(0, len(arrivals), 25):   # batches that cut streams mid-run
        for d, windows in push_many([(batched[i], c) for i, c in arrivals[lo:lo + 25]]):
            got[batched.index(d)] += windows
    assert batched[1].counters.resets == 1 and batched[0].counters.gaps_filled == 1
    for a, b in zip(expected, got, strict=True):
        assert len(a) > 20
        assert [(w.start_ts, w.after_reset) for w in a] == [(w.start_ts, w.after_reset) for w in b]
        np.testing.assert_allclose(np.stack([w.features for w in a]),
                                   np.stack([w.features for w in b]), atol=1e-5)
    assert sum(w.after_reset for w in got[1]) == 2   # the stream's start and its reset


def test_the_first_window_after_a_reset_clears_the_debounce_memory():
    d = Debouncer(StreamPolicy(threshold=0.5, k=2, n=3))
    assert d.push(_window(0), 0.9, [0.9, 0.1], "alarm") is None
    fresh = Window(5_000.0, 7_000.0, np.zeros(0), after_reset=True)
    assert d.push(fresh, 0.9, [0.9, 0.1], "alarm") is None   # one hit since the reset
    assert d.push(_window(12), 0.9, [0.9, 0.1], "alarm") is not None


def _chunk(seq: int, ms: int = 100) -> Chunk:
    return Chunk(seq, 1_000_000.0 + seq * ms, np.zeros(16 * ms, np.float32))


def test_sequencer_reorders_and_drops_duplicates():
    s = Sequencer(depth=3)
    assert [c.seq for c in s.push(_chunk(0))[0]] == [0]
    assert s.push(_chunk(2)) == ([], False)           # held: 1 is missing
    released, dup = s.push(_chunk(1))
    assert [c.seq for c in released] == [1, 2] and not dup
    assert s.push(_chunk(1)) == ([], True)            # already released
    s.push(_chunk(4))
    assert s.push(_chunk(4)) == ([], True)            # already pending


def test_sequencer_gives_up_on_a_missing_chunk_when_the_buffer_is_full():
    s = Sequencer(depth=2)
    s.push(_chunk(0))
    assert s.push(_chunk(2))[0] == [] and s.push(_chunk(3))[0] == []
    released, _ = s.push(_chunk(4))
    assert [c.seq for c in released] == [2, 3, 4]
    assert s.push(_chunk(1)) == ([], True)            # too late to place


def test_short_gap_is_zero_filled_and_long_gap_resets():
    policy = StreamPolicy(reorder_depth=0, max_gap_ms=500)
    d = StreamDetector(SPEC, policy)
    d.push(_chunk(0))
    d.push(Chunk(1, 1_000_000.0 + 400, np.zeros(1_600, np.float32)))   # 300 ms missing
    assert d.counters.gaps_filled == 1 and d.counters.resets == 0
    assert d.cutter.n_samples == 1_600 + 4_800 + 1_600
    d.push(Chunk(2, 1_000_000.0 + 5_000, np.zeros(1_600, np.float32)))  # 4.5 s missing
    assert d.counters.resets == 1
    assert d.cutter.n_samples == 1_600 and d.cutter.origin_ts == 1_005_000.0


def _window(i: int) -> Window:
    return Window(i * 500.0, i * 500.0 + 2_000.0, np.zeros(0))


def test_decide_many_scores_all_windows_in_one_call_and_debounces_each_stream_alone():
    policy = StreamPolicy(threshold=0.5, k=2, n=3)
    a, b = StreamDetector(SPEC, policy), StreamDetector(SPEC, policy)
    calls = []

    def score(features):
        calls.append(len(features))
        return np.tile([0.9, 0.1], (len(features), 1))   # every window is an alarm

    # a has two windows (k=2 is reached), b one: only a alerts, though three windows were hot.
    results = [(a, [_window(0), _window(1)]), (b, [_window(0)])]
    scored, detections = decide_many(results, score, ["alarm", "no_alarm"], "alarm")
    assert (scored, calls) == (3, [3])
    assert [(d is a, det.onset_ts) for d, det in detections] == [(True, 0.0)]
    assert decide_many([(a, []), (b, [])], score, ["alarm", "no_alarm"], "alarm") == (0, [])
    assert calls == [3]


def _run(debouncer: Debouncer, probs: list[float]) -> list[int]:
    """Indices of windows that raised an alert."""
    return [i for i, p in enumerate(probs)
            if debouncer.push(_window(i), p, [p, 1 - p], "alarm")]


def test_debounce_needs_k_of_n_or_a_mean_of_n_at_the_threshold():
    policy = StreamPolicy(threshold=0.5, k=3, n=4, cooldown_ms=3_000)
    assert _run(Debouncer(policy), [0.9, 0.0, 0.9, 0.0, 0.9, 0.0, 0.0]) == []
    assert _run(Debouncer(policy), [0.9, 0.0, 0.9, 0.9, 0.0]) == [3]
    assert _run(Debouncer(StreamPolicy(threshold=0.5, k=1, n=1)), [0.1, 0.7]) == [1]
    # Never 3 of 4 at 0.5, but four windows about it: heard, on the fourth.
    assert _run(Debouncer(policy), [0.3, 0.6, 0.45, 0.7, 0.45, 0.45]) == [3]
    assert _run(Debouncer(policy), [0.3, 0.55, 0.4, 0.6, 0.4, 0.4]) == []


def test_one_long_alarm_makes_one_alert_and_cooldown_rearms():
    policy = StreamPolicy(threshold=0.5, k=2, n=3, cooldown_ms=3_000)
    probs = [0.9] * 40 + [0.1] * 4 + [0.9] * 3 + [0.1] * 8 + [0.9] * 3
    # 20 s of alarm -> one alert; a 2 s pause is shorter than the cooldown -> no second one;
    # 4 s of quiet re-arms it -> the last burst alerts again.
    assert _run(Debouncer(policy), probs) == [1, 56]


def test_alert_onset_is_the_first_positive_window_and_id_is_stable():
    policy = StreamPolicy(threshold=0.5, k=2, n=3)
    d = Debouncer(policy)
    d.push(_window(0), 0.1, [0.1, 0.9], "no_alarm")
    d.push(_window(1), 0.8, [0.8, 0.2], "alarm")
    detection = d.push(_window(2), 0.6, [0.6, 0.4], "alarm")
    assert detection.onset_ts == 500.0 and detection.window_end_ts == 3_000.0
    assert detection.confidence == pytest.approx(0.7)
    msg = alert_message("s1", detection, ["alarm", "no_alarm"], "alarm", "m:1", 99)
    assert msg["alert_id"] == "s1:500" and msg["probabilities"] == [0.6, 0.4]
    assert msg["predicted_label"] == "alarm" and msg["detected_ts"] == 99


def _message(**over) -> dict:
    base = {"chunk_id": "s:0", "stream_id": "s", "seq": 0, "ts": 1_700_000_000_000,
            "sample_rate": 16_000, "encoding": "pcm_s16le", "pcm": encode_pcm(np.zeros(160))}
    return {**base, **over}


@pytest.mark.parametrize(("over", "reason"), [
    ({"sample_rate": 12_345}, "not supported"),
    ({"channels": 2}, "only mono"),
    ({"pcm": "@@not base64@@"}, "not base64"),
    ({"pcm": base64.b64encode(b"\x00\x01\x02").decode()}, "even number"),
    ({"pcm": ""}, "empty"),
    ({"pcm": encode_pcm(np.zeros(16_000 * 6))}, "at most"),
    ({"seq": -1}, "start at 0"),
])
def test_bad_chunks_are_rejected_with_a_reason(over, reason):
    with pytest.raises(InvalidRecord, match=reason):
        decode_chunk(_message(**over))


def test_chunk_round_trip_and_resampling():
    audio = (np.sin(np.arange(4_410) / 10) * 0.5).astype(np.float32)
    msgs = list(chunk_messages(audio, 44_100, "s", 1_000, chunk_ms=50))
    assert [m["seq"] for m in msgs] == [0, 1]
    assert [m["ts"] for m in msgs] == [1_000, 1_050]
    back = np.concatenate([decode_chunk(m) for m in msgs])
    np.testing.assert_allclose(back, audio, atol=1 / 32_000)
    assert len(resample(back, 44_100, 16_000)) == 1_600


def test_debounce_comes_from_the_flags_then_the_model_then_the_defaults():
    import argparse

    from core.config import add_arguments, resolve
    from models.alarms.stream import PolicyOptions

    parser = argparse.ArgumentParser()
    add_arguments(parser, PolicyOptions, "detect")

    def policy(argv, trained=None):
        return resolve(PolicyOptions, "detect", parser.parse_args(argv), {}).config \
            .policy(trained)

    trained = {"threshold": 0.74, "k": 3, "n": 4}       # a model tuned with a 0.5 s hop
    assert policy([]) == StreamPolicy()
    got = policy([], trained)
    assert (got.threshold, got.k, got.n) == (0.74, 3, 4)
    got = policy(["--k", "5", "--n", "7", "--threshold", "0.6"], trained)
    assert (got.threshold, got.k, got.n) == (0.6, 5, 7)


def test_detector_state_round_trip_continues_identically():
    # Flink keeps a stream's detector as to_bytes(); a detector restored from it (after a
    # restart) must produce the same windows and decisions as one that never stopped.
    rng = np.random.default_rng(3)
    chunks = [Chunk(i, 1_000.0 + 100.0 * i, (0.1 * rng.standard_normal(1_600)).astype(np.float32))
              for i in range(40)]
    policy = StreamPolicy(threshold=0.5, k=2, n=3)
    live = StreamDetector(SPEC, policy)
    for c in [*chunks[:25], chunks[27]]:      # chunk 27 waits in the reorder buffer
        live.push(c)
    live.decide(Window(0.0, 2_000.0, np.zeros(1)), np.array([0.1, 0.9]), ["a", "alarm"],
                "alarm")
    restored = StreamDetector.from_bytes(live.to_bytes(), SPEC, policy)
    assert restored.sequencer.pending.keys() == live.sequencer.pending.keys()
    assert restored.counters == live.counters
    for c in chunks[25:27] + chunks[28:]:
        a, b = live.push(c), restored.push(c)
        assert [(w.start_ts, w.end_ts) for w in a] == [(w.start_ts, w.end_ts) for w in b]
        for wa, wb in zip(a, b, strict=True):
            np.testing.assert_array_equal(wa.features, wb.features)
            p = np.array([0.2, 0.8])
            assert live.decide(wa, p, ["a", "alarm"], "alarm") == \
                restored.decide(wb, p, ["a", "alarm"], "alarm")


def test_a_producer_that_numbers_its_stream_from_0_again_is_a_reset_not_duplicates():
    s = Sequencer(depth=3)
    for seq in range(10):
        s.push(_chunk(seq))
    # The producer restarted: seq 0 again, with audio newer than any released.
    restarted = [Chunk(i, 1_000_000.0 + (10 + i) * 100, np.zeros(1600, np.float32))
                 for i in range(5)]
    out = [s.push(c) for c in restarted]
    assert [(len(r), dup) for r, dup in out] == [(1, False)] * 5
    assert s.resets == 1 and s.next_seq == 5
    assert s.push(restarted[2]) == ([], True)         # a real duplicate is still one


def test_a_jump_far_ahead_then_back_does_not_silence_the_stream():
    s = Sequencer(depth=2)
    s.push(_chunk(0))
    s.push(_chunk(1))
    for seq in (10**12, 10**12 + 1, 10**12 + 2):      # bogus numbering, then back to normal
        s.push(Chunk(seq, 1_000_000.0 + (seq - 10**12 + 2) * 100, np.zeros(1600, np.float32)))
    released, dup = s.push(Chunk(5, 1_000_000.0 + 5 * 100, np.zeros(1600, np.float32)))
    assert not dup and [c.seq for c in released] == [5]
    released, dup = s.push(Chunk(6, 1_000_000.0 + 6 * 100, np.zeros(1600, np.float32)))
    assert not dup and [c.seq for c in released] == [6]


def test_renumbering_survives_a_snapshot():
    d = StreamDetector(SPEC, StreamPolicy(reorder_depth=2))
    for seq in range(5):
        d.push(_chunk(seq))
    d.push(Chunk(0, 1_000_000.0 + 5 * 100, np.zeros(1600, np.float32)))
    assert d.counters.resets == 1
    again = StreamDetector.from_bytes(d.to_bytes(), SPEC, StreamPolicy(reorder_depth=2))
    assert again.sequencer.last_ts == d.sequencer.last_ts and again.sequencer.next_seq == 1
    assert again.push(Chunk(1, 1_000_000.0 + 6 * 100, np.zeros(1600, np.float32))) is not None
    assert again.counters.duplicates == 0
