"""The alert rules (infra/prometheus/alerts.yml) are valid and behave as their unit tests on
synthetic series say (alerts_test.yml), through Prometheus' own promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus"


def _promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: ./dev installs it (apt-get install prometheus)")
    proc = subprocess.run([tool, *args], cwd=RULES, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_alert_rules_are_valid():
    assert "SUCCESS: 12 rules found" in _promtool("check", "rules", "alerts.yml")


def test_alert_rules_fire_on_their_synthetic_series_and_only_there():
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")
