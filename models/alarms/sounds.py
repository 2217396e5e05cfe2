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
from scipy.signal import butter, fftconvolve, lfilter

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
    _gate(out, carrier, t3_schedule(duration_s, rng, timing_jitter=0.05), rate)
    return out * np.float32(rng.uniform(0.5, 0.9))


def _gate(out: np.ndarray, carrier: np.ndarray, tones: list[tuple[float, float]],
          rate: int) -> None:
    """``carrier`` into ``out`` where the tones sound, with 5 ms attack and release as a real
    transducer has."""
    ramp = max(1, int(0.005 * rate))
    for start, end in tones:
        a, b = round(start * rate), round(end * rate)
        env = np.ones(b - a, np.float32)
        r = min(ramp, (b - a) // 2)
        if r:
            env[:r] = np.linspace(0, 1, r)
            env[-r:] = np.linspace(1, 0, r)
        out[a:b] = carrier[a:b] * env


def pick(rng: np.random.Generator, items):
    """One of ``items``, drawn the way the dataset's draws are (one ``integers`` call)."""
    return items[rng.integers(len(items))]


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
        f1, f2, f3 = pick(rng, _VOWELS)
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


# ---------------------------------------------------------------------------- alarm kinds
# Temporal patterns of real devices, as (on_s, off_s) steps of one cycle: ISO 8201 temporal-
# three (smoke), temporal-four (carbon monoxide: four 0.1 s beeps then ~5 s), and continuous.
T4_ON_S, T4_GAP_S, T4_PAUSE_S = 0.1, 0.1, 5.0
T4_GROUP_S = 4 * T4_ON_S + 3 * T4_GAP_S


def pattern_schedule(kind: str, duration_s: float, rng: np.random.Generator,
                     jitter: float = 0.05) -> list[tuple[float, float]]:
    """(start_s, end_s) of every tone of a ``t3``, ``t4`` or ``continuous`` pattern."""
    if kind == "t3":
        return t3_schedule(duration_s, rng, timing_jitter=jitter)
    if kind == "continuous":
        return [(0.0, duration_s)]
    if kind != "t4":
        raise ValueError(f"unknown alarm pattern {kind!r}")
    tones, t = [], 0.0
    while t < duration_s:
        scale = 1.0 + rng.uniform(-jitter, jitter)
        for i in range(4):
            start = t + i * (T4_ON_S + T4_GAP_S) * scale
            if start < duration_s:
                tones.append((start, min(start + T4_ON_S * scale, duration_s)))
        t += (4 * T4_ON_S + 3 * T4_GAP_S + T4_PAUSE_S) * scale
    return tones


def _carrier(source: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The sound of one device: a piezo disc (2.8–3.5 kHz with harmonics, slight warble), the
    520 Hz square wave of low-frequency alarms, or a fire bell (a clapper striking 10–20 times a
    second, each strike ringing inharmonic partials that decay)."""
    t = np.arange(n) / rate
    if source == "piezo":
        f = rng.uniform(2800.0, 3500.0) * (1 + 0.004 * np.sin(2 * np.pi * rng.uniform(3, 9) * t))
        phase = 2 * np.pi * np.cumsum(f) / rate
        h2, h3 = rng.uniform(0.02, 0.3), rng.uniform(0.0, 0.15)
        return np.sin(phase) + h2 * np.sin(2 * phase) + h3 * np.sin(3 * phase)
    if source == "lf520":
        return np.sign(np.sin(2 * np.pi * 520.0 * rng.uniform(0.97, 1.03) * t)) * 0.6
    if source == "bell":
        out = np.zeros(n)
        strike = 1.0 / rng.uniform(10.0, 20.0)
        partials = rng.uniform(900.0, 1100.0) * np.array([1.0, 2.32, 4.25, 6.63])
        ring = np.arange(round(strike * 3 * rate)) / rate
        tone = sum(a * np.sin(2 * np.pi * p * ring) for a, p in zip((1, .6, .4, .25), partials,
                                                                    strict=True))
        tone = tone * np.exp(-ring * rng.uniform(8.0, 20.0))
        for s in np.arange(0, n / rate, strike):
            a = round(s * rate)
            seg = tone[: n - a]
            out[a:a + len(seg)] += seg * rng.uniform(0.7, 1.0)
        return out / max(1e-9, np.max(np.abs(out)))
    raise ValueError(f"unknown alarm source {source!r}")


# Every kind the generator makes: pattern and sound. Evaluation reports detection per kind.
ALARM_KINDS: dict[str, tuple[str, str]] = {
    "t3_piezo": ("t3", "piezo"),
    "t3_520hz": ("t3", "lf520"),
    "t4_piezo": ("t4", "piezo"),
    "continuous_piezo": ("continuous", "piezo"),
    "bell": ("continuous", "bell"),
}


def alarm_sound(kind: str, duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """An alarm of ``kind`` (``ALARM_KINDS``) sounding for ``duration_s`` from t=0."""
    pattern, source = ALARM_KINDS[kind]
    n = round(duration_s * rate)
    carrier = _carrier(source, n, rate, rng)
    out = np.zeros(n, np.float32)
    _gate(out, carrier, pattern_schedule(pattern, duration_s, rng), rate)
    return out * np.float32(rng.uniform(0.5, 0.9))


# ---------------------------------------------------------------------------- rooms
def room(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` as a microphone across a room hears it: reverberation (an exponentially decaying
    noise tail, RT60 0.15–0.9 s, at a random direct-to-reverberant ratio) and distance (high
    frequencies absorbed). Same length as ``x``."""
    rt60 = rng.uniform(0.15, 0.9)
    n_ir = round(rt60 * rate)
    tail = rng.standard_normal(n_ir) * np.exp(-6.9 * np.arange(n_ir) / n_ir)
    ir = np.zeros(n_ir + 1)
    ir[0] = 1.0
    ir[1:] = tail / np.sqrt(np.sum(tail ** 2)) * rng.uniform(0.3, 1.5)
    wet = fftconvolve(x, ir)[: len(x)]
    cutoff = rng.uniform(0.35, 0.95)   # one-pole low-pass: the farther, the duller
    wet = lfilter([1 - cutoff], [1, -cutoff], wet) if rng.random() < 0.5 else wet
    return normalise(wet, rms(x) or 1e-4)


def phone_band(x: np.ndarray, rate: int) -> np.ndarray:
    """A phone-grade microphone and codec: 300–3,400 Hz (second-order band-pass)."""
    b, a = butter(2, [300.0 / (rate / 2), min(3400.0 / (rate / 2), 0.99)], btype="band")
    return lfilter(b, a, x).astype(np.float32)


# ---------------------------------------------------------------------------- hard negatives
def appliance_beeps(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A microwave, oven timer or washing machine: 1–5 beeps of 0.08–0.35 s at 1–4 kHz, once,
    somewhere in the clip (not a repeating alarm cycle)."""
    n = round(duration_s * rate)
    out = np.zeros(n, np.float32)
    f = rng.uniform(1000.0, 4000.0)
    on, off = rng.uniform(0.08, 0.35), rng.uniform(0.08, 0.4)
    count = int(rng.integers(1, 6))
    harmonics = np.random.default_rng(rng.integers(1 << 32))   # each beep's, drawn apart
    if count == 4 and on < 0.15 and off < 0.15:   # that is a CO alarm's temporal-four group
        count = 3
    # The whole burst fits: a burst cut by the clip's end could read as a temporal-four group.
    t0 = rng.uniform(0, max(0.01, duration_s - count * (on + off)))
    for i in range(count):
        a = round((t0 + i * (on + off)) * rate)
        b = min(n, a + round(on * rate))
        if a >= n:
            break
        tt = np.arange(b - a) / rate
        out[a:b] = _buzzer(2 * np.pi * f * tt, harmonics) * np.minimum(1, tt / 0.005)
    return normalise(out + 0.003 * rng.standard_normal(n), rng.uniform(0.02, 0.15))


def ringtone(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A phone ringing: the classic 400+450 Hz ring modulated at 20 Hz (2 s on, 4 s off), an
    electronic trill, or a melody of short notes."""
    n = round(duration_s * rate)
    t = np.arange(n) / rate
    style = rng.random()
    if style < 0.3:
        tone = np.sin(2 * np.pi * 400 * t) + np.sin(2 * np.pi * 450 * t)
        gate = ((t + rng.uniform(0, 6)) % 6.0) < 2.0
        x = tone * (0.5 + 0.5 * np.sin(2 * np.pi * 20 * t)) * gate
    elif style < 0.55:  # a beeping ringer: a 0.7-1.5 kHz tone in bursts, rings 1-2 s apart
        f = rng.uniform(700.0, 1500.0)
        beep, gap = rng.uniform(0.05, 0.3), rng.uniform(0.03, 0.2)
        ring, pause = rng.uniform(0.8, 2.0), rng.uniform(1.0, 4.0)
        burst = ((t % (beep + gap)) < beep) & (((t + rng.uniform(0, 5)) % (ring + pause)) < ring)
        x = _buzzer(2 * np.pi * f * t, rng) * burst
    elif style < 0.8:   # an electronic trill ringer: two tones alternating 10-20 times a second
        f1, f2 = rng.uniform(600.0, 2500.0), rng.uniform(600.0, 2500.0)
        f = np.where(((t * rng.uniform(10.0, 20.0)) % 1.0) < 0.5, f1, f2)
        on, period = rng.uniform(0.8, 2.0), rng.uniform(1.0, 4.0)
        gate = ((t + rng.uniform(0, period)) % period) < on if rng.random() < 0.6 else 1.0
        x = _buzzer(2 * np.pi * np.cumsum(f) / rate, rng) * gate
    else:
        x = np.zeros(n)
        note = rng.uniform(0.1, 0.25)
        freqs = 440.0 * 2 ** (rng.integers(0, 24, 8) / 12)
        for i, s in enumerate(np.arange(0, duration_s, note)):
            a, b = round(s * rate), min(n, round((s + note * 0.9) * rate))
            x[a:b] = np.sin(2 * np.pi * freqs[i % 8] * t[a:b])
    return normalise(x, rng.uniform(0.02, 0.15))


def _buzzer(phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tone as a small speaker or buzzer sounds it: often rich in odd harmonics (a driven
    square wave), whose third falls where piezo alarms sound when the tone is near 1 kHz."""
    h3, h5 = rng.uniform(0.0, 0.6) * (rng.random() < 0.6), rng.uniform(0.0, 0.3)
    return np.sin(phase) + h3 * np.sin(3 * phase) + h5 * h3 * np.sin(5 * phase)


def phone_tones(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Call-progress tones: busy (480+620 Hz or 425 Hz, 0.5 s on, 0.5 s off), ringback
    (440+480 Hz, 2 s on, 4 s off) or congestion (0.25 s on, 0.25 s off): cadenced tones
    close to a low-frequency alarm's, and not one."""
    t = np.arange(round(duration_s * rate)) / rate
    kind = rng.integers(3)
    pair = ((480.0, 620.0), (425.0, 425.0), (440.0, 480.0))[rng.integers(3)]
    tone = np.sin(2 * np.pi * pair[0] * t) + np.sin(2 * np.pi * pair[1] * t)
    on, period = ((0.5, 1.0), (2.0, 6.0), (0.25, 0.5))[kind]
    gate = ((t + rng.uniform(0, period)) % period) < on
    return normalise(tone * gate + 0.002 * rng.standard_normal(len(t)), rng.uniform(0.02, 0.15))


def alarm_clock(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A bedside alarm clock or kitchen timer: groups of 2 (sometimes 1 or 3) short beeps at
    2–4 kHz repeating about once a second: not a smoke alarm's pattern."""
    n = round(duration_s * rate)
    out = np.zeros(n)
    f, beep = rng.uniform(2000.0, 4000.0), rng.uniform(0.05, 0.12)
    group, period = int(rng.choice([1, 2, 2, 3])), rng.uniform(0.6, 1.2)
    tt = np.arange(round(beep * rate)) / rate
    tone = np.sin(2 * np.pi * f * tt) * np.minimum(1, tt / 0.003)
    s = rng.uniform(0, period)
    while s < duration_s:
        for i in range(group):
            a = round((s + i * beep * 2) * rate)
            seg = tone[: max(0, n - a)]
            out[a:a + len(seg)] = seg
        s += period
    return normalise(out + 0.002 * rng.standard_normal(n), rng.uniform(0.02, 0.15))


def siren(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """An emergency vehicle: wail (slow 600–1,400 Hz sweep) or yelp (fast sweep)."""
    t = np.arange(round(duration_s * rate)) / rate
    period = rng.uniform(3.0, 6.0) if rng.random() < 0.5 else rng.uniform(0.15, 0.35)
    f = 1000.0 + 400.0 * np.sin(2 * np.pi * t / period + rng.uniform(0, 6))
    x = np.sign(np.sin(2 * np.pi * np.cumsum(f) / rate)) * 0.5
    return normalise(lfilter([0.3], [1, -0.7], x), rng.uniform(0.02, 0.15))


def whistle(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A kettle, a whistling breath (a breathy tone gliding through 1.5–4 kHz) or a person
    whistling a tune."""
    n = round(duration_s * rate)
    t = np.arange(n) / rate
    if rng.random() < 0.5:   # a glide, rising (a kettle) or falling (a whistling breath)
        start, end = rng.uniform(1500.0, 4000.0, 2)
        f = start + (end - start) * t / max(duration_s, 1e-3)
    else:
        steps = rng.uniform(800.0, 2500.0, int(duration_s / 0.3) + 2)
        f = steps[(t / 0.3).astype(int)] * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    x = np.sin(2 * np.pi * np.cumsum(f) / rate) + 0.2 * rng.standard_normal(n)
    return normalise(x, rng.uniform(0.02, 0.12))


def sustained_notes(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Organ or synthesiser notes held 0.5–3 s, some high: tones that are not alarms."""
    n = round(duration_s * rate)
    out = np.zeros(n)
    s = 0.0
    while s < duration_s:
        length = rng.uniform(0.5, 3.0)
        a, b = round(s * rate), min(n, round((s + length) * rate))
        tt = np.arange(b - a) / rate
        f0 = 220.0 * 2 ** (rng.integers(0, 36) / 12)
        out[a:b] = sum(rng.uniform(0.2, 1) / h * np.sin(2 * np.pi * f0 * h * tt)
                       for h in range(1, 4)) * np.minimum(1, tt / 0.02)
        s += length
    return normalise(out, rng.uniform(0.03, 0.15))


def room_tone(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A quiet room: brown-ish noise and faint hum, from −75 to −40 dBFS."""
    x = noise(duration_s, rate, rng, "brown") + 0.3 * noise(duration_s, rate, rng, "pink")
    return normalise(x, 10 ** (rng.uniform(-75.0, -40.0) / 20))


def machine(duration_s: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A running machine or tap (a fan, an exercise bike, a dishwasher, water): broadband noise
    with a random tilt and a few broad resonances, slowly swelling. Loud stationary noise
    raises every band, so a tone stands less far above the window's median than over speech."""
    x = noise(duration_s, rate, rng, pick(rng, ("white", "pink", "brown")))
    for _ in range(rng.integers(1, 4)):
        centre = rng.uniform(300.0, 5_000.0)
        b, a = butter(2, [centre / 1.5 / (rate / 2), min(centre * 1.5 / (rate / 2), 0.99)],
                      btype="band")
        x = x + rng.uniform(0.5, 3.0) * lfilter(b, a, x)
    t = np.arange(len(x)) / rate
    x = x * (1.0 + rng.uniform(0.0, 0.6) * np.sin(2 * np.pi * rng.uniform(0.3, 3.0) * t))
    return normalise(x, rng.uniform(0.05, 0.2))


GENERATED_BACKGROUNDS.update({
    "machine": machine,
    "appliance_beeps": appliance_beeps,
    "ringtone": ringtone,
    "phone_tones": phone_tones,
    "alarm_clock": alarm_clock,
    "siren": siren,
    "whistle": whistle,
    "sustained_notes": sustained_notes,
    "room_tone": room_tone,
})
