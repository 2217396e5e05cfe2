"""``onair submit | config``: jobs on the Flink cluster and their configuration."""

from __future__ import annotations

import argparse
import sys

from core.settings import FlinkSettings
from onair.submit import submit


def job_arguments(args: argparse.Namespace) -> list[str]:
    """The job's own flags: everything after JOB, a leading ``--`` dropped."""
    return args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args


def cmd_submit(args: argparse.Namespace) -> int:
    job_id = submit(args.job, job_arguments(args), detached=not args.attached,
                    from_savepoint=args.from_savepoint)
    print(job_id)
    print(f"watch it at {FlinkSettings.from_env().rest_url}/#/job/running/{job_id}/overview",
          file=sys.stderr)
    return 0


def job_config_class(job: str) -> type:
    """The config dataclass ``jobs/<job>.py`` declares (the one named ``*Config``)."""
    import dataclasses
    import importlib

    from onair.cli.common import CliError
    from onair.submit import job_names

    if job not in job_names():
        raise CliError(f"no job {job!r}. Jobs: {', '.join(job_names())}")
    module = importlib.import_module(f"jobs.{job}")
    found = [v for k, v in vars(module).items() if k.endswith("Config")
             and dataclasses.is_dataclass(v) and v.__module__ == module.__name__]
    if len(found) != 1:
        raise CliError(f"jobs/{job}.py declares {len(found)} *Config classes, not one")
    return found[0]


def cmd_config(args: argparse.Namespace) -> int:
    from core.config import add_arguments, connections, describe, resolve
    from onair.cli.common import CliError

    cls = job_config_class(args.job)
    parser = argparse.ArgumentParser(prog=f"onair config {args.job} --")
    add_arguments(parser, cls, args.job)
    try:
        resolved = resolve(cls, args.job, parser.parse_args(job_arguments(args)), strict=False)
    except ValueError as e:
        raise CliError(str(e)) from None
    rows = describe(cls, args.job, resolved)
    width = max(len(r[0]) for r in rows)
    for flag, env, value, source in rows:
        print(f"{flag:<{width}}  {value:<28} {source:<10}  ({env})")
    for name, settings in connections(cls):
        print(f"{name}: {getattr(resolved.config, name)!r}  (from {settings.__name__}.from_env)")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("config", help="print a job's effective configuration: each value and "
                                      "where it came from (flag, environment, default)")
    p.add_argument("job")
    p.add_argument("job_args", nargs=argparse.REMAINDER,
                   help="the job's flags, as `onair submit JOB -- ...` would pass them")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("submit", help="submit jobs/JOB.py to the Flink cluster with `flink run`")
    p.add_argument("job")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments for the job")
    p.add_argument("--attached", action="store_true", help="wait for the job to finish")
    p.add_argument("--from-savepoint", metavar="PATH",
                   help="resume from this savepoint or retained checkpoint")
    p.set_defaults(func=cmd_submit)
