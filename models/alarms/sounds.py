"""Generated sounds for the alarm dataset: smoke alarms and the backgrounds they play over.

Deterministic by the ``numpy.random.Generator`` passed in. All functions return float32 mono
samples in [-1, 1] at ``rate``.

* ``t3_alarm``: the ISO 8201 / NFPA 72 temporal-three pattern — three 0.5 s tones with 0.5 s
  between, then 1.5 s of silence — at about 3 kHz (piezo smoke alarms), or the 520 Hz square
  wave of low-frequency alarms; pitch, timing and loudness jitter per alarm.
* backgrounds: speech-like babble (formant synthesis: a glottal pulse train through vowel
  formants, syllable-rate envelope), music-like notes, coloured noise, mains hum, and mixes.
* ``mix_at_snr``: overlay at a signal-to-noise ratio measured on the alarm's active samples.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

T3_ON_S, T3_GAP_S, T3_PAUSE_S = 0.5, 0.5, 1.5
T3_CYCLE_S = 3 * T3_ON_S + 2 * T3_GAP_S + T3_PAUSE_S   # 4 s


def t3_schedule(duration_s: float, rng: np.random.Generator | None = None,
                timing_jitter: float = 0.0) -> list[tuple[float, float]]:
    """(start_s, end_s) of every tone within ``duration_s``; jitter scales each period."""
    tones, t = [], 0.0
    while t < duration_s:
        scale = 1.0 + (rng.uniform(-timing_jitter, timing_jitter) if rng else 0.0)
        for i in range(3):
            start = t + i * (T3_ON_S + T3_GAP_S) * scale
            if start >= duration_s:
                break
            tones.append((start, min(start + T3_ON_S * scale, duration_s)))
        t += T3_CYCLE_S * scale
    return tones


def t3_alarm(duration_s: float, rate: int, rng: np.random.Generator, *,
             low_frequency: bool = False) -> np.ndarray:
    """A smoke alarm sounding for ``duration_s`` (pattern starts at t=0)."""
    n = round(duration_s * rate)
    out = np.zeros(n, np.float32)
    freq = 520.0 * rng.uniform(0.97, 1.03) if low_frequency else rng.uniform(2900.0, 3400.0)
    t = np.arange(n) / rate
    if low_frequency:   # a square wave: 520 Hz plus odd harmonics
        carrier = np.sign(np.sin(2 * np.pi * freq * t)) * 0.6
    else:               # piezo: a near-sine with some second harmonic
        carrier = np.sin(2 * np.pi * freq * t) + 0.15 * np.sin(4 * np.pi * freq * t)
    ramp = max(1, int(0.005 * rate))   # 5 ms attack/release, as a real transducer has
    for start, end in t3_schedule(duration_s, rng, timing_jitter=0.05):
        a, b = round(start * rate), round(end * rate)
        env = np.ones(b - a, np.float32)
        r = min(ramp, (b - a) // 2)
        if r:
            env[:r] = np.linspace(0, 1, r)
            env[-r:] = np.linspace(1, 0, r)
        out[a:b] = carrier[a:b] * env
    return out * np.float32(rng.uniform(0.5, 0.9))


def normalise(x: np.ndarray, target_rms: float) -> np.ndarray:
    """``x`` scaled to RMS ``target_rms`` (float32)."""
    current = float(np.sqrt(np.mean(x ** 2))) or 1.0
    return (x * (target_rms / current)).astype(np.float32)


def noise(duration_s: float, rate: int, rng: np.random.Generator, colour: str = "white"):
    n = round(duration_s * rate)
    white = rng.standard_normal(n)
    if colour == "pink":   # Voss-like 1/f approximation (Kellet's filter coefficients)
        white = lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                        [1, -2.494956002, 2.017265875, -0.522189400], white)
    elif colour == "brown":
        white = np.cumsum(white)
        white -= np.linspace(white[0], white[-1], n)
    return normalise(white, rng.uniform(0.02, 0.15))


def hum(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) with a little noise, as rooms and studios have."""
    t = np.arange(round(duration_s * rate)) / rate
    base = rng.choice([50.0, 60.0])
    x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6))
            for k in range(1, 8))
    x = x + 0.05 * rng.standard_normal(len(t))
    return normalise(x, rng.uniform(0.02, 0.1))


