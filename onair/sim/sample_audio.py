"""A demo recording: someone talking, and a smoke alarm going off in the middle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.alarms import sounds
from models.alarms.pcm import read_wav

RATE = 16_000
SPEECH = ("another_engineer", "i_tell_you", "testing_routine", "yes_no_go_stop", "right_left_up")


def speech(seconds: float, audio_dir: str | None, rng: np.random.Generator) -> np.ndarray:
    """Real read speech (LibriSpeech / Speech Commands clips) when available, else babble."""
    folder = Path(audio_dir or "") / "arm-mlek-speech" / "background"
    clips = [read_wav(folder / f"{n}.wav", RATE) for n in SPEECH if (folder / f"{n}.wav").exists()]
    if not clips:
        return sounds.speech_like(seconds, RATE, rng)
    n = round(seconds * RATE)
    x = np.concatenate(clips * (n // sum(map(len, clips)) + 1))[:n]
    return sounds.normalise(x, 0.1)


def demo_recording(audio_dir: str | None, seconds: float = 24.0, alarm_at_s: float = 10.0,
                   seed: int = 3) -> tuple[np.ndarray, float]:
    """(samples, alarm onset in s): speech throughout, an 8 s smoke alarm at +5 dB from
    ``alarm_at_s``."""
    rng = np.random.default_rng(seed)
    alarm = sounds.t3_alarm(8.0, RATE, rng)
    return sounds.mix_at_snr(speech(seconds, audio_dir, rng), alarm,
                             round(alarm_at_s * RATE), 5.0), alarm_at_s
