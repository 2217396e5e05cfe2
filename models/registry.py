"""The model registry: versions with lineage and metrics, aliases, and integrity-checked loading.

Layout under ``core.settings.registry_root()``::

    NAME/aliases.json            {"production": "3", ...}   (replaced atomically)
    NAME/VERSION/model.onnx      the only file ever loaded for serving
    NAME/VERSION/meta.json       ModelVersion fields (below)
    NAME/VERSION/signature.json  Ed25519 signature of meta.json's content (models/signing.py)
    NAME/VERSION/...             reports and plots written beside the model

Versions are integers counted from 1 per name. Names, versions and aliases must match
``NAME_PATTERN``, ``VERSION_PATTERN`` and ``ALIAS_PATTERN``, and every path resolves inside the
root (a symlink out of it is refused). ``load_session`` reads the ONNX file once, checks the
sha256 of those very bytes against its metadata (tampered, truncated, swapped) and the
metadata's signature against the trusted public key (who made it), and builds the session from
those bytes; pickles are never loaded. Every way a version can be broken (a truncated
``meta.json``, an unknown key, bytes that are not ONNX) is a ``RegistryError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.settings import registry_root
from models.signing import ModelKeys, SignatureError

MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
SIGNATURE_FILE = "signature.json"
ALIASES_FILE = "aliases.json"


NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
VERSION_PATTERN = re.compile(r"[1-9][0-9]{0,8}")
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class RegistryError(RuntimeError):
    """A model, version or alias that does not exist, or a file that fails its check."""


def _check(kind: str, value: str, pattern: re.Pattern) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise RegistryError(f"{kind} {value!r} is not a valid {kind} "
                            f"(expected {pattern.pattern})")
    return value


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    onnx_sha256: str
    feature_names: list[str]
    labels: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: dict[str, Any] = field(default_factory=dict)
    code_version: str = "unknown"
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint_files(paths: list[Path], root: Path) -> dict[str, Any]:
    """Training-data lineage: every file's path (relative to ``root``), size and sha256, and
    one digest over them all."""
    files = [{"path": str(p.relative_to(root)), "bytes": p.stat().st_size,
              "sha256": sha256_file(p)} for p in sorted(paths)]
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"root": str(root), "files": len(files), "sha256": digest, "listing": files}


def code_version(repo: Path | None = None) -> str:
    """``git describe``-like: the commit, ``-dirty`` when the work tree has changes."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class RegistryRef:
    """A registry as a job opens it where it runs: its root and the public key entries must
    verify with, both read where the job is submitted and shipped with it."""

    root: str
    verify_key: bytes | None      # None: no key where it was submitted; every load refused

    @classmethod
    def here(cls) -> RegistryRef:
        registry = Registry()
        try:
            key = registry.keys.public()
        except SignatureError:
            key = None
        return cls(str(registry.root), key)

    def open(self) -> Registry:
        return Registry(self.root, ModelKeys.verify_only(self.verify_key))


