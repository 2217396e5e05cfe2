"""The Flink flags every streaming job shares: per-job defaults, flags and environment."""

import argparse

import pytest

from connectors.job_config import add_flink_flags, flink_settings


def settings(argv, **defaults):
    parser = argparse.ArgumentParser()
    add_flink_flags(parser, "some_job", **defaults)
    return flink_settings(parser.parse_args(argv))


def test_unaligned_checkpoints_follow_the_jobs_default_and_the_flags(monkeypatch):
    monkeypatch.delenv("ONAIR_UNALIGNED_CHECKPOINTS", raising=False)
    assert settings([]).unaligned_checkpoints is False
    assert settings([], unaligned_checkpoints=True).unaligned_checkpoints is True
    assert settings(["--no-unaligned-checkpoints"],
                    unaligned_checkpoints=True).unaligned_checkpoints is False
    assert settings(["--unaligned-checkpoints"]).unaligned_checkpoints is True


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("false", False)])
def test_unaligned_checkpoints_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("ONAIR_UNALIGNED_CHECKPOINTS", value)
    assert settings([]).unaligned_checkpoints is expected
    # A flag still wins over the environment.
    assert settings(["--no-unaligned-checkpoints"]).unaligned_checkpoints is False


def test_rank_shows_checkpoints_unaligned_by_default(monkeypatch):
    monkeypatch.delenv("ONAIR_UNALIGNED_CHECKPOINTS", raising=False)
    from jobs.rank_shows import RankShowsConfig

    assert RankShowsConfig.from_args([]).flink.unaligned_checkpoints is True
    assert RankShowsConfig.from_args(["--no-unaligned-checkpoints"]).flink \
        .unaligned_checkpoints is False


def test_streaming_jobs_restart_with_a_bounded_exponential_delay(monkeypatch):
    from connectors.flink_env import FlinkJobSettings, restart_strategy

    monkeypatch.delenv("ONAIR_RESTART_ATTEMPTS", raising=False)
    conf = restart_strategy(settings([]))
    assert conf["restart-strategy.type"] == "exponential-delay"
    assert conf["restart-strategy.exponential-delay.attempts-before-reset-backoff"] == "30"
    assert conf["restart-strategy.exponential-delay.max-backoff"] == "60 s"
    conf = restart_strategy(settings(["--restart-attempts", "5", "--restart-max-delay-s", "9"]))
    assert conf["restart-strategy.exponential-delay.attempts-before-reset-backoff"] == "5"
    assert conf["restart-strategy.exponential-delay.max-backoff"] == "9 s"
    batch = restart_strategy(FlinkJobSettings(batch=True))
    assert batch["restart-strategy.type"] == "fixed-delay"
