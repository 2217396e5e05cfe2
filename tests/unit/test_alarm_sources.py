"""Alarm kinds, rooms and hard negatives of the generator, the dataset's levels, and the
leave-one-source-out evaluation on a tiny set of sources."""

from __future__ import annotations

import numpy as np
import pytest

from models.alarms import sounds
from models.alarms.dataset import DatasetConfig, Mixer, Sources
from models.alarms.evaluate import (
    EvalConfig,
    leave_one_source_out,
    poisson_interval,
    report_markdown,
)
from models.alarms.pcm import write_wav
from models.alarms.training import TrainParams

RATE = 16_000


def _on(x: np.ndarray, hop: int = RATE // 100) -> np.ndarray:
    env = np.array([sounds.rms(x[i:i + hop]) for i in range(0, len(x) - hop + 1, hop)])
    return env > env.max() * 0.3


def test_temporal_four_is_four_short_beeps_then_a_long_pause():
    tones = sounds.pattern_schedule("t4", 7.0, np.random.default_rng(0), jitter=0.0)
    assert [round(a, 2) for a, _ in tones[:5]] == [0.0, 0.2, 0.4, 0.6, 5.7]
    assert all(round(b - a, 2) == 0.1 for a, b in tones)


@pytest.mark.parametrize("kind", list(sounds.ALARM_KINDS))
def test_every_kind_sounds_where_its_pattern_says(kind):
    x = sounds.alarm_sound(kind, 6.0, RATE, np.random.default_rng(1))
    on = _on(x)
    pattern = sounds.ALARM_KINDS[kind][0]
    expected = {"t3": (0.3, 0.5), "t4": (0.05, 0.15), "continuous": (0.8, 1.0)}[pattern]
    assert expected[0] <= on.mean() <= expected[1], on.mean()


def test_piezo_and_low_frequency_pitches():
    for kind, band in (("continuous_piezo", (2_800, 3_500)), ("t3_520hz", (500, 540))):
        x = sounds.alarm_sound(kind, 2.0, RATE, np.random.default_rng(2))
        spectrum = np.abs(np.fft.rfft(x))
        assert band[0] <= np.argmax(spectrum) * RATE / len(x) <= band[1]


def test_room_keeps_length_and_level():
    rng = np.random.default_rng(3)
    x = sounds.alarm_sound("t3_piezo", 4.0, RATE, rng)
    y = sounds.room(x, RATE, rng)
    assert len(y) == len(x) and sounds.rms(y) == pytest.approx(sounds.rms(x), rel=1e-3)


def test_appliance_beeps_never_make_a_temporal_four_group():
    for seed in range(200):
        x = sounds.appliance_beeps(3.0, RATE, np.random.default_rng(seed))
        on = _on(x)
        rise = np.flatnonzero(on[1:] & ~on[:-1]) + 1
        rise = np.concatenate([[0], rise]) if on[0] else rise
        short = on.sum() / 100 / max(len(rise), 1) < 0.15
        tight = len(rise) > 1 and np.diff(rise).max() / 100 < 0.3   # T4: a beep every 0.2 s
        assert not (len(rise) == 4 and short and tight), seed


def _rises(on: np.ndarray) -> int:
    return int(on[0]) + int(np.count_nonzero(on[1:] & ~on[:-1]))


def test_a_temporal_four_clip_holds_its_whole_group_of_four():
    """Three beeps of 0.1 s are an appliance's (a hard negative): a CO alarm's clip must show
    the four that make it one."""
    mixer = Mixer(DatasetConfig(out="", rate=RATE), Sources({}, {}), np.random.default_rng(6))
    for _ in range(40):
        alarm = sounds.alarm_sound("t4_piezo", sounds.T3_CYCLE_S * 2, RATE, mixer.rng)
        offset_s, part = mixer._place(alarm, "t4_piezo")
        clip = np.zeros(2 * RATE, np.float32)
        a = round(offset_s * RATE)
        clip[a:a + len(part)] = part[: 2 * RATE - a]
        assert _rises(_on(clip)) == 4, offset_s


def test_generated_alarm_free_sounds_pass_through_rooms_as_alarms_do(monkeypatch):
    """Reverberation must not tell an alarm: the forest learned it as one when only alarms
    were played through simulated rooms."""
    roomed = []
    real_room = sounds.room
    monkeypatch.setattr(sounds, "room", lambda x, rate, rng: roomed.append(1) or
                        real_room(x, rate, rng))
    mixer = Mixer(DatasetConfig(out="", rate=RATE), Sources({}, {}), np.random.default_rng(7))
    for _ in range(100):
        mixer.background(2.0)
    assert 40 <= len(roomed) <= 80, len(roomed)


def test_dataset_levels_alarms_loud_and_alarm_free_down_to_near_silence():
    cfg = DatasetConfig(out="", rate=RATE)
    mixer = Mixer(cfg, Sources({}, {}), np.random.default_rng(4))
    alarm_db = [20 * np.log10(sounds.rms(mixer.alarm_clip()[0])) for _ in range(30)]
    quiet_db = [20 * np.log10(sounds.rms(mixer.background_clip(2.0)[0]) + 1e-12)
                for _ in range(60)]
    assert min(alarm_db) >= cfg.alarm_level_dbfs[0] - 1
    assert min(quiet_db) < -60 and max(quiet_db) > -25


def test_leave_one_source_out_scores_each_source_without_training_on_it(tmp_path):
    rng = np.random.default_rng(5)
    for source, folder, make in (("hall", "alarm", lambda: sounds.alarm_sound(
            "bell", 6.0, RATE, rng)), ("kitchen", "background", lambda: sounds.speech_like(
            6.0, RATE, rng)), ("street", "background", lambda: sounds.noise(
            6.0, RATE, rng, "pink"))):
        for i in range(2):
            write_wav(tmp_path / source / folder / f"{source}{i}.wav", make(), RATE)
    cfg = EvalConfig(real_audio=str(tmp_path), clips_per_class=40, streams=1, snrs_db=(10.0,),
                     background_minutes=0.2, params=TrainParams(n_estimators=10))
    folds = []
    summary = leave_one_source_out(cfg, folds.append)
    assert [f["source"] for f in folds] == ["hall", "kitchen", "street"]
    assert "background_hours" not in folds[0]          # an alarm-only source
    assert folds[1]["background_hours"] == pytest.approx(0.2 / 60)
    kinds = {e["kind"] for f in folds for e in f["events"]}
    assert kinds == {*sounds.ALARM_KINDS, "real:hall0", "real:hall1"}
    assert set(summary["by_kind_snr_ge_0"]) == {*sounds.ALARM_KINDS, "real"}
    assert 0.0 <= summary["detection_rate_snr_ge_0"] <= 1.0
    hall = summary["by_source"]["hall"]
    assert hall["false_alerts_per_hour"] is None   # nothing of its own to replay
    detected = [e["delay_s"] for e in folds[0]["events"] if e["detected"]]
    assert hall["delay_s_p50"] == (pytest.approx(float(np.median(detected)), abs=0.01)
                                   if detected else None)
    assert "| hall |" in report_markdown(summary)
    assert "no backgrounds" in report_markdown(summary)


def test_alarm_clips_hold_every_kind_about_equally_often():
    """Kinds with long silences (temporal-four) are not under-represented: a clip that misses
    the alarm's tones draws a new offset, not a new alarm."""
    mixer = Mixer(DatasetConfig(out="", rate=RATE), Sources({}, {}), np.random.default_rng(4))
    kinds = [mixer.alarm_clip()[1]["alarm"] for _ in range(500)]
    shares = {k: kinds.count(k) / len(kinds) for k in sounds.ALARM_KINDS}
    assert min(shares.values()) > 0.5 / len(sounds.ALARM_KINDS), shares


def test_false_alert_rate_interval_is_the_exact_poisson_one():
    # 6 alerts in 1.75 h: the textbook Garwood bounds for 6 events are 2.202 and 13.06
    assert poisson_interval(6, 1.75) == (round(2.202 / 1.75, 2), round(13.06 / 1.75, 2))
    low, high = poisson_interval(0, 2.0)
    assert low == 0.0 and high == pytest.approx(3.689 / 2, abs=0.01)
