"""``onair detect --plot``: the log-mel spectrogram, each window's alarm probability, detections."""

from __future__ import annotations

import io

import numpy as np

from models.alarms.mel import FeatureSpec, log_mel_frames
from models.alarms.stream import Detection


def detection_plot(samples: np.ndarray, spec: FeatureSpec, probs: np.ndarray,
                   detections: list[Detection], labels: list[str], alarm_label: str,
                   threshold: float, title: str = "") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = log_mel_frames(samples, spec)
    duration = len(samples) / spec.sample_rate
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    top.imshow(frames.T, origin="lower", aspect="auto", cmap="magma",
               extent=(0, len(frames) * spec.frame_hop / spec.sample_rate, 0, spec.n_bands),
               vmin=float(np.percentile(frames, 5)), vmax=float(frames.max()))
    top.set(ylabel=f"mel band ({spec.fmin_hz:g}-{spec.fmax_hz:g} Hz)", title=title)
    alarm = labels.index(alarm_label)
    starts = np.arange(len(probs)) * spec.hop_s
    centres = starts + spec.window_s / 2
    p = probs[:, alarm] if len(probs) else np.zeros(0)
    bottom.step(centres, p, where="mid", label=f"P({alarm_label}) per window")
    bottom.axhline(threshold, color="k", ls=":", lw=0.8, label="threshold")
    for s, prob in zip(starts, p, strict=True):
        if prob >= threshold:   # positive windows as spans
            bottom.axvspan(s, s + spec.window_s, color="tab:orange", alpha=0.08, lw=0)
    for d in detections:
        for ax in (top, bottom):
            ax.axvline(d.window_end_ts / 1000, color="red", lw=2)
            ax.axvline(d.onset_ts / 1000, color="red", lw=1, ls="--")
    bottom.set(xlabel="time in file, s (red: alert, dashed: onset window start)",
               ylabel="probability", ylim=(0, 1.02), xlim=(0, duration))
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
