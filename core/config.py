"""Job configuration, declared once.

A job's config is a frozen dataclass. Each field is declared with ``option(default, help, ...)``
(type from the annotation, bounds, choices); its flag ``--field-name`` and its environment
variable ``ONAIR_<JOB>_<FIELD>`` are derived from the declaration, so they cannot drift apart.
A field declared with ``group(Options, **defaults)`` adds that dataclass's options under the
same job (the Flink runtime options every job shares, with the job's own defaults); a field
declared with ``connection(Settings)`` is built by ``Settings.from_env()`` from the shared
``KAFKA_*``, ``REDIS_*`` and ``FLINK_*`` variables, never from flags.

Precedence: flag, then environment, then an old environment name (still read for one release,
with a warning), then the default. ``describe`` tells where each value came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

_KEY = "onair"


class ConfigError(ValueError):
    """A value outside its declaration (type, bounds, choices)."""


@dataclass(frozen=True)
class Spec:
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    legacy_env: tuple[str, ...] = ()
    secret: bool = False
    required: bool = False
    flag: str | None = None     # only where a short, established flag differs from the name


@dataclass(frozen=True)
class _Group:
    cls: type
    defaults: Mapping[str, Any]


@dataclass(frozen=True)
class _Connection:
    cls: type


def option(default: Any = None, help: str = "", *, minimum: float | None = None,
           maximum: float | None = None, choices: tuple[Any, ...] | None = None,
           legacy_env: tuple[str, ...] = (), secret: bool = False,
           required: bool = False, flag: str | None = None) -> Any:
    """A config field with its flag and environment variable derived from its name."""
    spec = Spec(help, minimum, maximum, choices, tuple(legacy_env), secret, required, flag)
    return field(default=default, metadata={_KEY: spec})


def group(cls: type, **defaults: Any) -> Any:
    """A dataclass of options embedded in a job's config, with the job's own defaults."""
    return field(default_factory=lambda: cls(**defaults),
                 metadata={_KEY: _Group(cls, dict(defaults))})


def connection(cls: type) -> Any:
    """Connection settings built by ``cls.from_env()`` (shared ``KAFKA_*``/``REDIS_*`` names)."""
    return field(default_factory=cls.from_env, metadata={_KEY: _Connection(cls)})


@dataclass(frozen=True)
class Declared:
    """One option as the user sees it: the path of attributes to it, flag, env and spec."""

    path: tuple[str, ...]
    type: Any
    default: Any
    spec: Spec
    flag: str
    env: str
    legacy_env: tuple[str, ...]     # the spec's old names, ``{JOB}`` filled in

    @property
    def name(self) -> str:
        return self.path[-1]


def env_prefix(job: str) -> str:
    return "ONAIR_" + job.upper().replace("-", "_") + "_"


def declared(cls: type, job: str, _path: tuple[str, ...] = (),
             _defaults: Mapping[str, Any] | None = None) -> Iterator[Declared]:
    """Every option of ``cls`` (groups flattened) in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if isinstance(meta, _Group):
            yield from declared(meta.cls, job, (*_path, f.name), meta.defaults)
        elif isinstance(meta, Spec):
            default = (_defaults or {}).get(f.name, f.default)
            yield Declared((*_path, f.name), hints[f.name], default, meta,
                           meta.flag or "--" + f.name.replace("_", "-"),
                           env_prefix(job) + f.name.upper(),
                           tuple(n.format(JOB=job.upper()) for n in meta.legacy_env))


