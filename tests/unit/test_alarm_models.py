"""Alarm sounds, the dataset layout, ONNX export parity, and the model registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.alarms import sounds
from models.alarms.dataset import DatasetConfig, build_dataset, class_files
from models.alarms.training import TrainParams, train_forest
from models.onnx_export import OnnxScorer, parity, to_onnx
from models.registry import Registry, RegistryError, fingerprint_files

RATE = 16_000


def test_t3_schedule_is_three_half_second_tones_then_a_pause():
    tones = sounds.t3_schedule(8.0)
    assert tones == [(0.0, 0.5), (1.0, 1.5), (2.0, 2.5), (4.0, 4.5), (5.0, 5.5), (6.0, 6.5)]


def test_t3_alarm_sounds_on_its_schedule_at_about_3khz():
    rng = np.random.default_rng(1)
    x = sounds.t3_alarm(4.0, RATE, rng)
    level = np.array([sounds.rms(x[i:i + 800]) for i in range(0, len(x), 800)])  # 50 ms
    on = level > 0.1 * level.max()
    # three bursts of ~0.5 s (5 % timing jitter; edge blocks may be partly on), then ~1.5 s off
    bursts = np.flatnonzero(on[1:] & ~on[:-1]) + 1
    assert on[0] and len(bursts) == 2
    assert 27 <= on.sum() <= 36
    assert not on[int(3.15 / 0.05):].any()
    spectrum = np.abs(np.fft.rfft(x))
    assert 2_900 <= np.argmax(spectrum) * RATE / len(x) <= 3_400


def test_low_frequency_variant_is_520hz():
    x = sounds.t3_alarm(1.0, RATE, np.random.default_rng(2), low_frequency=True)
    spectrum = np.abs(np.fft.rfft(x))
    assert 500 <= np.argmax(spectrum) * RATE / len(x) <= 540


def test_mix_at_snr_hits_the_requested_ratio():
    rng = np.random.default_rng(3)
    bg = sounds.noise(4.0, RATE, rng)
    alarm = sounds.t3_alarm(2.0, RATE, rng)
    for snr in (-5.0, 0.0, 10.0):
        mixed = sounds.mix_at_snr(bg, alarm, RATE, snr)
        added = mixed[RATE:3 * RATE] - bg[RATE:3 * RATE]
        active = added[np.abs(alarm) > 1e-4]
        measured = 20 * np.log10(sounds.rms(active) / sounds.rms(bg))
        assert measured == pytest.approx(snr, abs=0.1)


def test_generated_backgrounds_are_deterministic_by_seed():
    for name, make in sounds.GENERATED_BACKGROUNDS.items():
        a = make(1.0, RATE, np.random.default_rng(5))
        b = make(1.0, RATE, np.random.default_rng(5))
        assert np.array_equal(a, b), name
        assert len(a) == RATE and np.isfinite(a).all()


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("alarm-ds")
    cfg = DatasetConfig(out=str(out), real_audio=None, train_per_class=6, holdout_per_class=2,
                        holdout_streams=1, snrs_db=(0.0, 10.0), background_minutes=0.2,
                        stream_s=12.0, alarm_at_s=4.0, alarm_s=4.0)
    return cfg, build_dataset(cfg)


def test_dataset_layout_labels_and_determinism(small_dataset, tmp_path):
    cfg, manifest = small_dataset
    classes = class_files(f"{cfg.out}/train")
    assert list(classes) == ["alarm", "no_alarm"]          # alphabetical: the label map
    assert all(len(v) == 6 for v in classes.values())
    streams = json.loads((Path(cfg.out) / "events/streams.json").read_text())
    assert [s["snr_db"] for s in streams] == [0.0, 10.0]
    again = build_dataset(DatasetConfig(**{**cfg.__dict__, "out": str(tmp_path)}))
    assert again["train"] == manifest["train"]
    assert (tmp_path / "train/alarm/00003.wav").read_bytes() == \
        (Path(cfg.out) / "train/alarm/00003.wav").read_bytes()


def test_class_files_needs_two_classes(tmp_path):
    (tmp_path / "alarm").mkdir()
    (tmp_path / "alarm" / "a.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="at least two class folders"):
        class_files(tmp_path)


def _tiny_model():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)
    model = train_forest(x, y, TrainParams(n_estimators=10, max_depth=5))
    return model, x


def test_onnx_export_matches_scikit_learn():
    model, x = _tiny_model()
    onnx_bytes = to_onnx(model, 5)
    scorer = OnnxScorer(onnx_bytes)
    assert scorer(x).shape == (200, 2)
    assert parity(model, scorer, x) <= 1e-5


def test_registry_versions_aliases_and_tamper_check(tmp_path):
    model, _ = _tiny_model()
    registry = Registry(tmp_path)
    with pytest.raises(RegistryError, match="no model named"):
        registry.resolve("alarm", "production")
    data = tmp_path / "data.txt"
    data.write_text("x")
    v1 = registry.register("alarm", to_onnx(model, 5), feature_names=list("abcde"),
                           labels=["alarm", "no_alarm"], metrics={"f1": 0.9},
                           data_fingerprint=fingerprint_files([data], tmp_path))
    v2 = registry.register("alarm", to_onnx(model, 5), feature_names=list("abcde"),
                           labels=["alarm", "no_alarm"])
    assert (v1.version, v2.version) == ("1", "2")
    assert v1.data_fingerprint["files"] == 1 and len(v1.onnx_sha256) == 64
    with pytest.raises(RegistryError, match="no alias 'production'"):
        registry.resolve("alarm", "production")
    registry.promote("alarm", "1")
    assert registry.resolve("alarm", "production").version == "1"
    assert registry.resolve("alarm", "latest").version == "2"
    session, mv = registry.load_session("alarm")
    assert mv.version == "1" and session.get_inputs()[0].name == "features"

    onnx_path = registry.version_dir(v1) / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(RegistryError, match="refusing to load"):
        registry.load_session("alarm", "production")
    with pytest.raises(RegistryError, match="refusing"):
        registry.promote("alarm", "1")
    with pytest.raises(RegistryError, match="no version"):
        registry.resolve("alarm", "9")


def test_registry_refuses_names_and_paths_outside_its_root_and_broken_versions(tmp_path):
    import hashlib
    import json

    model, _ = _tiny_model()
    root = tmp_path / "registry"
    registry = Registry(root)
    v1 = registry.register("alarm", to_onnx(model, 5), feature_names=list("abcde"),
                           labels=["alarm", "no_alarm"])
    registry.promote("alarm", "1")
    for bad in ("../x", "a/b", "", "A" * 80, ".."):
        with pytest.raises(RegistryError, match="not a valid model name"):
            registry.resolve(bad, "production")
    for bad in ("../../etc", "Prod uction", "x" * 40):
        with pytest.raises(RegistryError, match="not a valid alias"):
            registry.resolve("alarm", bad)
    with pytest.raises(RegistryError, match="not a valid version"):
        registry.resolve("alarm", "0")
    # An alias naming a path, a version dir that is a symlink out of the root.
    (root / "alarm" / "aliases.json").write_text(json.dumps({"production": "../../x"}))
    with pytest.raises(RegistryError, match="not a valid version"):
        registry.resolve("alarm", "production")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "alarm" / "7").symlink_to(outside)
    with pytest.raises(RegistryError, match="outside the registry root"):
        registry.resolve("alarm", "7")
    # A truncated meta.json, an unknown key, a meta of another version, bytes not ONNX.
    meta = root / "alarm" / "1" / "meta.json"
    good = meta.read_text()
    meta.write_text(good[: len(good) // 2])
    with pytest.raises(RegistryError, match="not valid JSON"):
        registry.resolve("alarm", "1")
    meta.write_text(json.dumps(json.loads(good) | {"surprise": 1}))
    with pytest.raises(RegistryError, match="not a model version's metadata"):
        registry.resolve("alarm", "1")
    meta.write_text(json.dumps(json.loads(good) | {"version": "2"}))
    with pytest.raises(RegistryError, match="describes alarm:2"):
        registry.resolve("alarm", "1")
    # Bytes swapped with their sha256 in the metadata: the signature no longer matches.
    junk = b"not an onnx model"
    (root / "alarm" / "1" / "model.onnx").write_bytes(junk)
    swapped = json.loads(good) | {"onnx_sha256": hashlib.sha256(junk).hexdigest()}
    meta.write_text(json.dumps(swapped))
    with pytest.raises(RegistryError, match="signature does not match"):
        registry.load_session("alarm", "1")
    # Signed by the key holder, bytes that are not ONNX are still refused.
    (root / "alarm" / "1" / "signature.json").write_text(json.dumps(registry.keys.sign(swapped)))
    with pytest.raises(RegistryError, match="not a loadable ONNX model"):
        registry.load_session("alarm", "1")
    assert v1.version == "1"


def test_a_model_trained_on_other_window_features_is_refused_at_load():
    from models.alarms.mel import FeatureSpec, feature_names
    from models.alarms.stream import StreamPolicy
    from models.alarms.training import feature_spec_of, model_extra
    from models.registry import ModelVersion

    spec = FeatureSpec()
    extra = model_extra(spec, StreamPolicy(), "alarm")
    current = ModelVersion("alarm_detector", "2", "0" * 64, feature_names(spec),
                           ["alarm", "no_alarm"], extra=extra)
    assert feature_spec_of(current) == spec
    older = ModelVersion("alarm_detector", "1", "0" * 64, feature_names(spec)[:105],
                         ["alarm", "no_alarm"], extra=extra)
    with pytest.raises(RegistryError, match=r"alarm_detector:1 was trained on 105 .* train a new"):
        feature_spec_of(older)
