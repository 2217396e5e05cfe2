"""Submitting a job file to the Flink cluster with ``flink run``: what the CLI, the demo, the tests
and the benchmarks all use."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import sys

from core.settings import PROJECT_ROOT, FlinkSettings

# What `flink run -pyfs` ships beside the job file: every package a job imports.
JOB_PACKAGES = ("core", "models", "connectors", "operators")


class SubmitError(Exception):
    """``flink run`` failed, or the job does not exist."""


def job_names() -> list[str]:
    return sorted(p.stem for p in (PROJECT_ROOT / "jobs").glob("*.py") if p.stem[0] != "_")


def flink_run_argv(job: str, job_args: list[str], detached: bool = True,
                   from_savepoint: str | None = None) -> list[str]:
    """The ``flink run`` line that submits ``jobs/<job>.py`` to the configured cluster,
    optionally resuming from a savepoint or retained checkpoint."""
    from onair.stack import pyflink_home

    script = PROJECT_ROOT / "jobs" / f"{job}.py"
    if not script.exists():
        raise SubmitError(f"no job {job!r}. Jobs: {', '.join(job_names())}")
    argv = [str(pyflink_home() / "bin" / "flink"), "run", "-m", FlinkSettings.from_env().address]
    if detached:
        argv.append("-d")
    if from_savepoint:
        argv += ["-s", from_savepoint]
    argv += [
        "-py", str(script), "-pyfs", ",".join(str(PROJECT_ROOT / p) for p in JOB_PACKAGES),
        "-pyexec", sys.executable, "-pyclientexec", sys.executable,
        # `--` ends flink's own options: without it `flink run` takes a job's `--parallelism N`
        # as its own `-p` and the job never sees the flag (it then ran at its default, 1).
        "--", *job_args,
    ]
    return argv


def submit(job: str, job_args: list[str], detached: bool = True,
           from_savepoint: str | None = None) -> str:
    """Submit a job; return its Flink job id."""
    from onair.stack import Stack, check_java

    check_java()
    argv = flink_run_argv(job, job_args, detached, from_savepoint)
    print("$ " + shlex.join(argv), file=sys.stderr)
    proc = subprocess.run(argv, env=Stack.default().flink_env(), cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SubmitError(f"flink run failed (exit {proc.returncode}):\n{output[-4000:]}\n"
                       "Is the cluster up (`onair status`)?")
    if not detached:
        sys.stdout.write(proc.stdout)  # what the job's main() printed (bounded jobs' results)
    for line in output.splitlines():
        if "JobID" in line:
            return line.split()[-1]
    raise SubmitError(f"flink run printed no job id:\n{output[-2000:]}")


def last_json(text: str) -> dict:
    """The last JSON object line of a job's output (bounded jobs end with their summary)."""
    return _split_summary(text)[0]


def _split_summary(text: str) -> tuple[dict, list[str]]:
    lines = text.splitlines()
    at = max((i for i, line in enumerate(lines) if line.startswith("{")), default=None)
    if at is None:
        return {}, lines
    return json.loads(lines[at]), lines[:at] + lines[at + 1:]


def run_attached(job: str, job_args: list[str]) -> tuple[str, dict, list[str]]:
    """Run a bounded job to its end: its Flink job id, its JSON summary (its last JSON line)
    and the other lines it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        job_id = submit(job, job_args, detached=False)
    summary, rest = _split_summary(out.getvalue())
    return job_id, summary, rest
