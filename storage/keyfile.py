"""The operator key file: an operator's private key, locked with a passphrase.

The format is the project's own, versioned, and plain JSON so that an operator
can see what it is: Argon2id derives a key from the passphrase, and
ChaCha20-Poly1305 seals the private key under it, with every other field of the
file as associated data (so parameters cannot be weakened in place).
PKCS#8 ``BestAvailableEncryption`` is not used: its key derivation is weak.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from storage.crypto import (
    CryptoError,
    KemName,
    PassphraseCost,
    PrivateKey,
    PublicKey,
    aead_decrypt,
    aead_encrypt,
    passphrase_key,
    random_bytes,
)

FORMAT = "checkin-intake-operator-key"
VERSION = 1


class KeyFileError(Exception):
    """A key file that cannot be used; the message is one line for the operator."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, field: str) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"key file field {field!r} is missing or not text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise KeyFileError(f"key file field {field!r} is not base64") from exc


def _associated_data(doc: dict[str, Any]) -> bytes:
    header = {k: v for k, v in doc.items() if k != "ciphertext"}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def lock(key: PrivateKey, passphrase: str, cost: PassphraseCost | None = None) -> bytes:
    """Serialise ``key`` locked under ``passphrase``."""
    if not passphrase:
        raise KeyFileError("the passphrase must not be empty")
    cost = cost or PassphraseCost()
    salt = random_bytes(16)
    nonce = random_bytes(12)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kem": key.kem.value,
        "public_key": key.public_key().to_text(),
        "kdf": {
            "name": "argon2id",
            "memory_kib": cost.memory_kib,
            "iterations": cost.iterations,
            "lanes": cost.lanes,
            "salt": _b64(salt),
        },
        "aead": "chacha20-poly1305",
        "nonce": _b64(nonce),
    }
    wrapping = passphrase_key(passphrase, salt, cost)
    doc["ciphertext"] = _b64(aead_encrypt(wrapping, nonce, key.raw(), _associated_data(doc)))
    return (json.dumps(doc, indent=2) + "\n").encode()


def unlock(data: bytes, passphrase: str) -> PrivateKey:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise KeyFileError("not an operator key file (not JSON)") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError("not an operator key file")
    if doc.get("version") != VERSION:
        raise KeyFileError(f"unsupported key file version {doc.get('version')!r}")
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id":
        raise KeyFileError("key file names an unknown key derivation")
    try:
        kem = KemName(doc["kem"])
        cost = PassphraseCost(
            memory_kib=int(kdf["memory_kib"]),
            iterations=int(kdf["iterations"]),
            lanes=int(kdf["lanes"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise KeyFileError("key file is damaged") from exc
    salt = _unb64(kdf.get("salt"), "kdf.salt")
    nonce = _unb64(doc.get("nonce"), "nonce")
    ciphertext = _unb64(doc.get("ciphertext"), "ciphertext")
    wrapping = passphrase_key(passphrase, salt, cost)
    try:
        raw = aead_decrypt(wrapping, nonce, ciphertext, _associated_data(doc))
    except CryptoError:
        raise KeyFileError("wrong passphrase, or the key file was altered") from None
    key = PrivateKey(kem, raw)
    if key.public_key().to_text() != doc.get("public_key"):
        raise KeyFileError("key file is damaged: its public key does not match")
    return key


def public_key_of(data: bytes) -> PublicKey:
    """The public key recorded in a key file, without the passphrase."""
    try:
        doc = json.loads(data)
        return PublicKey.from_text(doc["public_key"])
    except (ValueError, KeyError, TypeError, CryptoError) as exc:
        raise KeyFileError("not an operator key file") from exc


def write(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600; never overwrite an existing key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; choose another --out") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None
