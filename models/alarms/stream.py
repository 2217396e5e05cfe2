"""Per-stream alarm detection state: chunk ordering, gaps, sliding windows, debounce, cooldown.

Pure logic, no Flink, no model: ``StreamDetector.push`` turns a chunk into the windows that became
complete (with their features), the caller scores them (ONNX in the job, in ``onair detect``
and in the training report alike) and ``StreamDetector.decide`` turns scores into at most one
alert per alarm. Everything a stream holds is bounded: ``reorder_depth`` pending chunks, one
window of log-mel frames, less than one frame of samples, ``n`` recent decisions.

``StreamDetector.to_bytes`` / ``from_bytes`` carry that state, and only that, through Flink's
keyed state: the spec and policy are the operator's, not the stream's, and arrays travel as raw
bytes. Pickling the whole object took 64 us per chunk and unpickling 43 us (numpy's and the
dataclasses' per-object overhead, not the 17 KB); this form takes a few.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from core.config import option
from models.alarms.mel import (
    FeatureSpec,
    frame_matrix,
    frame_stats,
    log_mel,
    segment_frame_stats,
    window_features_many,
    window_stack,
)


@dataclass(frozen=True)
class StreamPolicy:
    """How a stream is reassembled and when windows become an alert (flags of detect_alarms)."""

    reorder_depth: int = 4        # chunks held back waiting for a missing sequence number
    max_gap_ms: int = 1_000       # a gap up to this is zero-filled; a longer one resets the stream
    # The threshold a model brings is chosen at training (out of bag); this one is for a model
    # without. k of n with windows every 0.25 s: 4 of 6 kept the false alerts and F1 of 3 of 4
    # every 0.5 s and halved the slowest detections (docs/alarms.md).
    threshold: float = 0.65       # alarm probability that makes a window positive
    k: int = 4                    # an alert needs k positive windows ...
    n: int = 6                    # ... among the last n
    cooldown_ms: int = 8_000      # after an alert, this much alarm-free audio re-arms the stream
    idle_timeout_s: int = 120     # a stream silent this long (processing time) is forgotten

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"debounce needs 1 <= k <= n, got k={self.k} n={self.n}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")



@dataclass(frozen=True)
class PolicyOptions:
    """The policy as options of detect_alarms and ``onair detect``: threshold, k and n fall
    back to the model's own (chosen at training), then to ``StreamPolicy``'s."""

    threshold: float | None = option(None, "alarm probability that makes a window positive "
                                     "(default: the model's, chosen at training)",
                                     minimum=0.0, maximum=1.0)
    # k and n are tuned with the model's hop: the model carries them, the flags override.
    k: int | None = option(None, "positive windows among the last --n that raise an alert "
                           f"(default: the model's, else {StreamPolicy.k})", minimum=1)
    n: int | None = option(None, "debounce span, windows "
                           f"(default: the model's, else {StreamPolicy.n})", minimum=1)
    cooldown_ms: int = option(StreamPolicy.cooldown_ms, "alarm-free audio that re-arms a "
                              "stream after an alert, ms", minimum=0)
    reorder_depth: int = option(StreamPolicy.reorder_depth, "chunks held waiting for a "
                                "missing one", minimum=0)
    max_gap_ms: int = option(StreamPolicy.max_gap_ms, "gaps up to this are zero-filled, "
                             "longer ones reset the stream, ms", minimum=0)
    idle_timeout_s: int = option(StreamPolicy.idle_timeout_s, "a stream idle this long is "
                                 "forgotten, s", minimum=1)

    def policy(self, model_policy: dict | None = None) -> StreamPolicy:
        m = model_policy or {}
        return StreamPolicy(reorder_depth=self.reorder_depth, max_gap_ms=self.max_gap_ms,
                            threshold=self.threshold or m.get("threshold")
                            or StreamPolicy.threshold,
                            k=self.k or m.get("k") or StreamPolicy.k,
                            n=self.n or m.get("n") or StreamPolicy.n,
                            cooldown_ms=self.cooldown_ms, idle_timeout_s=self.idle_timeout_s)

@dataclass
class Chunk:
    seq: int
    ts: float                 # epoch ms of the first sample
    samples: np.ndarray       # float32 at the model's rate


@dataclass(frozen=True)
class Window:
    start_ts: float
    end_ts: float
    features: np.ndarray
    after_reset: bool = False  # the first window after the stream was reset (or began)


@dataclass(frozen=True)
class Detection:
    onset_ts: float           # start of the first positive window of the run
    window_end_ts: float      # end of the window that completed k of n
    confidence: float         # mean alarm probability of the run's positive windows
    probabilities: list[float]  # of the window that completed k of n
    predicted_label: str


@dataclass
class Counters:
    """What happened to a stream's chunks; the Flink function turns these into metrics."""

    duplicates: int = 0
    gaps_filled: int = 0
    resets: int = 0


