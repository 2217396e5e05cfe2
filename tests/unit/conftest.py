"""Unit tests keep their state (the model-signing key pair a registry makes on first use)
in a folder of their own, never in the checkout's ``.onair``."""

import pytest


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ONAIR_HOME", str(tmp_path / "onair-home"))
    for name in ("ONAIR_MODEL_SIGNING_KEY", "ONAIR_MODEL_VERIFY_KEY", "ONAIR_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
