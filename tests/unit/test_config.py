"""Config declared once (core/config.py): flags and environment derived from each job's
declarations, precedence, bounds, deprecated names, and the jobs' own declarations."""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass

import pytest

from connectors.flink_env import restart_strategy
from core.config import (
    ConfigError,
    add_arguments,
    declared,
    describe,
    group,
    markdown_table,
    option,
    resolve,
)
from core.settings import FlinkJobSettings
from onair.submit import job_names


@dataclass(frozen=True)
class Example:
    flink: FlinkJobSettings = group(FlinkJobSettings, unaligned_checkpoints=True)
    buckets: int = option(16, "buckets", minimum=1, maximum=64, legacy_env=("OLD_BUCKETS",))
    token: str | None = option(None, "a secret", secret=True)
    mode: str = option("a", "mode", choices=("a", "b"))


def build(argv, environ=None, warnings=None):
    parser = argparse.ArgumentParser()
    add_arguments(parser, Example, "some_job")
    return resolve(Example, "some_job", parser.parse_args(argv), environ or {},
                   warn=(warnings.append if warnings is not None else None))


def test_names_are_derived_from_the_declaration():
    by_flag = {d.flag: d.env for d in declared(Example, "some_job")}
    assert by_flag["--buckets"] == "ONAIR_SOME_JOB_BUCKETS"
    assert by_flag["--unaligned-checkpoints"] == "ONAIR_SOME_JOB_UNALIGNED_CHECKPOINTS"
    assert by_flag["--parallelism"] == "ONAIR_SOME_JOB_PARALLELISM"


def test_flag_beats_environment_beats_default_and_sources_are_told():
    r = build([])
    assert r.config.buckets == 16 and r.sources["--buckets"] == "default"
    r = build([], {"ONAIR_SOME_JOB_BUCKETS": "32"})
    assert r.config.buckets == 32 and r.sources["--buckets"] == "env ONAIR_SOME_JOB_BUCKETS"
    r = build(["--buckets", "8"], {"ONAIR_SOME_JOB_BUCKETS": "32"})
    assert r.config.buckets == 8 and r.sources["--buckets"] == "flag"


def test_a_groups_job_defaults_and_boolean_flags():
    assert build([]).config.flink.unaligned_checkpoints is True
    assert build(["--no-unaligned-checkpoints"]).config.flink.unaligned_checkpoints is False
    env = {"ONAIR_SOME_JOB_UNALIGNED_CHECKPOINTS": "false"}
    assert build([], env).config.flink.unaligned_checkpoints is False
    assert build(["--unaligned-checkpoints"], env).config.flink.unaligned_checkpoints is True


def test_old_environment_names_still_work_with_a_warning():
    warnings: list[str] = []
    r = build([], {"OLD_BUCKETS": "4", "SOME_JOB_PARALLELISM": "3"}, warnings)
    assert (r.config.buckets, r.config.flink.parallelism) == (4, 3)
    assert len(warnings) == 2 and all("deprecated" in w for w in warnings)
    # The new name wins over the old one, silently.
    warnings.clear()
    r = build([], {"OLD_BUCKETS": "4", "ONAIR_SOME_JOB_BUCKETS": "5"}, warnings)
    assert r.config.buckets == 5 and warnings == []


@pytest.mark.parametrize(("argv", "environ", "message"), [
    (["--buckets", "0"], {}, "at least 1"),
    (["--buckets", "65"], {}, "at most 64"),
    (["--mode", "c"], {}, "one of a, b"),
    ([], {"ONAIR_SOME_JOB_BUCKETS": "many"}, "not a valid int"),
    ([], {"ONAIR_SOME_JOB_BOUNDED": "maybe"}, "not a boolean"),
])
def test_values_outside_the_declaration_are_refused(argv, environ, message):
    with pytest.raises(ConfigError, match=message):
        build(argv, environ)


def test_secrets_are_masked_when_described():
    r = build(["--token", "hunter2"])
    rows = {flag: value for flag, _, value, _ in describe(Example, "some_job", r)}
    assert rows["--token"] == "***" and "hunter2" not in str(rows)


def test_restart_strategy_follows_the_flags():
    conf = restart_strategy(build([]).config.flink)
    assert conf["restart-strategy.type"] == "exponential-delay"
    assert conf["restart-strategy.exponential-delay.attempts-before-reset-backoff"] == "30"
    conf = restart_strategy(build(["--restart-attempts", "5", "--restart-max-delay-s", "9"])
                            .config.flink)
    assert conf["restart-strategy.exponential-delay.attempts-before-reset-backoff"] == "5"
    assert conf["restart-strategy.exponential-delay.max-backoff"] == "9 s"
    assert restart_strategy(FlinkJobSettings(batch=True))["restart-strategy.type"] == \
        "fixed-delay"


def _config_class(job):
    from onair.cli.jobs import job_config_class

    return job_config_class(job)


@pytest.mark.parametrize("job", job_names())
def test_every_job_has_one_shape(job):
    """A typed config, build_pipeline that wires and returns, and main(argv)."""
    module = importlib.import_module(f"jobs.{job}")
    assert callable(module.build_pipeline) and callable(module.main)
    assert job == module.JOB
    cls = _config_class(job)
    names = [d.env for d in declared(cls, job)]
    assert names and len(names) == len(set(names))
    assert all(n.startswith(f"ONAIR_{job.upper()}_") for n in names)
    assert all(d.spec.help for d in declared(cls, job))
    # The Flink functions live in operators/: a job file defines none.
    from pyflink.datastream.functions import Function

    assert not [k for k, v in vars(module).items() if isinstance(v, type)
                and issubclass(v, Function) and v.__module__ == module.__name__]


def test_rank_shows_checkpoints_unaligned_by_default():
    from jobs.rank_shows import RankShowsConfig

    assert resolve(RankShowsConfig, "rank_shows", None, {}).config.flink \
        .unaligned_checkpoints is True


def test_the_configuration_page_is_generated_from_the_declarations():
    from onair.cli.docs import CONFIG_PAGE, configuration_page

    assert CONFIG_PAGE.read_text(encoding="utf-8") == configuration_page(), \
        "docs/configuration.md is stale: run `onair docs config`"


def test_markdown_table_has_a_row_per_option():
    table = markdown_table(Example, "some_job")
    assert table.count("\n") == 2 + len(list(declared(Example, "some_job"))) - 1
    assert "`ONAIR_SOME_JOB_BUCKETS`" in table and "was OLD_BUCKETS" in table