class Sequencer:
    """Releases chunks in sequence order; holds at most ``depth`` chunks behind a missing one,
    then gives up on it. A chunk below the next expected sequence number (or one already
    waiting) is a duplicate or too late to place, and is dropped, unless its audio is newer
    than any released: then the producer numbered its stream anew (a restart from 0, or a
    return after a jump far ahead) and the sequence restarts at that chunk (``resets``)."""

    def __init__(self, depth: int):
        self.depth = depth
        self.next_seq: int | None = None
        self.pending: dict[int, Chunk] = {}
        self.last_ts: float | None = None   # of the newest chunk released
        self.resets = 0

    def push(self, chunk: Chunk) -> tuple[list[Chunk], bool]:
        """(chunks released in order, whether ``chunk`` was a duplicate)."""
        if self.next_seq is None:
            self.next_seq = chunk.seq
        if chunk.seq < self.next_seq or chunk.seq in self.pending:
            newer = max([c.ts for c in self.pending.values()] + [self.last_ts or chunk.ts])
            if chunk.ts <= newer:
                return [], True
            # Renumbered: what waits is released first (it is older audio), then the new run.
            released = [self.pending.pop(k) for k in sorted(self.pending)]
            self.next_seq = chunk.seq + 1
            self.resets += 1
            released.append(chunk)
            self.last_ts = chunk.ts
            return released, False
        self.pending[chunk.seq] = chunk
        released = []
        while self.pending:
            if self.next_seq not in self.pending:
                if len(self.pending) <= self.depth:
                    break
                self.next_seq = min(self.pending)  # the missing chunks are not coming
            released.append(self.pending.pop(self.next_seq))
            self.next_seq += 1
        if released:
            self.last_ts = max(self.last_ts or released[-1].ts, released[-1].ts)
        return released, False