def _base(tp: Any) -> tuple[Any, bool]:
    """(the type without ``| None``, whether None is allowed)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def parse_value(text: str, tp: Any) -> Any:
    base, optional = _base(tp)
    if optional and text.strip().lower() in ("", "none"):
        return None
    if base is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{text!r} is not a boolean (true/false)")
    if base is date:
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise ConfigError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if typing.get_origin(base) is tuple:
        return tuple(s.strip() for s in text.split(",") if s.strip())
    try:
        return base(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{text!r} is not a valid {getattr(base, '__name__', base)}") from None


def check(d: Declared, value: Any, strict: bool = True) -> Any:
    if value is None:
        if d.spec.required and strict:
            raise ConfigError(f"{d.flag} is required (or set {d.env})")
        return value
    if d.spec.choices is not None and value not in d.spec.choices:
        raise ConfigError(f"{d.flag} must be one of {', '.join(map(str, d.spec.choices))}, "
                          f"not {value!r}")
    if d.spec.minimum is not None and value < d.spec.minimum:
        raise ConfigError(f"{d.flag} must be at least {d.spec.minimum:g}, not {value!r}")
    if d.spec.maximum is not None and value > d.spec.maximum:
        raise ConfigError(f"{d.flag} must be at most {d.spec.maximum:g}, not {value!r}")
    return value


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def add_arguments(parser: argparse.ArgumentParser, cls: type, job: str) -> None:
    """One flag per declared option; its help names the environment variable and default."""
    for d in declared(cls, job):
        base, _ = _base(d.type)
        default = "required" if d.spec.required else f"default {_show(d.default) or 'none'}"
        help_ = f"{d.spec.help} (env {d.env}; {default})"
        if base is bool:
            parser.add_argument(d.flag, action=argparse.BooleanOptionalAction, default=None,
                                dest=d.name, help=help_)
        else:
            parser.add_argument(d.flag, default=None, dest=d.name, metavar=d.name.upper(),
                                help=help_,
                                type=lambda text, tp=d.type: parse_value(text, tp))


@dataclass(frozen=True)
class Resolved:
    config: Any
    sources: dict[str, str]     # flag name -> "flag" | "env NAME" | "default"


def resolve(cls: type, job: str, args: argparse.Namespace | None = None,
            environ: Mapping[str, str] | None = None,
            warn: Callable[[str], None] | None = None, strict: bool = True) -> Resolved:
    """Build ``cls`` from flags (``args``), the environment and the declared defaults
    (``strict=False`` lets a required option stay unset, to show a configuration)."""
    environ = os.environ if environ is None else environ
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    values: dict[tuple[str, ...], Any] = {}
    sources: dict[str, str] = {}
    for d in declared(cls, job):
        given = getattr(args, d.name, None) if args is not None else None
        if given is not None:
            value, source = given, "flag"
        elif environ.get(d.env) is not None:
            value, source = parse_value(environ[d.env], d.type), f"env {d.env}"
        else:
            old = next((n for n in d.legacy_env if environ.get(n) is not None), None)
            if old:
                warn(f"{old} is deprecated and will be ignored in the next release: "
                     f"set {d.env}")
                value, source = parse_value(environ[old], d.type), f"env {old} (deprecated)"
            else:
                value, source = d.default, "default"
        values[d.path] = check(d, value, strict)
        sources[d.flag] = source
    return Resolved(_build(cls, values, (), environ), sources)


def _build(cls: type, values: dict[tuple[str, ...], Any], path: tuple[str, ...],
           environ: Mapping[str, str], fixed: Mapping[str, Any] | None = None) -> Any:
    # A group's defaults for fields that are not options (e.g. batch=True) are fixed values.
    kwargs: dict[str, Any] = dict(fixed or {})
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if isinstance(meta, _Group):
            kwargs[f.name] = _build(meta.cls, values, (*path, f.name), environ, meta.defaults)
        elif isinstance(meta, Spec):
            kwargs[f.name] = values[(*path, f.name)]
        elif isinstance(meta, _Connection):
            kwargs[f.name] = meta.cls.from_env(environ)
    return cls(**kwargs)


def parse(cls: type, job: str, argv: list[str] | None, description: str = "",
          environ: Mapping[str, str] | None = None) -> Any:
    """A job's ``main``: flags from ``argv``, then the environment, then the defaults; a value
    outside its declaration exits with the parser's usage message."""
    parser = argparse.ArgumentParser(prog=job, description=description)
    add_arguments(parser, cls, job)
    args = parser.parse_args(argv)
    try:
        return resolve(cls, job, args, environ).config
    except ValueError as e:     # ConfigError, or a config's own check of its values
        parser.error(str(e))


def describe(cls: type, job: str, resolved: Resolved) -> list[tuple[str, str, str, str]]:
    """(flag, env, value, source) of every option, secrets masked."""
    rows = []
    for d in declared(cls, job):
        value: Any = resolved.config
        for name in d.path:
            value = getattr(value, name)
        shown = "***" if d.spec.secret and value else _show(value)
        if value is None and d.spec.required:
            shown = "(required, unset)"
        rows.append((d.flag, d.env, shown, resolved.sources[d.flag]))
    return rows


def connections(cls: type) -> list[tuple[str, type]]:
    """The connection settings a config embeds: (field name, settings class)."""
    return [(f.name, f.metadata[_KEY].cls) for f in dataclasses.fields(cls)
            if isinstance(f.metadata.get(_KEY), _Connection)]


def markdown_table(cls: type, job: str) -> str:
    """The options of one job as a Markdown table (docs/configuration.md is made of these)."""
    lines = ["| flag | environment | default | what it sets |", "|---|---|---|---|"]
    for d in declared(cls, job):
        default = "required" if d.spec.required else (_show(d.default) or "—")
        bounds = []
        if d.spec.minimum is not None:
            bounds.append(f"≥ {d.spec.minimum:g}")
        if d.spec.maximum is not None:
            bounds.append(f"≤ {d.spec.maximum:g}")
        if d.spec.choices is not None:
            bounds.append(" / ".join(map(str, d.spec.choices)))
        what = d.spec.help + (f" ({', '.join(bounds)})" if bounds else "")
        if d.legacy_env:
            what += f"; was {', '.join(d.legacy_env)}"
        lines.append(f"| `{d.flag}` | `{d.env}` | `{default}` | {what.replace('|', '/')} |")
    return "\n".join(lines)
