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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.crypto import (
    CryptoError,
    KemName,
    PassphraseCost,
    PrivateKey,
    PublicKey,
    SigningKey,
    VerifyKey,
    aead_decrypt,
    aead_encrypt,
    passphrase_key,
    random_bytes,
)

FORMAT = "checkin-intake-operator-key"
# Version 2 also holds the operator's signing key (after the KEM key, in the same
# ciphertext) and its public half; version 1 files hold the KEM key alone.
VERSION = 2
VERSIONS = (1, 2)
SIGNING_RAW = 64

# What a key file may ask of the machine that opens it: past these, a hostile or
# damaged file would exhaust memory or fail deep inside Argon2.
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_ITERATIONS = 64
MAX_LANES = 64


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


@dataclass(frozen=True, slots=True)
class OperatorKeys:
    """What an unlocked key file holds: the key that opens content, and the key that
    signs what the bot trusts (None in a version-1 file, made before signing keys)."""

    private: PrivateKey
    signing: SigningKey | None


def lock(
    key: PrivateKey,
    passphrase: str,
    cost: PassphraseCost | None = None,
    *,
    signing: SigningKey | None = None,
) -> bytes:
    """Serialise ``key`` (and the operator's ``signing`` key) locked under ``passphrase``."""
    if not passphrase:
        raise KeyFileError("the passphrase must not be empty")
    cost = cost or PassphraseCost()
    salt = random_bytes(16)
    nonce = random_bytes(12)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION if signing is not None else 1,
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
    secret = key.raw()
    if signing is not None:
        doc["verify_key"] = signing.verify_key().to_text()
        secret += signing.raw()
    wrapping = passphrase_key(passphrase, salt, cost)
    doc["ciphertext"] = _b64(aead_encrypt(wrapping, nonce, secret, _associated_data(doc)))
    return (json.dumps(doc, indent=2) + "\n").encode()


def unlock(data: bytes, passphrase: str) -> PrivateKey:
    """The key that opens content (see ``unlock_keys`` for the signing key too)."""
    return unlock_keys(data, passphrase).private


def _bounded(cost: PassphraseCost) -> PassphraseCost:
    if not 1 <= cost.lanes <= MAX_LANES:
        raise KeyFileError(f"key file asks for {cost.lanes} Argon2 lanes (1 to {MAX_LANES})")
    if not 1 <= cost.iterations <= MAX_ITERATIONS:
        raise KeyFileError(
            f"key file asks for {cost.iterations} Argon2 passes (1 to {MAX_ITERATIONS})"
        )
    if not 8 * cost.lanes <= cost.memory_kib <= MAX_MEMORY_KIB:
        raise KeyFileError(
            f"key file asks for {cost.memory_kib} KiB of Argon2 memory "
            f"({8 * cost.lanes} to {MAX_MEMORY_KIB})"
        )
    return cost


def unlock_keys(data: bytes, passphrase: str) -> OperatorKeys:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise KeyFileError("not an operator key file (not JSON)") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError("not an operator key file")
    if doc.get("version") not in VERSIONS:
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
    _bounded(cost)
    salt = _unb64(kdf.get("salt"), "kdf.salt")
    nonce = _unb64(doc.get("nonce"), "nonce")
    ciphertext = _unb64(doc.get("ciphertext"), "ciphertext")
    try:
        wrapping = passphrase_key(passphrase, salt, cost)
    except (ValueError, MemoryError):
        raise KeyFileError("key file's key derivation parameters cannot be used") from None
    try:
        raw = aead_decrypt(wrapping, nonce, ciphertext, _associated_data(doc))
    except CryptoError:
        raise KeyFileError("wrong passphrase, or the key file was altered") from None
    signing = None
    if doc["version"] >= 2:
        raw, signing = raw[:-SIGNING_RAW], SigningKey(raw[-SIGNING_RAW:])
        if signing.verify_key().to_text() != doc.get("verify_key"):
            raise KeyFileError("key file is damaged: its signing key does not match")
    key = PrivateKey(kem, raw)
    if key.public_key().to_text() != doc.get("public_key"):
        raise KeyFileError("key file is damaged: its public key does not match")
    return OperatorKeys(private=key, signing=signing)


def public_key_of(data: bytes) -> PublicKey:
    """The public key recorded in a key file, without the passphrase."""
    try:
        doc = json.loads(data)
        return PublicKey.from_text(doc["public_key"])
    except (ValueError, KeyError, TypeError, CryptoError) as exc:
        raise KeyFileError("not an operator key file") from exc


def verify_key_of(data: bytes) -> VerifyKey | None:
    """The signing public key recorded in a key file (None in a version-1 file)."""
    try:
        doc = json.loads(data)
        text = doc.get("verify_key")
        return None if text is None else VerifyKey.from_text(text)
    except (ValueError, AttributeError, TypeError, CryptoError) as exc:
        raise KeyFileError("not an operator key file") from exc


def replace(path: Path, data: bytes) -> None:
    """Write ``data`` over an existing key file at once (a new file renamed over it,
    mode 0600): an interruption leaves the old file or the new one, never half."""
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    write(temporary, data)
    os.replace(temporary, path)


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


def with_signing_key(data: bytes, passphrase: str) -> tuple[bytes, OperatorKeys]:
    """A version-1 key file made anew with a signing key beside its key (the same
    passphrase and Argon2 cost); a file that has one already is returned as it is."""
    keys = unlock_keys(data, passphrase)
    if keys.signing is not None:
        return data, keys
    kdf = json.loads(data)["kdf"]
    cost = PassphraseCost(
        memory_kib=int(kdf["memory_kib"]),
        iterations=int(kdf["iterations"]),
        lanes=int(kdf["lanes"]),
    )
    signing = SigningKey.generate()
    return lock(keys.private, passphrase, cost, signing=signing), OperatorKeys(
        keys.private, signing
    )
