"""The primitives: round trips, and every way a ciphertext must fail to open."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.crypto import (
    Binding,
    CryptoError,
    KemName,
    PrivateKey,
    PublicKey,
    ServerKeys,
    new_data_key,
    open_content,
    pad,
    seal_content,
    unpad,
    unwrap_key,
    wrap_key,
)

KEMS = [KemName.MLKEM768_X25519, KemName.X25519]


def binding(column: str = "body_sealed") -> Binding:
    return Binding("messages", column, uuid.uuid4())


def flipped(blob: bytes, bit: int) -> bytes:
    data = bytearray(blob)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


@given(st.binary(max_size=5000))
def test_padding_round_trips(data: bytes) -> None:
    assert unpad(pad(data)) == data


def test_padding_hides_small_length_differences() -> None:
    assert len(pad(b"ok")) == len(pad(b"we reached Kunming, all fine")) == 64
    assert len(pad(b"x" * 100)) == 128
    assert len(pad(b"x" * 3_000_000)) == 3 * (1 << 20)


@settings(max_examples=50)
@given(st.binary(max_size=2000))
def test_content_round_trips(plaintext: bytes) -> None:
    key, where = new_data_key(), binding()
    assert open_content(key, seal_content(key, plaintext, where), where) == plaintext


def test_every_flipped_bit_of_sealed_content_fails_to_open() -> None:
    key, where = new_data_key(), binding()
    blob = seal_content(key, "우리는 쿤밍에 도착했다".encode(), where)
    for bit in range(len(blob) * 8):
        with pytest.raises(CryptoError):
            open_content(key, flipped(blob, bit), where)


def test_sealed_content_moved_to_another_row_column_or_table_fails() -> None:
    key, where = new_data_key(), binding()
    blob = seal_content(key, b"canary", where)
    for elsewhere in (
        Binding(where.table, where.column, uuid.uuid4()),
        Binding(where.table, "caption_sealed", where.row_id),
        Binding("members", where.column, where.row_id),
    ):
        with pytest.raises(CryptoError):
            open_content(key, blob, elsewhere)


def test_sealed_content_does_not_open_with_another_key() -> None:
    where = binding()
    blob = seal_content(new_data_key(), b"canary", where)
    with pytest.raises(CryptoError):
        open_content(new_data_key(), blob, where)


def test_same_plaintext_seals_differently_each_time() -> None:
    key, where = new_data_key(), binding()
    assert seal_content(key, b"same", where) != seal_content(key, b"same", where)


def test_ciphertexts_carry_a_versioned_header() -> None:
    blob = seal_content(new_data_key(), b"x", binding())
    assert blob[:4] == b"CKI\x01"
    future = blob[:3] + b"\x02" + blob[4:]
    with pytest.raises(CryptoError, match="version"):
        open_content(new_data_key(), future, binding())


@pytest.mark.parametrize("kem", KEMS)
def test_wrapped_key_opens_only_with_its_private_key_and_row(kem: KemName) -> None:
    recipient, stranger = PrivateKey.generate(kem), PrivateKey.generate(kem)
    secret, where = new_data_key(), binding("data_key")
    blob = wrap_key(secret, recipient.public_key(), where)
    assert unwrap_key(blob, recipient, where) == secret
    with pytest.raises(CryptoError):
        unwrap_key(blob, stranger, where)
    with pytest.raises(CryptoError):
        unwrap_key(blob, recipient, Binding(where.table, where.column, uuid.uuid4()))


@pytest.mark.parametrize("kem", KEMS)
def test_every_flipped_bit_of_a_wrapped_key_fails_to_open(kem: KemName) -> None:
    recipient, where = PrivateKey.generate(kem), binding("data_key")
    blob = wrap_key(new_data_key(), recipient.public_key(), where)
    # Every bit of the header and the encapsulated key, and a stride through the rest.
    bits = list(range(0, 64 * 8)) + list(range(64 * 8, len(blob) * 8, 13))
    for bit in bits:
        with pytest.raises(CryptoError):
            unwrap_key(flipped(blob, bit), recipient, where)


def test_a_key_wrapped_for_one_kem_is_refused_by_the_other() -> None:
    hybrid, classic = (
        PrivateKey.generate(KemName.MLKEM768_X25519),
        PrivateKey.generate(KemName.X25519),
    )
    where = binding("data_key")
    with pytest.raises(CryptoError):
        unwrap_key(wrap_key(new_data_key(), hybrid.public_key(), where), classic, where)


@pytest.mark.parametrize("kem", KEMS)
def test_public_key_text_round_trips_and_has_a_stable_fingerprint(kem: KemName) -> None:
    public = PrivateKey.generate(kem).public_key()
    text = public.to_text()
    assert "\n" not in text
    assert text.startswith("ckpk1:")
    again = PublicKey.from_text(text)
    assert again == public
    assert again.fingerprint() == public.fingerprint()


@pytest.mark.parametrize("text", ["", "ckpk1:", "ckpk1:AAAA", "ssh-ed25519 AAAA", "ckpk1:!!!"])
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(CryptoError):
        PublicKey.from_text(text)


def test_private_key_repr_hides_the_key() -> None:
    key = PrivateKey.generate(KemName.X25519)
    assert key.raw().hex() not in repr(key)


def test_server_seal_round_trips_and_is_bound_to_its_row() -> None:
    server, where = ServerKeys(ServerKeys.generate_secret()), binding("chat_sealed")
    blob = server.seal(b"123456789", where)
    assert server.open(blob, where) == b"123456789"
    with pytest.raises(CryptoError):
        server.open(blob, Binding(where.table, where.column, uuid.uuid4()))
    with pytest.raises(CryptoError):
        ServerKeys(ServerKeys.generate_secret()).open(blob, where)


def test_server_keys_cannot_open_content_sealed_to_operators() -> None:
    """The running server's only secret opens none of what is sealed to operators."""
    server_secret = ServerKeys.generate_secret()
    operator = PrivateKey.generate(KemName.MLKEM768_X25519)
    where = binding("data_key")
    wrapped = wrap_key(new_data_key(), operator.public_key(), where)
    # Neither the server secret itself, nor a key pair derived from it, opens the wrap.
    for guess in (server_secret, server_secret[:32]):
        with pytest.raises(CryptoError):
            unwrap_key(wrapped, PrivateKey(KemName.X25519, guess), where)
    with pytest.raises(CryptoError):
        ServerKeys(server_secret).open(wrapped, where)


def test_blind_index_is_keyed_stable_and_separated_by_kind() -> None:
    a = ServerKeys(ServerKeys.generate_secret())
    b = ServerKeys(ServerKeys.generate_secret())
    assert a.blind_index("phone", "+8613800138000") == a.blind_index("phone", "+8613800138000")
    assert a.blind_index("phone", "+8613800138000") != b.blind_index("phone", "+8613800138000")
    assert a.blind_index("phone", "123") != a.blind_index("telegram_id", "123")
    assert b"8613800138000" not in a.blind_index("phone", "+8613800138000")


def test_server_secret_must_be_32_bytes() -> None:
    with pytest.raises(CryptoError):
        ServerKeys(b"short")