class WindowCutter:
    """Log-mel frames computed once as samples arrive; a window every ``hop`` is a slice.

    Two halves, so that many streams' frames go through the FFT together (``push_many``):
    ``take`` turns samples into complete frames of samples (``origin_ts``, ``n_samples`` and
    ``tail`` are its state), ``add`` turns their log-mel rows into windows (the rest)."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self.reset(None)
        self.restart_windows(None)

    def reset(self, origin_ts: float | None) -> None:
        """Start a new run of samples at ``origin_ts`` (epoch ms of its first sample)."""
        self.origin_ts = origin_ts              # epoch ms of sample 0 since the last reset
        self.n_samples = 0                      # samples taken since the last reset
        self.tail = np.zeros(0, np.float32)     # samples not yet in a complete frame

    def restart_windows(self, origin_ts: float | None) -> None:
        """The window half of ``reset``, applied when the frames before it have been added."""
        self.window_origin_ts = origin_ts
        self.frames = np.zeros((0, self.spec.n_bands), np.float32)
        self.stats = frame_stats(self.frames)   # ``frame_stats`` of ``frames``, row by row
        self.frames_start = 0                   # frame index of ``frames[0]``
        self.next_window = 0                    # frame index where the next window starts
        self.after_reset = True                 # the next window is the run's first

    def end_ts(self) -> float | None:
        """Epoch ms just after the last taken sample."""
        if self.origin_ts is None:
            return None
        return self.origin_ts + self.n_samples * 1000.0 / self.spec.sample_rate

    def last_frame(self) -> np.ndarray | None:
        return self.frames[-1] if len(self.frames) else None

    def take(self, samples: np.ndarray) -> np.ndarray:
        """(frames, n_fft) samples of the frames ``samples`` complete; the rest waits."""
        self.n_samples += len(samples)
        buffered = np.concatenate([self.tail, samples])
        frames = frame_matrix(buffered, self.spec)
        self.tail = buffered[len(frames) * self.spec.frame_hop:]
        return frames

    def add(self, mel: np.ndarray, stats: np.ndarray
            ) -> tuple[list[tuple[float, bool]], np.ndarray, np.ndarray]:
        """Log-mel rows of the frames ``take`` returned (and their ``frame_stats``) -> the
        windows they complete: ``(start_ts, first after a reset)`` each, and stacks of their
        frames and stats (views, for ``window_features_many``)."""
        spec = self.spec
        if len(mel):
            self.frames = np.concatenate([self.frames, mel])
            self.stats = np.concatenate([self.stats, stats])
        fpw, fph = spec.frames_per_window, spec.frames_per_hop
        spare = self.frames_start + len(self.frames) - fpw - self.next_window
        count = spare // fph + 1 if spare >= 0 else 0
        first = self.next_window - self.frames_start
        ms_per_frame = spec.frame_hop * 1000.0 / spec.sample_rate
        starts = [(self.window_origin_ts + (self.next_window + k * fph) * ms_per_frame,
                   self.after_reset and k == 0) for k in range(count)]
        frames = window_stack(self.frames, first, count, spec)
        stats = window_stack(self.stats, first, count, spec)
        if count:
            self.after_reset = False
            self.next_window += count * fph
            drop = self.next_window - self.frames_start
            self.frames, self.stats = self.frames[drop:], self.stats[drop:]
            self.frames_start += drop
        return starts, frames, stats


class Debouncer:
    """k positive windows among the last n make an alert, and so do n windows whose mean
    alarm probability reaches the threshold (an alarm heard steadily just about it: a
    temporal-three under music); then nothing until ``cooldown_ms`` of windows without a
    positive one, so one alarm — however long — makes one alert."""

    def __init__(self, policy: StreamPolicy):
        self.policy = policy
        # (window start, alarm probability) of the last n windows
        self.recent: deque[tuple[float, float]] = deque(maxlen=policy.n)
        self.armed = True
        self.last_positive_end = float("-inf")

    def decide(self, window: Window, probabilities: np.ndarray, labels: list[str],
               alarm_label: str) -> Detection | None:
        """``push`` for a window's class probabilities (in ``labels`` order)."""
        probs = [float(p) for p in probabilities]
        return self.push(window, probs[labels.index(alarm_label)], probs,
                         labels[int(np.argmax(probs))])

    def push(self, window: Window, alarm_p: float, probabilities: list[float],
             predicted_label: str) -> Detection | None:
        positive = alarm_p >= self.policy.threshold
        if window.after_reset:   # windows before a gap are no evidence for those after it
            self.recent.clear()
        self.recent.append((window.start_ts, alarm_p))
        if positive:
            self.last_positive_end = window.end_ts
        elif not self.armed and window.end_ts - self.last_positive_end >= self.policy.cooldown_ms:
            self.armed = True
        threshold, n = self.policy.threshold, self.policy.n
        hits = [(ts, p) for ts, p in self.recent if p >= threshold]
        sustained = (len(self.recent) == n
                     and sum(p for _, p in self.recent) >= n * threshold)
        if not (self.armed and ((positive and len(hits) >= self.policy.k) or sustained)):
            return None
        self.armed = False
        return Detection(onset_ts=hits[0][0], window_end_ts=window.end_ts,
                         confidence=float(np.mean([p for _, p in hits])),
                         probabilities=probabilities, predicted_label=predicted_label)


