"""The docs name only what exists: links, files and modules, `onair` subcommands and their flags,
job flags, `./dev` commands and benchmarks."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from core.config import declared
from onair.cli import build_parser
from onair.submit import job_names

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "data" / "audio" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(r"^(?:onair|jobs|operators|connectors|models|tests|docs|infra|schemas|data"
                       r"|\.ci)/[\w./-]*$")
MODULE = re.compile(r"^(?:onair|jobs|operators|connectors|models)(?:\.\w+)+$")
PLACEHOLDER = re.compile(r"[A-Z]{3,}|\.\.\.|<|…")


def _ids(pages):
    return [str(p.relative_to(ROOT)) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_links_point_at_files_that_exist(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_files_and_modules_named_exist(page):
    for token in INLINE.findall(page.read_text(encoding="utf-8")):
        token = token.strip()
        if REPO_PATH.match(token) and not re.search(r"[<>*$=]", token):
            assert (ROOT / token.rstrip("/")).exists(), f"{page.name} names {token}"
        elif MODULE.match(token):
            assert _resolves(token), f"{page.name} names {token}, which does not exist"


def _spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None


def _resolves(dotted: str) -> bool:
    """The longest prefix is a module (at least package.module) and the rest its attributes."""
    parts = dotted.split(".")
    for n in range(len(parts), 1, -1):
        if _spec(".".join(parts[:n])) is not None:
            obj = importlib.import_module(".".join(parts[:n]))
            for name in parts[n:]:
                if not hasattr(obj, name):
                    return False
                obj = getattr(obj, name)
            return True
    return False


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


SUBCOMMANDS = _subparsers(build_parser())


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _job_flags(job: str) -> set[str]:
    from onair.cli.jobs import job_config_class

    return {d.flag for d in declared(job_config_class(job), job)} | {
        "--no-" + d.flag[2:] for d in declared(job_config_class(job), job)} | {"--help"}


def _commands(page: Path) -> list[list[str]]:
    """Each `onair ...` and `./dev ...` line of the page's code blocks, as tokens."""
    found = []
    for block in CODE_BLOCK.findall(page.read_text(encoding="utf-8")):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip().removeprefix("$ ")
            try:
                tokens = shlex.split(line)
            except ValueError:
                continue
            for i, tok in enumerate(tokens):
                if tok.endswith("bin/onair") or tok == "onair" or tok == "./dev":
                    found.append(tokens[i:])
                    break
    return found


def _check_onair(tokens: list[str], where: str) -> None:
    if len(tokens) < 2 or PLACEHOLDER.search(tokens[1]):
        return
    sub = tokens[1]
    assert sub in SUBCOMMANDS, f"{where}: `onair {sub}` is not a subcommand"
    parser, rest = SUBCOMMANDS[sub], tokens[2:]
    nested = _subparsers(parser)     # `onair pipeline daily ...`
    if nested and rest and rest[0] in nested:
        parser, rest = nested[rest[0]], rest[1:]
    own, job, job_args = _flags(parser), None, []
    if sub in ("submit", "config"):
        positional = [t for t in rest if not t.startswith("-")]
        job = positional[0] if positional else None
        if job is not None:
            i = rest.index(job)
            rest, job_args = rest[:i], [t for t in rest[i + 1:] if t != "--"]
    for tok in rest:
        if tok.startswith("--") and "=" not in tok:
            assert tok in own, f"{where}: `onair {sub}` has no flag {tok}"
    if job is not None and not PLACEHOLDER.search(job):
        assert job in job_names(), f"{where}: no job {job}"
        flags = _job_flags(job)
        for tok in job_args:
            if tok.startswith("--") and not PLACEHOLDER.search(tok):
                assert tok in flags, f"{where}: job {job} has no flag {tok}"


def _check_dev(tokens: list[str], where: str) -> None:
    assert tokens[1] in ("demo", "test", "faults", "bench"), f"{where}: ./dev {tokens[1]}"
    if tokens[1] == "bench" and len(tokens) > 2 and not PLACEHOLDER.search(tokens[2]):
        assert (ROOT / "tests" / "benchmarks" / f"bench_{tokens[2]}.py").exists(), \
            f"{where}: no benchmark {tokens[2]}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_commands_in_code_blocks_exist(page):
    for tokens in _commands(page):
        where = f"{page.name}: {' '.join(tokens)[:80]}"
        if tokens[0] == "./dev":
            _check_dev(tokens, where)
        else:
            _check_onair(tokens, where)


def test_the_checker_catches_what_does_not_exist():
    with pytest.raises(AssertionError, match="not a subcommand"):
        _check_onair(["onair", "frobnicate"], "x")
    with pytest.raises(AssertionError, match="has no flag"):
        _check_onair(["onair", "subscribe", "alarm-alerts", "--no-such-flag"], "x")
    with pytest.raises(AssertionError, match="has no flag"):
        _check_onair(["onair", "submit", "compute_features", "--", "--buckets-x", "3"], "x")
    with pytest.raises(AssertionError, match="no job"):
        _check_onair(["onair", "submit", "no_such_job"], "x")
    with pytest.raises(AssertionError, match="no benchmark"):
        _check_dev(["./dev", "bench", "nothing"], "x")
    _check_onair(["onair", "submit", "--attached", "compact_lake", "--from", "2026-01-01"], "x")