class Registry:
    def __init__(self, root: str | Path | None = None, keys: ModelKeys | None = None):
        self.root = Path(root) if root else registry_root()
        self.keys = keys or ModelKeys.from_env()

    def _path(self, *parts: str) -> Path:
        """``root/parts...``, refused unless it resolves inside the root."""
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise RegistryError(f"{path} resolves outside the registry root {self.root}")
        return path

    def _read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise RegistryError(f"{path} is not valid JSON: {e}") from None

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def versions(self, name: str) -> list[ModelVersion]:
        folder = self._path(_check("model name", name, NAME_PATTERN))
        if not folder.is_dir():
            raise RegistryError(f"no model named {name!r} in {self.root}; known: "
                                f"{', '.join(self.names()) or 'none (train one first)'}")
        found = sorted(int(p.name) for p in folder.iterdir()
                       if VERSION_PATTERN.fullmatch(p.name) and (p / META_FILE).exists())
        return [self._meta(name, str(v)) for v in found]

    def _meta(self, name: str, version: str) -> ModelVersion:
        _check("model name", name, NAME_PATTERN)
        _check("version", version, VERSION_PATTERN)
        path = self._path(name, version, META_FILE)
        if not path.exists():
            raise RegistryError(f"{name} has no version {version!r}; versions: "
                                f"{[v.version for v in self.versions(name)]}")
        meta = self._read_json(path)
        try:
            mv = ModelVersion(**meta)
        except TypeError as e:   # not an object, an unknown key or a missing one
            raise RegistryError(f"{path} is not a model version's metadata: {e}") from None
        if (mv.name, mv.version) != (name, version):
            raise RegistryError(f"{path} describes {mv.name}:{mv.version}, not "
                                f"{name}:{version}")
        return mv

    def aliases(self, name: str) -> dict[str, str]:
        path = self._path(_check("model name", name, NAME_PATTERN), ALIASES_FILE)
        if not path.exists():
            return {}
        aliases = self._read_json(path)
        if not isinstance(aliases, dict):
            raise RegistryError(f"{path} must map aliases to versions")
        for alias, version in aliases.items():
            _check("alias", alias, ALIAS_PATTERN)
            _check("version", version, VERSION_PATTERN)
        return aliases

    def resolve(self, name: str, ref: str = "production") -> ModelVersion:
        """``ref`` is a version number, an alias, or ``latest``."""
        if not self._path(_check("model name", name, NAME_PATTERN)).is_dir():
            self.versions(name)  # raises: no such model, and names the known ones
        if ref == "latest":
            versions = self.versions(name)
            if not versions:
                raise RegistryError(f"{name} has no versions")
            return versions[-1]
        if ref.isdigit():
            return self._meta(name, ref)
        _check("alias", ref, ALIAS_PATTERN)
        aliases = self.aliases(name)
        if ref not in aliases:
            raise RegistryError(f"{name} has no alias {ref!r} (aliases: {aliases or 'none'}); "
                                f"`onair models promote {name} VERSION` sets production")
        return self._meta(name, aliases[ref])

    def find(self, name: str, ref: str = "production") -> ModelVersion | None:
        """``resolve``, or None where there is no such model, version or alias yet."""
        try:
            return self.resolve(name, ref)
        except RegistryError:
            return None

    def version_dir(self, mv: ModelVersion) -> Path:
        return self.root / mv.name / mv.version

    def register(self, name: str, onnx_bytes: bytes, *, feature_names: list[str],
                 labels: list[str], params: dict | None = None, metrics: dict | None = None,
                 data_fingerprint: dict | None = None, extra: dict | None = None,
                 artifacts: dict[str, bytes] | None = None) -> ModelVersion:
        """Store a new version; it becomes visible when its ``meta.json`` lands (last)."""
        folder = self._path(_check("model name", name, NAME_PATTERN))
        folder.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
        version = str(max(existing, default=0) + 1)
        vdir = folder / version
        vdir.mkdir()
        (vdir / MODEL_FILE).write_bytes(onnx_bytes)
        for fname, content in (artifacts or {}).items():
            (vdir / fname).write_bytes(content)
        mv = ModelVersion(
            name=name, version=version, onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            feature_names=list(feature_names), labels=list(labels), params=params or {},
            metrics=metrics or {}, data_fingerprint=data_fingerprint or {},
            code_version=code_version(),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), extra=extra or {})
        # The metadata as it will be read back (JSON types), signed before it is visible.
        text = json.dumps(asdict(mv), indent=1)
        try:
            signature = self.keys.sign(json.loads(text))
        except SignatureError as e:
            raise RegistryError(f"{name}:{version} cannot be signed: {e}") from None
        _write_atomic(vdir / SIGNATURE_FILE, json.dumps(signature, indent=1))
        _write_atomic(vdir / META_FILE, text)
        return mv

    def attach(self, mv: ModelVersion, filename: str, content: bytes) -> Path:
        """Add a file beside a registered version (its lineage, a report): never the model
        or its metadata, never over an existing file."""
        if (filename in (MODEL_FILE, META_FILE, SIGNATURE_FILE) or "/" in filename
                or filename.startswith(".")):
            raise RegistryError(f"{mv.ref}: cannot attach {filename!r}")
        path = self.version_dir(mv) / filename
        if path.exists():
            raise RegistryError(f"{mv.ref}: {filename} is already attached")
        _write_atomic(path, content.decode())
        return path

    def promote(self, name: str, version: str, alias: str = "production") -> ModelVersion:
        _check("alias", alias, ALIAS_PATTERN)
        mv = self._meta(name, version)
        self.verify(mv)
        aliases = {**self.aliases(name), alias: mv.version}
        _write_atomic(self.root / name / ALIASES_FILE, json.dumps(aliases, indent=1))
        return mv

    def check_signature(self, mv: ModelVersion) -> None:
        """Raise unless ``mv``'s metadata carries a valid signature by the trusted key."""
        path = self._path(mv.name, mv.version, SIGNATURE_FILE)
        signature = self._read_json(path) if path.exists() else None
        try:
            self.keys.verify(asdict(mv), signature if isinstance(signature, dict) else None,
                             mv.ref)
        except SignatureError as e:
            raise RegistryError(str(e)) from None

    def verify(self, mv: ModelVersion) -> bytes:
        """The model file's bytes, read once, after the metadata's signature verified and
        their sha256 matched the metadata's."""
        self.check_signature(mv)
        path = self._path(mv.name, mv.version, MODEL_FILE)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise RegistryError(f"{mv.ref}: cannot read {path}: {e}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != mv.onnx_sha256:
            raise RegistryError(f"{mv.ref}: {path} has sha256 {actual[:16]}…, the registry "
                                f"recorded {str(mv.onnx_sha256)[:16]}…; refusing to load it")
        return data

    def load_session(self, name: str, ref: str = "production"):
        """(onnxruntime session on one thread, its ModelVersion), after the sha256 check."""
        from models.onnx_export import onnx_runtime

        ort = onnx_runtime()
        mv = self.resolve(name, ref)
        data = self.verify(mv)
        options = ort.SessionOptions()
        # One Flink subtask per core: onnxruntime's own thread pool would fight the others.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            # From the checked bytes, not the path: the file could change between the two.
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as e:   # onnxruntime raises its own types for a bad model
            raise RegistryError(f"{mv.ref}: not a loadable ONNX model: {e}") from None
        return session, mv