@dataclass
class StreamDetector:
    """All the state of one stream (pickled into Flink keyed state)."""

    spec: FeatureSpec
    policy: StreamPolicy
    sequencer: Sequencer = field(init=False)
    cutter: WindowCutter = field(init=False)
    debouncer: Debouncer = field(init=False)
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self.sequencer = Sequencer(self.policy.reorder_depth)
        self.cutter = WindowCutter(self.spec)
        self.debouncer = Debouncer(self.policy)

    def push(self, chunk: Chunk) -> list[Window]:
        """Windows completed by ``chunk`` (none while it waits in the reorder buffer)."""
        return push_many([(self, chunk)])[0][1]

    def _plan(self, chunk: Chunk, plan: _Plan) -> None:
        """Reorder, de-duplicate and gap-fill ``chunk``; its complete frames join ``plan``."""
        renumbered = self.sequencer.resets
        released, duplicate = self.sequencer.push(chunk)
        self.counters.duplicates += duplicate
        self.counters.resets += self.sequencer.resets - renumbered
        for c in released:
            expected = self.cutter.end_ts()
            gap_ms = 0.0 if expected is None else c.ts - expected
            samples = c.samples
            # Producers stamp chunks from their own clocks: a few ms either way is jitter.
            if expected is None or gap_ms > self.policy.max_gap_ms:
                self.counters.resets += expected is not None
                self.cutter.reset(c.ts)
                plan.restart(c.ts)
            elif gap_ms * self.spec.sample_rate / 1000.0 >= 1.0:
                self.counters.gaps_filled += 1
                silence = np.zeros(round(gap_ms * self.spec.sample_rate / 1000.0), np.float32)
                samples = np.concatenate([silence, samples])
            plan.add(self.cutter.take(samples))

    def decide(self, window: Window, probabilities: np.ndarray, labels: list[str],
               alarm_label: str) -> Detection | None:
        return self.debouncer.decide(window, probabilities, labels, alarm_label)

    def to_bytes(self) -> bytes:
        seq, cut, deb, c = self.sequencer, self.cutter, self.debouncer, self.counters
        return pickle.dumps((
            (seq.next_seq, [(k, ch.ts, ch.samples.tobytes()) for k, ch in seq.pending.items()],
             seq.last_ts, seq.resets),
            (cut.origin_ts, cut.n_samples, cut.tail.tobytes(), cut.window_origin_ts,
             cut.frames.tobytes(), cut.stats.tobytes(), cut.frames_start, cut.next_window,
             cut.after_reset),
            (list(deb.recent), deb.armed, deb.last_positive_end),
            (c.duplicates, c.gaps_filled, c.resets),
        ), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes, spec: FeatureSpec, policy: StreamPolicy) -> StreamDetector:
        """The detector ``to_bytes`` saved, under this ``spec`` and ``policy``."""
        (next_seq, pending, *more), cut, (recent, armed, last_end), counters = pickle.loads(data)
        d = cls(spec, policy, counters=Counters(*counters))
        d.sequencer.next_seq = next_seq
        if more:   # snapshots written before renumbering was detected lack these
            d.sequencer.last_ts, d.sequencer.resets = more
        d.sequencer.pending = {k: Chunk(k, ts, np.frombuffer(b, np.float32))
                               for k, ts, b in pending}
        c = d.cutter
        (c.origin_ts, c.n_samples, tail, c.window_origin_ts, frames, stats, c.frames_start,
         c.next_window, c.after_reset) = cut
        c.tail = np.frombuffer(tail, np.float32)
        c.frames = np.frombuffer(frames, np.float32).reshape(-1, spec.n_bands)
        c.stats = np.frombuffer(stats, np.float32).reshape(-1, 2)
        # Snapshots of before the mean rule kept only positive windows' probabilities.
        d.debouncer.recent.extend((ts, 0.0 if p is None else p) for ts, p in recent)
        d.debouncer.armed, d.debouncer.last_positive_end = armed, last_end
        return d


class _Block:
    """One stream's frames in a batch, in order, with no reset inside them."""

    def __init__(self, restart_ts: float | None, previous: np.ndarray | None):
        self.restart_ts = restart_ts   # the stream was reset (or began) at this ts just before
        self.previous = previous       # the stream's last log-mel frame before these frames
        self.parts: list[np.ndarray] = []

    def frames(self) -> np.ndarray:
        return self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)


