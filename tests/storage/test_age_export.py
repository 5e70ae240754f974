"""Exports in the age format: the real `age` tool opens them with the operator's
identity, and nothing else does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from storage.age_export import age_identity, age_recipient, decrypt_with, encrypt_for
from storage.crypto import CryptoError, KemName, PrivateKey

LINES = '{"text": "엄마, 우리 잡혔어요"}\n{"text": "the tea is warm"}\n'.encode()


@pytest.mark.parametrize("kem", list(KemName))
def test_an_export_opens_with_its_own_key_only(kem: KemName) -> None:
    key = PrivateKey.generate(kem)
    sealed = encrypt_for(key, LINES)
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert b"tea is warm" not in sealed
    assert decrypt_with(key, sealed) == LINES
    with pytest.raises(CryptoError):
        decrypt_with(PrivateKey.generate(kem), sealed)
    tampered = bytearray(sealed)
    tampered[-5] ^= 1
    with pytest.raises(CryptoError):
        decrypt_with(key, bytes(tampered))
    assert age_identity(key).startswith("AGE-SECRET-KEY-1")
    assert age_recipient(key).startswith("age1")


def test_the_age_tool_opens_an_export_with_the_operators_identity(tmp_path: Path) -> None:
    tool = shutil.which("age")
    if tool is None:
        pytest.skip("the `age` tool is not installed (.ci/run installs Debian's package age)")
    key = PrivateKey.generate(KemName.MLKEM768_X25519)
    (tmp_path / "export.age").write_bytes(encrypt_for(key, LINES))
    (tmp_path / "identity.txt").write_text(age_identity(key) + "\n")
    opened = subprocess.run(
        [tool, "-d", "-i", str(tmp_path / "identity.txt"), str(tmp_path / "export.age")],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert opened.stdout == LINES