def music(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Notes with harmonics and decaying envelopes, chords at random, 60–160 bpm."""
    n = round(duration_s * rate)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(60, 160)
    t = 0.0
    while t < duration_s:
        length = beat * rng.choice([0.5, 1, 1, 2])
        a, b = round(t * rate), min(n, round((t + length * 1.5) * rate))
        tt = np.arange(b - a) / rate
        env = np.exp(-tt * rng.uniform(1.5, 6.0)) * np.minimum(1, tt / 0.01)
        for _ in range(rng.integers(1, 4)):
            f0 = 110.0 * 2 ** (rng.integers(0, 40) / 12)   # A2 .. ~C6
            note = sum(rng.uniform(0.1, 1) / h * np.sin(2 * np.pi * f0 * h * tt)
                       for h in range(1, 6))
            out[a:b] += env * note
        t += length
    return normalise(out, rng.uniform(0.05, 0.2))


_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
           (660, 1720, 2410), (490, 1350, 1690), (640, 1190, 2390))


def _formant_filter(x: np.ndarray, freq: float, bw: float, rate: int) -> np.ndarray:
    r = np.exp(-np.pi * bw / rate)
    theta = 2 * np.pi * freq / rate
    return lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


def speech_like(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Babble-like voiced speech: a glottal pulse train with a wandering pitch through vowel
    formants, syllables of 120–300 ms, pauses between phrases. Not words, but the spectro-
    temporal texture (harmonics up to ~3.5 kHz, 4 Hz syllable rhythm) that a detector must not
    mistake for an alarm."""
    n = round(duration_s * rate)
    out = np.zeros(n)
    t = 0.0
    pitch = rng.uniform(90, 240)
    while t < duration_s:
        syl = rng.uniform(0.12, 0.3)
        a, b = round(t * rate), min(n, round((t + syl) * rate))
        if b <= a:
            break
        f0 = pitch * rng.uniform(0.85, 1.2)
        period = max(2, round(rate / f0))
        pulses = np.zeros(b - a)
        pulses[::period] = 1.0
        voiced = lfilter([1.0], [1, -0.95], pulses)   # glottal roll-off
        f1, f2, f3 = _VOWELS[rng.integers(len(_VOWELS))]
        seg = sum(g * _formant_filter(voiced, f, bw, rate)
                  for f, bw, g in ((f1, 90, 1.0), (f2, 110, 0.5), (f3, 160, 0.25)))
        seg += 0.02 * rng.standard_normal(b - a)      # breath/fricative noise
        env = np.sin(np.linspace(0, np.pi, b - a)) ** 0.7
        out[a:b] += seg * env
        t += syl + (rng.uniform(0.3, 0.8) if rng.random() < 0.15 else rng.uniform(0, 0.05))
    return normalise(out, rng.uniform(0.05, 0.2))


GENERATED_BACKGROUNDS = {
    "speech": speech_like,
    "music": music,
    "white_noise": lambda d, r, g: noise(d, r, g, "white"),
    "pink_noise": lambda d, r, g: noise(d, r, g, "pink"),
    "brown_noise": lambda d, r, g: noise(d, r, g, "brown"),
    "hum": hum,
}


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def mix_at_snr(background: np.ndarray, alarm: np.ndarray, offset: int, snr_db: float,
               ) -> np.ndarray:
    """``alarm`` added to ``background`` from sample ``offset`` so that the alarm's power over
    its active (non-silent) samples is ``snr_db`` above the background's power."""
    out = background.astype(np.float32, copy=True)
    end = min(len(out), offset + len(alarm))
    part = alarm[: end - offset]
    active = part[np.abs(part) > 1e-4]
    if len(active) == 0:
        return out
    bg = max(rms(background), 1e-4)
    gain = bg * 10 ** (snr_db / 20) / rms(active)
    out[offset:end] += part * gain
    peak = float(np.max(np.abs(out)))
    return out / peak * 0.95 if peak > 0.95 else out
