"""The operator key file: Argon2id from the passphrase, then ChaCha20-Poly1305."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from storage import keyfile
from storage.crypto import KemName, PassphraseCost, PrivateKey

# The format is tested with a cheap cost; the default cost is the format's, not the test's.
CHEAP = PassphraseCost(memory_kib=8192, iterations=1, lanes=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate(KemName.MLKEM768_X25519)


def test_key_file_unlocks_with_its_passphrase(key: PrivateKey) -> None:
    data = keyfile.lock(key, PASSPHRASE, CHEAP)
    assert keyfile.unlock(data, PASSPHRASE).raw() == key.raw()
    assert keyfile.public_key_of(data) == key.public_key()


def test_key_file_holds_no_key_material_in_clear(key: PrivateKey) -> None:
    data = keyfile.lock(key, PASSPHRASE, CHEAP)
    for part in (key.raw(), key.raw()[:32], key.raw()[-32:]):
        assert part not in data
        assert part.hex().encode() not in data


def test_wrong_passphrase_gives_one_clear_line(key: PrivateKey) -> None:
    data = keyfile.lock(key, PASSPHRASE, CHEAP)
    with pytest.raises(keyfile.KeyFileError) as caught:
        keyfile.unlock(data, PASSPHRASE + "!")
    assert str(caught.value) == "wrong passphrase, or the key file was altered"


def test_weakening_the_stored_parameters_breaks_the_file(key: PrivateKey) -> None:
    doc = json.loads(keyfile.lock(key, PASSPHRASE, CHEAP))
    doc["kdf"]["iterations"] = 2
    with pytest.raises(keyfile.KeyFileError):
        keyfile.unlock(json.dumps(doc).encode(), PASSPHRASE)


def test_swapping_the_public_key_breaks_the_file(key: PrivateKey) -> None:
    doc = json.loads(keyfile.lock(key, PASSPHRASE, CHEAP))
    doc["public_key"] = PrivateKey.generate(KemName.MLKEM768_X25519).public_key().to_text()
    with pytest.raises(keyfile.KeyFileError):
        keyfile.unlock(json.dumps(doc).encode(), PASSPHRASE)


@pytest.mark.parametrize("data", [b"", b"not json", b"{}", b'{"format": "other"}', b"[1,2]"])
def test_files_that_are_not_key_files_are_refused(data: bytes) -> None:
    with pytest.raises(keyfile.KeyFileError):
        keyfile.unlock(data, PASSPHRASE)


def test_key_file_is_written_private_and_never_overwritten(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "operator.key"
    keyfile.write(path, keyfile.lock(key, PASSPHRASE, CHEAP))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(keyfile.KeyFileError, match="already exists"):
        keyfile.write(path, b"other")
    assert path.read_bytes() == before


def test_default_cost_is_strong() -> None:
    cost = PassphraseCost()
    assert cost.memory_kib >= 256 * 1024
    assert cost.iterations >= 3


def test_empty_passphrase_is_refused(key: PrivateKey) -> None:
    with pytest.raises(keyfile.KeyFileError):
        keyfile.lock(key, "", CHEAP)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("memory_kib", 64 * 1024 * 1024, "KiB of Argon2 memory"),  # 64 GiB
        ("memory_kib", 0, "KiB of Argon2 memory"),
        ("lanes", 0, "Argon2 lanes"),
        ("lanes", 10_000, "Argon2 lanes"),
        ("iterations", 0, "Argon2 passes"),
        ("iterations", 1_000_000, "Argon2 passes"),
    ],
)
def test_hostile_kdf_parameters_are_refused_in_one_line_before_argon2_runs(
    key: PrivateKey, field: str, value: int, says: str
) -> None:
    doc = json.loads(keyfile.lock(key, PASSPHRASE, CHEAP))
    doc["kdf"][field] = value
    with pytest.raises(keyfile.KeyFileError, match=says) as refused:
        keyfile.unlock(json.dumps(doc).encode(), PASSPHRASE)
    assert "\n" not in str(refused.value)


def test_a_signing_key_is_added_to_an_old_key_file_under_the_same_passphrase(
    key: PrivateKey,
) -> None:
    old = keyfile.lock(key, PASSPHRASE, CHEAP)
    assert keyfile.unlock_keys(old, PASSPHRASE).signing is None
    new, keys = keyfile.with_signing_key(old, PASSPHRASE)
    assert keys.signing is not None
    again = keyfile.unlock_keys(new, PASSPHRASE)
    assert again.private.raw() == key.raw()
    assert again.signing is not None
    assert again.signing.raw() == keys.signing.raw()
    assert keyfile.verify_key_of(new) == keys.signing.verify_key()
    assert json.loads(new)["kdf"]["memory_kib"] == CHEAP.memory_kib
    assert keyfile.with_signing_key(new, PASSPHRASE)[0] == new  # already has one
