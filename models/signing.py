"""Signatures that prove where a registry entry came from.

The registry's sha256 catches a corrupted model file; it proves nothing about who trained the
model, since it sits in the same writable folder. Each entry is also signed with an Ed25519
private key kept outside the registry (``ONAIR_MODEL_SIGNING_KEY``, default
``$ONAIR_HOME/secrets/model-signing.key``, readable by its owner only), over the entry's
metadata in canonical JSON: the model bytes' sha256, features, labels, parameters, metrics and
lineage (data fingerprint, code version). Loading verifies it with the public key
(``ONAIR_MODEL_VERIFY_KEY``, default beside the private one): a host that only serves models
holds the public key alone and cannot sign. The pair is made on first use at the default
place; a configured path that does not exist is an error, never a new key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import model_signing_key_path, model_verify_key_path, write_private

ALGORITHM = "ed25519"


class SignatureError(RuntimeError):
    """A missing, malformed or wrong signature, or no key to make or check one."""


def canonical(meta: dict) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, ASCII."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public_pem: bytes) -> str:
    return hashlib.sha256(public_pem).hexdigest()[:16]


def _public_pem(private_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class ModelKeys:
    """Where the signing pair is (paths), or only a public key (``verify_only``)."""

    signing_path: Path | None = None
    verify_path: Path | None = None
    public_pem: bytes | None = field(default=None, repr=False)
    create: bool = False          # make the pair at ``signing_path`` when it is missing

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ModelKeys:
        env = os.environ if env is None else env
        configured = bool(env.get("ONAIR_MODEL_SIGNING_KEY"))
        return cls(model_signing_key_path(env), model_verify_key_path(env),
                   create=not configured)

    @classmethod
    def verify_only(cls, public_pem: bytes | None) -> ModelKeys:
        """Checks with ``public_pem`` only; None: every entry is refused (no trusted key)."""
        return cls(public_pem=public_pem)

    def ensure(self) -> None:
        """Make the pair now when it is missing and may be made (``onair up``)."""
        if self.create and self.signing_path is not None and not self.signing_path.exists():
            self._generate(self.signing_path)

    # ------------------------------------------------------------------ keys
    def _private(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        path = self.signing_path
        if path is None:
            raise SignatureError("this registry only verifies: it holds no signing key")
        if not path.exists():
            if not self.create:
                raise SignatureError(f"no model signing key at {path} "
                                     "(ONAIR_MODEL_SIGNING_KEY names a file that is missing)")
            self._generate(path)
        try:
            return load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as e:
            raise SignatureError(f"model signing key {path} unreadable: {e}") from None

    def _generate(self, path: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()), exclusive=True)
        verify_path = self.verify_path or path.with_suffix(".pub")
        if not verify_path.exists():
            verify_path.write_bytes(_public_pem(key))

    def public(self) -> bytes:
        """The public key (PEM) signatures are checked with."""
        if self.public_pem is not None:
            return self.public_pem
        if self.verify_path is None:
            raise SignatureError("no trusted model verify key where the job was submitted: "
                                 "models cannot be checked (ONAIR_MODEL_VERIFY_KEY)")
        if not self.verify_path.exists():
            raise SignatureError(f"no model verify key at {self.verify_path}: models cannot "
                                 "be checked (ONAIR_MODEL_VERIFY_KEY, or train one here first)")
        return self.verify_path.read_bytes()

    def key_id(self) -> str:
        return key_id(self.public())

    # ------------------------------------------------------------------ sign and verify
    def sign(self, meta: dict) -> dict:
        key = self._private()
        return {"algorithm": ALGORITHM, "key_id": key_id(_public_pem(key)),
                "signature": base64.b64encode(key.sign(canonical(meta))).decode()}

    def verify(self, meta: dict, signature: dict | None, what: str) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        if not signature:
            raise SignatureError(f"{what} is not signed; refusing to load it")
        public = self.public()
        if signature.get("algorithm") != ALGORITHM or signature.get("key_id") != key_id(public):
            raise SignatureError(f"{what} is signed by another key ({signature.get('key_id')}, "
                                 f"this registry trusts {key_id(public)}); refusing to load it")
        try:
            load_pem_public_key(public).verify(base64.b64decode(signature["signature"]),
                                               canonical(meta))
        except (InvalidSignature, ValueError, KeyError, TypeError):
            raise SignatureError(f"{what}: signature does not match its metadata (changed "
                                 "after it was signed); refusing to load it") from None
