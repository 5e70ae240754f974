"""Exports in the age format (age-encryption.org/v1), which the `age` tool opens.

The recipient is the X25519 half of the operator's key: an export is protected
by X25519 alone, not by the post-quantum half (age has no such recipient type
that every `age` tool opens). The format and its cryptography are pyrage's
(bindings to rage, a reference implementation of age), not this project's.
"""

from __future__ import annotations

import bech32
import pyrage
from cryptography.hazmat.primitives.asymmetric import x25519

from storage.crypto import CryptoError, PrivateKey


def _encode(hrp: str, data: bytes) -> str:
    words = bech32.convertbits(data, 8, 5)
    if words is None:
        raise CryptoError("could not encode the key for age")
    return bech32.bech32_encode(hrp, words)


def age_identity(key: PrivateKey) -> str:
    """The operator's age identity (AGE-SECRET-KEY-1…), for `age -d -i FILE`."""
    return _encode("age-secret-key-", key.x25519_scalar()).upper()


def age_recipient(key: PrivateKey) -> str:
    """The matching recipient (age1…)."""
    scalar = x25519.X25519PrivateKey.from_private_bytes(key.x25519_scalar())
    return _encode("age", scalar.public_key().public_bytes_raw())


def encrypt_for(key: PrivateKey, plaintext: bytes) -> bytes:
    """An age file that the holder of ``key``'s age identity opens."""
    recipient = pyrage.x25519.Recipient.from_str(age_recipient(key))
    return bytes(pyrage.encrypt(plaintext, [recipient]))


def decrypt_with(key: PrivateKey, blob: bytes) -> bytes:
    identity = pyrage.x25519.Identity.from_str(age_identity(key))
    try:
        return bytes(pyrage.decrypt(blob, [identity]))
    except pyrage.DecryptError as exc:
        raise CryptoError("this age file does not open with this key") from exc
