"""Log-mel frames, sliding windows over them, and the window summary the classifier reads.

Pure numpy, no Flink. The same code runs in training (``models/alarms/training.py``), in the
streaming job (``models/alarms/stream.py``) and in ``onair detect``, so what the model was
trained on is exactly what it sees in production.

Frames are computed without centring (frame ``i`` covers samples ``[i*hop, i*hop+n_fft)``), so a
stream's frames do not depend on how its samples were cut into chunks: frames are computed once as
samples arrive and every window is a slice of them. The per-window baseline in
``tests/benchmarks/bench_alarms.py`` recomputes a librosa spectrogram per window instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from models.native_import import import_on_python_thread

# Floor of the power spectrum before the log: -100 dB, below any s16 signal's quantisation noise.
_POWER_FLOOR = 1e-10
# A band is "on" in a frame when it is this many dB above the window's median level.
_ON_DB = 12.0


@dataclass(frozen=True)
class FeatureSpec:
    """What the model was trained with; saved in the registry entry and checked at load."""

    sample_rate: int = 16_000
    n_fft: int = 512
    frame_hop: int = 250          # 64 frames per second at 16 kHz
    n_mels: int = 48
    fmin_hz: float = 400.0        # the band crop: keeps the 520 Hz variant and the ~3 kHz tones
    fmax_hz: float = 4_500.0
    window_s: float = 2.0
    hop_s: float = 0.25           # a window every 0.25 s: alerts come sooner (docs/alarms.md)

    def __post_init__(self) -> None:
        for name in ("window_s", "hop_s"):
            samples = getattr(self, name) * self.sample_rate
            if samples != int(samples) or int(samples) % self.frame_hop:
                raise ValueError(f"{name}={getattr(self, name)} s is not a whole number of "
                                 f"{self.frame_hop}-sample frame hops at {self.sample_rate} Hz")
        if self.window_samples < self.n_fft:
            raise ValueError("window shorter than one FFT frame")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate / 2:
            raise ValueError(f"band {self.fmin_hz}..{self.fmax_hz} Hz is not inside "
                             f"0..{self.sample_rate / 2} Hz")

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sample_rate)

    @property
    def frames_per_window(self) -> int:
        return 1 + (self.window_samples - self.n_fft) // self.frame_hop

    @property
    def frames_per_hop(self) -> int:
        return self.hop_samples // self.frame_hop

    def as_dict(self) -> dict:
        return asdict(self)

    # Derived arrays come from caches keyed by the (frozen, hashable) spec, not from attributes:
    # a spec pickled into every stream's keyed state carries its parameters only, and all the
    # specs equal to it share one mel basis.
    @property
    def mel_basis(self) -> np.ndarray:
        """(bands in the crop, n_fft/2+1): the mel filters whose centres lie in the band."""
        return _cropped_mel_basis(self)

    @property
    def fft_window(self) -> np.ndarray:
        return _hann(self.n_fft)

    @property
    def n_bands(self) -> int:
        return self.mel_basis.shape[0]

    @property
    def n_features(self) -> int:
        return _PER_BAND * self.n_bands + len(_GLOBAL_FEATURES)


@lru_cache(maxsize=8)
def _cropped_mel_basis(spec: FeatureSpec) -> np.ndarray:
    full, centres = mel_filters(spec.sample_rate, spec.n_fft, spec.n_mels)
    keep = (centres >= spec.fmin_hz) & (centres <= spec.fmax_hz)
    return np.ascontiguousarray(full[keep])


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


def _hz_to_mel(hz):
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz * 3.0 / 200.0,
                    15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / log_step)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


def mel_filters(rate: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """Slaney-normalised triangular mel filters over 0..rate/2 and their centre frequencies;
    the same matrix as ``librosa.filters.mel`` (checked in the unit tests). Built here because
    librosa's import pulls in numba, which fails inside PyFlink's Python workers."""
    fft_hz = np.linspace(0.0, rate / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(rate / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32), edges[1:-1]


def frame_count(n_samples: int, spec: FeatureSpec) -> int:
    return 0 if n_samples < spec.n_fft else 1 + (n_samples - spec.n_fft) // spec.frame_hop


def frame_matrix(samples: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """(frames, n_fft) view of the complete uncentred frames in ``samples`` (no copy)."""
    n = frame_count(len(samples), spec)
    samples = np.ascontiguousarray(samples, np.float32)
    # A strided view (sliding_window_view builds every 1-sample shift first, then slices: a
    # third of the log-mel time for 13 frames).
    step = samples.itemsize
    return np.ndarray((n, spec.n_fft), np.float32, samples,
                      strides=(spec.frame_hop * step, step))


def log_mel(frames: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """(frames, bands) log-mel power in dB of a (frames, n_fft) matrix of samples in [-1, 1].
    Frames of many streams go through in one call: the per-call cost, not the arithmetic, is
    most of the time at a chunk's dozen frames."""
    if len(frames) == 0:
        return np.zeros((0, spec.n_bands), np.float32)
    # scipy's FFT stays in float32 (numpy's computes in float64): half the time per chunk. It
    # is imported at first use, not with this module: unpickling a Flink function imports this
    # module on the operator's thread, where pybind11's pocketfft cannot initialise.
    rfft = import_on_python_thread("scipy.fft").rfft
    spectrum = rfft(frames * spec.fft_window, axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    mel = power @ spec.mel_basis.T
    return 10.0 * np.log10(np.maximum(mel, _POWER_FLOOR))


def log_mel_frames(samples: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """(frames, bands) log-mel power in dB of float samples in [-1, 1]; uncentred frames."""
    return log_mel(frame_matrix(samples, spec), spec)


def window_starts(n_samples: int, spec: FeatureSpec) -> list[int]:
    """Sample offsets of every full window in ``n_samples`` samples."""
    if n_samples < spec.window_samples:
        return []
    return list(range(0, n_samples - spec.window_samples + 1, spec.hop_samples))


_GLOBAL_FEATURES = ("level_db", "peak_band_on_frac", "peak_band_transitions", "tonality_mean",
                    "tonality_max", "flux_mean", "beat_contrast", "beat_on_frac",
                    "beat_transitions", "beat_ac_0p2s", "beat_ac_1s", "beat_held_frac",
                    "beat_held_drift")
# Features per band: mean, max and std, and (after the global ones) the switched level.
_PER_BAND = 4
# Lags of the beat band's autocorrelation, in frames: a temporal-four beep repeats every 0.2 s,
# a temporal-three burst every 1 s (at 64 frames per second).
_BEAT_LAGS = (13, 64)
# Frames of the window the beat band is chosen on: every fourth.
_SWING_STRIDE = 4
# The beat band "holds" its level in frames within this many dB of its 90th percentile.
_HELD_DB = 3.0


def frame_stats(frames: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """(frames, 2) float32 per log-mel frame: tonality (how far its loudest band stands above
    its median band) and flux (mean absolute change from the frame before it: ``previous``
    for the first, or 0 without one).

    Per frame, not per window: a stream computes them once for each frame instead of once for
    each of the eight windows (2 s every 0.25 s) that contain it."""
    return segment_frame_stats(frames, [0], [previous])


def segment_frame_stats(frames: np.ndarray, starts: list[int],
                        previous: list[np.ndarray | None]) -> np.ndarray:
    """``frame_stats`` of several streams' frames in one array: stream ``j``'s frames begin at
    row ``starts[j]`` and follow ``previous[j]`` (its last frame before them, or None)."""
    if len(frames) == 0:
        return np.zeros((0, 2), np.float32)
    mid = frames.shape[1] // 2
    tonality = frames.max(axis=1) - np.partition(frames, mid, axis=1)[:, mid]
    flux = np.zeros(len(frames), np.float32)
    flux[1:] = np.abs(frames[1:] - frames[:-1]).mean(axis=1)
    for start, prev in zip(starts, previous, strict=True):
        if start < len(frames):
            flux[start] = 0.0 if prev is None else np.abs(frames[start] - prev).mean()
    return np.stack([tonality, flux], axis=1).astype(np.float32)


def window_stack(rows: np.ndarray, first: int, count: int, spec: FeatureSpec) -> np.ndarray:
    """(count, frames_per_window, ...) read-only view of the windows of per-frame ``rows``
    (log-mel frames or their stats) starting at frame ``first``, one every hop."""
    rows = np.ascontiguousarray(rows)
    if count and first + (count - 1) * spec.frames_per_hop + spec.frames_per_window > len(rows):
        raise ValueError(f"{count} windows from frame {first} need more than {len(rows)} frames")
    # The ndarray constructor, not as_strided: a stream's batch needs two stacks, and
    # as_strided's Python wrapper cost ~30 us each, more than the windows' arithmetic.
    step = rows.strides[0]
    stack = np.ndarray((count, spec.frames_per_window, *rows.shape[1:]), rows.dtype, rows,
                       offset=first * step if count else 0,
                       strides=(spec.frames_per_hop * step, *rows.strides))
    stack.flags.writeable = False
    return stack


def window_features(window: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
    """The classifier's input for one window of log-mel frames (frames, bands): float32.
    ``stats``: the window's rows of ``frame_stats`` when the caller has them already."""
    if stats is None:
        stats = frame_stats(window)
    return window_features_many(window[None], stats[None])[0]


def window_features_many(windows: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """(windows, features) float32: the classifier's input for a stack of windows of log-mel
    frames (windows, frames, bands) with their ``frame_stats`` rows (windows, frames, 2). One
    pass over the stack: training, ``onair detect`` and the streaming job all come here.

    Levels are relative to the window's median, so the features do not move with gain; the
    on/off features describe the temporal-three pattern (tone bursts with silences between).
    Layout: per band mean, max, std (band order), then ``_GLOBAL_FEATURES``, then per band
    the switched level (``_beat``).
    """
    n_windows, n_frames, _ = windows.shape
    # Medians by partial sort (np.median sorts fully: it was most of this function's time).
    flat = windows.reshape(n_windows, -1)
    mid = flat.shape[1] // 2
    level = np.partition(flat, mid, axis=1)[:, mid]
    rel = windows - level[:, None, None]
    # Column moments as matrix products: numpy's axis means are several times slower here.
    avg = np.full(n_frames, 1.0 / n_frames, np.float32)
    mean, peak = avg @ rel, rel.max(axis=1)
    std = np.sqrt(np.maximum(avg @ (rel * rel) - mean * mean, 0.0))
    top = np.argmax(mean, axis=1)
    on = rel[np.arange(n_windows), :, top] > _ON_DB
    tonality = stats[:, :, 0]
    # The first frame's flux is its change from a frame outside the window.
    flux = stats[:, 1:, 1].mean(axis=1) if n_frames > 1 else np.zeros(n_windows, np.float32)
    extra = np.stack([level, on.mean(axis=1), _transitions(on),
                      tonality.mean(axis=1), tonality.max(axis=1), flux], axis=1)
    return np.concatenate([mean, peak, std, extra, _beat(windows, peak - mean)],
                          axis=1).astype(np.float32)


def _transitions(on: np.ndarray) -> np.ndarray:
    """(windows,): how often a band's (windows, frames) on/off mask changes."""
    return np.count_nonzero(on[:, 1:] != on[:, :-1], axis=1)


def _beat(windows: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """(windows, 7 + bands): what switches on and off in the window, in the beat band: the
    band whose level swings most (a temporal-four group's short beeps show there even when
    loud noise owns the mean). Its on/off pattern, how periodic its level is at the
    alarm patterns' lags, how steady it is while on (an alarm's tone holds its level, a
    played note decays), and each band's mean level while it is on minus while it is off
    (the switching sound's spectrum: a stationary background cancels out, a buzzer's
    harmonics stay)."""
    n_windows, n_frames, _ = windows.shape
    rows = np.arange(n_windows)
    # Its swing from the 20th percentile (the level between beeps, whether the alarm sounds a
    # fifth of the window, temporal-four, or over half of it, temporal-three) to the 90th (a
    # tone held a tenth of the window): the largest swing is the alarm's band even where a
    # sparse sound, a struck note, stands further above its band's mean.
    # The band is chosen on every fourth frame (the partition of every band was most of this
    # function's time); its levels are then taken from all of its frames.
    sample = windows[:, ::_SWING_STRIDE]
    m = sample.shape[1]
    s_low, s_high = m // 5, min(m - 1, m * 9 // 10)
    ranked = np.partition(sample, (s_low, s_high), axis=1)
    band = np.argmax(ranked[:, s_high] - ranked[:, s_low], axis=1)
    env = windows[rows, :, band]
    low, high = n_frames // 5, min(n_frames - 1, n_frames * 9 // 10)
    levels = np.partition(env, (low, high), axis=1)
    env = env - levels[:, low][:, None]
    on = env > _ON_DB
    centred = env - env.mean(axis=1, keepdims=True)
    energy = np.einsum("wf,wf->w", centred, centred) + 1e-6
    lags = [np.einsum("wf,wf->w", centred[:, :-lag], centred[:, lag:]) / energy
            if lag < n_frames else np.zeros(n_windows, np.float32) for lag in _BEAT_LAGS]
    n_on = on.sum(axis=1)
    weight = on.astype(np.float32)
    on_mean = np.einsum("wf,wfb->wb", weight, windows) / np.maximum(n_on, 1)[:, None]
    off_mean = (np.einsum("wf,wfb->wb", 1.0 - weight, windows)
                / np.maximum(n_frames - n_on, 1)[:, None])
    switched = np.where(((n_on > 0) & (n_on < n_frames))[:, None], on_mean - off_mean, 0.0)
    # Steadiness: how much of the window the band holds near its top level (its 90th
    # percentile), and how much its level moves from frame to frame while there.
    top = env - (levels[:, high] - levels[:, low])[:, None]
    held = top > -_HELD_DB
    near = (top[:, 1:] > -2 * _HELD_DB) & (top[:, :-1] > -2 * _HELD_DB)
    drift = (np.einsum("wf,wf->w", near.astype(np.float32), np.abs(np.diff(env, axis=1)))
             / np.maximum(near.sum(axis=1), 1))
    pattern = np.stack([contrast[rows, band], on.mean(axis=1),
                        _transitions(on), *lags, held.mean(axis=1), drift], axis=1)
    return np.concatenate([pattern, switched], axis=1)


def feature_names(spec: FeatureSpec) -> list[str]:
    bands = range(spec.n_bands)
    return ([f"band{b}_mean" for b in bands] + [f"band{b}_max" for b in bands]
            + [f"band{b}_std" for b in bands] + list(_GLOBAL_FEATURES)
            + [f"band{b}_switched" for b in bands])


def clip_windows(samples: np.ndarray, spec: FeatureSpec,
                 block: int = 512) -> tuple[list[int], np.ndarray]:
    """Window start offsets and the (windows, features) matrix of a whole clip; windows are
    summarised ``block`` at a time, so an hour of audio needs tens of MB, not GB."""
    frames = log_mel_frames(samples, spec)
    stats = frame_stats(frames)
    starts = window_starts(len(samples), spec)
    parts = [window_features_many(window_stack(frames, i * spec.frames_per_hop, n, spec),
                                  window_stack(stats, i * spec.frames_per_hop, n, spec))
             for i in range(0, len(starts), block)
             for n in [min(block, len(starts) - i)]]
    matrix = np.concatenate(parts) if parts else np.zeros((0, spec.n_features), np.float32)
    return starts, matrix