class _Plan:
    """One stream's work in a batch: its blocks of frames, split where the stream resets."""

    def __init__(self, detector: StreamDetector):
        self.detector = detector
        self.blocks: list[_Block] = []
        self.windows: list[Window] = []   # what the batch completed, in order

    def restart(self, ts: float) -> None:
        self.blocks.append(_Block(ts, None))

    def add(self, frames: np.ndarray) -> None:
        if not self.blocks:
            self.blocks.append(_Block(None, self.detector.cutter.last_frame()))
        self.blocks[-1].parts.append(frames)


def push_many(items: Iterable[tuple[StreamDetector, Chunk]]
              ) -> list[tuple[StreamDetector, list[Window]]]:
    """``StreamDetector.push`` for a batch of chunks of any streams (in arrival order; all
    detectors of one spec): each detector touched, in order of first appearance, with the
    windows its chunks completed, in order.

    The batch shares one FFT, one mel projection and one window-summary pass: at a chunk's
    dozen frames the per-call cost of numpy, not the arithmetic, was most of a chunk's time."""
    plans: dict[int, _Plan] = {}
    for detector, chunk in items:
        plan = plans.get(id(detector))
        if plan is None:
            plan = plans[id(detector)] = _Plan(detector)
        detector._plan(chunk, plan)
    if not plans:
        return []
    spec = next(iter(plans.values())).detector.spec
    blocks = [(plan, block) for plan in plans.values() for block in plan.blocks]
    frames = [block.frames() for _, block in blocks]
    offsets = np.cumsum([0] + [len(f) for f in frames])
    mel = log_mel(np.concatenate(frames) if frames else np.zeros((0, spec.n_fft), np.float32),
                  spec)
    stats = segment_frame_stats(mel, list(offsets[:-1]), [b.previous for _, b in blocks])
    cut = []   # (plan, start timestamps, frame stack, stats stack) per block
    for (plan, block), lo, hi in zip(blocks, offsets[:-1], offsets[1:], strict=True):
        cutter = plan.detector.cutter
        if block.restart_ts is not None:
            cutter.restart_windows(block.restart_ts)
        cut.append((plan, *cutter.add(mel[lo:hi], stats[lo:hi])))
    stacks = [c for c in cut if len(c[1])]
    features = (window_features_many(np.concatenate([c[2] for c in stacks]),
                                     np.concatenate([c[3] for c in stacks]))
                if stacks else None)
    row, length = 0, spec.window_s * 1000.0
    for plan, starts, _, _ in stacks:
        for start, after_reset in starts:
            plan.windows.append(Window(start, start + length, features[row], after_reset))
            row += 1
    return [(plan.detector, plan.windows) for plan in plans.values()]


def decide_many(results: list[tuple[StreamDetector, list[Window]]],
                score: Callable[[np.ndarray], np.ndarray], labels: list[str],
                alarm_label: str) -> tuple[int, list[tuple[StreamDetector, Detection]]]:
    """Score every window ``push_many`` returned in one call of ``score`` (features ->
    class probabilities in ``labels`` order) and run each stream's debouncer over its own
    windows in order: the number of windows scored, and the detections with their streams."""
    windows = [(detector, w) for detector, ws in results for w in ws]
    if not windows:
        return 0, []
    probs = score(np.stack([w.features for _, w in windows]))
    detections = [(detector, detection)
                  for (detector, w), p in zip(windows, probs, strict=True)
                  if (detection := detector.decide(w, p, labels, alarm_label)) is not None]
    return len(windows), detections


def alert_message(stream_id: str, detection: Detection, labels: list[str], alarm_label: str,
                  model_version: str, detected_ts: int) -> dict:
    """The ``alarm-alerts`` message. ``alert_id`` is derived from the stream and the onset, so
    a replay after a restart (the sink is at-least-once for latency) repeats the same id."""
    return {
        "alert_id": f"{stream_id}:{round(detection.onset_ts)}",
        "stream_id": stream_id,
        "label": alarm_label,
        "onset_ts": round(detection.onset_ts),
        "detected_ts": detected_ts,
        "window_end_ts": round(detection.window_end_ts),
        "confidence": round(detection.confidence, 4),
        "probabilities": [round(p, 4) for p in detection.probabilities],
        "labels": labels,
        "predicted_label": detection.predicted_label,
        "model_version": model_version,
    }
