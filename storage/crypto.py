"""Every cryptographic operation of checkin-intake, and nothing else.

Three kinds of ciphertext leave this module, each with a versioned header:

* ``CONTENT``: a field sealed with a random per-record *data key*
  (ChaCha20-Poly1305, random 96-bit nonce). Opening needs the data key.
* ``WRAP``: a key (a data key, or a group's private key) sealed with HPKE to a
  public key (a group's or an operator's). Opening needs that private key,
  which only operators' machines ever hold.
* ``SERVER``: a value the running server must read back itself (an activist's
  chat id, a codebook phrase), sealed with a key derived from the server secret.

Every ciphertext is bound to the row and column it is stored in (``Binding``):
the binding goes into the AEAD's associated data or HPKE's ``info``, so a
ciphertext copied into another row, table or column fails to open.
Plaintexts are padded to size buckets before sealing so that lengths leak
little.
"""

from __future__ import annotations

import base64
import enum
import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac, hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Bumped when a table's sealed layout changes; bound into every ciphertext so an
# old ciphertext is never silently read under a new meaning.
SCHEMA_VERSION = 1

MAGIC = b"CKI"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12


class CryptoError(Exception):
    """A ciphertext or key that does not open: tampered, moved, or the wrong key."""


class Kind(enum.IntEnum):
    CONTENT = 1
    WRAP = 2
    SERVER = 3


class KemName(enum.StrEnum):
    MLKEM768_X25519 = "MLKEM768_X25519"
    X25519 = "X25519"


_KEM_IDS = {KemName.MLKEM768_X25519: 1, KemName.X25519: 2}
_KEM_BY_ID = {v: k for k, v in _KEM_IDS.items()}
_HPKE_KEM = {
    KemName.MLKEM768_X25519: hpke.KEM.MLKEM768_X25519,
    KemName.X25519: hpke.KEM.X25519,
}

# The serialised sizes of a raw private key: ML-KEM-768 keeps a 64-byte seed,
# X25519 a 32-byte scalar.
_MLKEM_SEED = 64
_X25519_RAW = 32
_MLKEM768_PUBLIC = 1184


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a ciphertext lives. Part of what it authenticates."""

    table: str
    column: str
    row_id: uuid.UUID

    def encode(self) -> bytes:
        return (
            f"checkin-intake|{self.table}|{self.column}|{self.row_id.hex}|s{SCHEMA_VERSION}"
        ).encode()


# --------------------------------------------------------------------------- padding


def _bucket(size: int) -> int:
    # Powers of two from 64 bytes to 1 MiB, then whole MiB: a short check-in, a
    # long message and a photo stay distinguishable, two texts of similar length
    # do not.
    bucket = 64
    while bucket < size and bucket < 1 << 20:
        bucket <<= 1
    if size <= bucket:
        return bucket
    return -(-size // (1 << 20)) * (1 << 20)


def pad(data: bytes) -> bytes:
    """ISO/IEC 7816-4 padding (0x80 then zeros) to the next size bucket."""
    target = _bucket(len(data) + 1)
    return data + b"\x80" + bytes(target - len(data) - 1)


def unpad(data: bytes) -> bytes:
    end = len(data.rstrip(b"\x00"))
    if end == 0 or data[end - 1] != 0x80:
        raise CryptoError("bad padding")
    return data[: end - 1]


# --------------------------------------------------------------------------- headers


def _header(kind: Kind, extra: int = 0) -> bytes:
    return MAGIC + bytes([FORMAT_VERSION, kind, extra])


_HEADER_LEN = len(MAGIC) + 3


def _split_header(blob: bytes, kind: Kind) -> tuple[bytes, int, bytes]:
    if len(blob) < _HEADER_LEN or blob[: len(MAGIC)] != MAGIC:
        raise CryptoError("not a checkin-intake ciphertext")
    version, got_kind, extra = blob[len(MAGIC) : _HEADER_LEN]
    if version != FORMAT_VERSION:
        raise CryptoError(f"unsupported ciphertext version {version}")
    if got_kind != kind:
        raise CryptoError("ciphertext of the wrong kind")
    return blob[:_HEADER_LEN], extra, blob[_HEADER_LEN:]


# --------------------------------------------------------------------------- content


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _aead_seal(key: bytes, kind: Kind, plaintext: bytes, binding: Binding) -> bytes:
    header = _header(kind)
    nonce = os.urandom(NONCE_BYTES)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, pad(plaintext), header + binding.encode())
    return header + nonce + sealed


def _aead_open(key: bytes, kind: Kind, blob: bytes, binding: Binding) -> bytes:
    header, _, rest = _split_header(blob, kind)
    nonce, sealed = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
    try:
        padded = ChaCha20Poly1305(key).decrypt(nonce, sealed, header + binding.encode())
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("ciphertext does not open here (tampered, moved or wrong key)") from exc
    return unpad(padded)


def seal_content(data_key: bytes, plaintext: bytes, binding: Binding) -> bytes:
    return _aead_seal(data_key, Kind.CONTENT, plaintext, binding)


def open_content(data_key: bytes, blob: bytes, binding: Binding) -> bytes:
    return _aead_open(data_key, Kind.CONTENT, blob, binding)


# --------------------------------------------------------------------------- key pairs


def _unprefixed(text: str, prefix: str, what: str) -> bytes:
    """The bytes of a key's text form: ``prefix`` then unpadded base64url."""
    text = text.strip()
    if not text.startswith(prefix):
        raise CryptoError(f'not {what} (it starts with "{prefix}")')
    body = text.removeprefix(prefix)
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as exc:
        raise CryptoError(f"{what} is not valid base64") from exc


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An HPKE recipient: a group's or an operator's public key."""

    kem: KemName
    raw: bytes

    def to_text(self) -> str:
        body = base64.urlsafe_b64encode(bytes([_KEM_IDS[self.kem]]) + self.raw)
        return "ckpk1:" + body.rstrip(b"=").decode()

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        data = _unprefixed(text, "ckpk1:", "an operator public key")
        if not data or data[0] not in _KEM_BY_ID:
            raise CryptoError("public key names an unknown KEM")
        key = cls(kem=_KEM_BY_ID[data[0]], raw=data[1:])
        key.hpke_key()  # validates length and encoding
        return key

    def fingerprint(self) -> str:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(self.kem.value.encode() + b"|" + self.raw)
        hexed = digest.finalize()[:16].hex()
        return ":".join(hexed[i : i + 4] for i in range(0, len(hexed), 4))

    def hpke_key(self) -> hpke.MLKEM768X25519PublicKey | x25519.X25519PublicKey:
        try:
            if self.kem is KemName.X25519:
                return x25519.X25519PublicKey.from_public_bytes(self.raw)
            if len(self.raw) != _MLKEM768_PUBLIC + _X25519_RAW:
                raise CryptoError("public key has the wrong length")
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:_MLKEM768_PUBLIC]),
                x25519.X25519PublicKey.from_public_bytes(self.raw[_MLKEM768_PUBLIC:]),
            )
        except ValueError as exc:
            raise CryptoError("public key is malformed") from exc


class PrivateKey:
    """A group's or an operator's private key. Never held by the running bot."""

    # What the raw bytes give is computed once: rebuilding the HPKE key and the public
    # key on every unwrap cost the inbox ten times the opens themselves.
    __slots__ = ("_fingerprint", "_hpke", "_public", "_raw", "kem")

    def __init__(self, kem: KemName, raw: bytes) -> None:
        self.kem = kem
        self._raw = raw
        self._hpke = self._build_hpke_key()  # validates
        self._public: PublicKey | None = None
        self._fingerprint: str | None = None

    @classmethod
    def generate(cls, kem: KemName) -> PrivateKey:
        if kem is KemName.X25519:
            return cls(kem, os.urandom(_X25519_RAW))
        return cls(kem, os.urandom(_MLKEM_SEED + _X25519_RAW))

    def raw(self) -> bytes:
        return self._raw

    def _hpke_key(self) -> hpke.MLKEM768X25519PrivateKey | x25519.X25519PrivateKey:
        return self._hpke

    def _build_hpke_key(self) -> hpke.MLKEM768X25519PrivateKey | x25519.X25519PrivateKey:
        try:
            if self.kem is KemName.X25519:
                return x25519.X25519PrivateKey.from_private_bytes(self._raw)
            if len(self._raw) != _MLKEM_SEED + _X25519_RAW:
                raise CryptoError("private key has the wrong length")
            return hpke.MLKEM768X25519PrivateKey(
                mlkem.MLKEM768PrivateKey.from_seed_bytes(self._raw[:_MLKEM_SEED]),
                x25519.X25519PrivateKey.from_private_bytes(self._raw[_MLKEM_SEED:]),
            )
        except ValueError as exc:
            raise CryptoError("private key is malformed") from exc

    def public_key(self) -> PublicKey:
        if self._public is None:
            self._public = self._build_public_key()
        return self._public

    def fingerprint(self) -> str:
        """The public key's fingerprint (computed once: every unwrap binds it)."""
        if self._fingerprint is None:
            self._fingerprint = self.public_key().fingerprint()
        return self._fingerprint

    def _build_public_key(self) -> PublicKey:
        key = self._hpke
        if isinstance(key, x25519.X25519PrivateKey):
            return PublicKey(self.kem, key.public_key().public_bytes_raw())
        seed, scalar = self._raw[:_MLKEM_SEED], self._raw[_MLKEM_SEED:]
        mlkem_pub = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed).public_key()
        x_pub = x25519.X25519PrivateKey.from_private_bytes(scalar).public_key()
        return PublicKey(self.kem, mlkem_pub.public_bytes_raw() + x_pub.public_bytes_raw())

    def x25519_scalar(self) -> bytes:
        """The X25519 private scalar (alone, or the classical half of the hybrid):
        what an age identity holds, for exports the `age` tool opens."""
        return self._raw if self.kem is KemName.X25519 else self._raw[_MLKEM_SEED:]

    def __repr__(self) -> str:
        return f"PrivateKey({self.kem.value}, <hidden>)"


def _suite(kem: KemName) -> hpke.Suite:
    return hpke.Suite(_HPKE_KEM[kem], hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def wrap_key(secret: bytes, recipient: PublicKey, binding: Binding) -> bytes:
    """Seal a key to a recipient's public key with HPKE, bound to its row."""
    header = _header(Kind.WRAP, _KEM_IDS[recipient.kem])
    info = header + binding.encode() + b"|" + recipient.fingerprint().encode()
    return header + _suite(recipient.kem).encrypt(secret, recipient.hpke_key(), info=info)


def unwrap_key(blob: bytes, recipient: PrivateKey, binding: Binding) -> bytes:
    header, kem_id, rest = _split_header(blob, Kind.WRAP)
    if _KEM_BY_ID.get(kem_id) is not recipient.kem:
        raise CryptoError("key was wrapped for another kind of key")
    info = header + binding.encode() + b"|" + recipient.fingerprint().encode()
    try:
        return _suite(recipient.kem).decrypt(rest, recipient._hpke_key(), info=info)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError(
            "wrapped key does not open with this key (wrong key, tampered or moved)"
        ) from exc


# --------------------------------------------------------------------------- signatures

# An operator's signing key: Ed25519 and ML-DSA-65 together (both must verify), so a
# signature stands while either scheme does. Raw form: the two 32-byte seeds.
_ED25519_RAW = 32
_MLDSA_SEED = 32
_MLDSA65_PUBLIC = 1952
_ED25519_SIG = 64
SIGNATURE_CONTEXT = b"checkin-intake/signature/v1"


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """An operator's public signing key (Ed25519 + ML-DSA-65)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != _ED25519_RAW + _MLDSA65_PUBLIC:
            raise CryptoError("signing public key has the wrong length")
        try:
            self._keys()
        except ValueError as exc:
            raise CryptoError("signing public key is malformed") from exc

    def _keys(self) -> tuple[ed25519.Ed25519PublicKey, mldsa.MLDSA65PublicKey]:
        return (
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw[:_ED25519_RAW]),
            mldsa.MLDSA65PublicKey.from_public_bytes(self.raw[_ED25519_RAW:]),
        )

    def to_text(self) -> str:
        return "ckvk1:" + base64.urlsafe_b64encode(self.raw).rstrip(b"=").decode()

    @classmethod
    def from_text(cls, text: str) -> VerifyKey:
        return cls(_unprefixed(text, "ckvk1:", "a signing public key"))

    def fingerprint(self) -> str:
        hexed = sha256(b"verify-key|" + self.raw)[:16].hex()
        return ":".join(hexed[i : i + 4] for i in range(0, len(hexed), 4))

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True only if both halves of the hybrid signature verify."""
        ed_key, ml_key = self._keys()
        try:
            ed_key.verify(signature[:_ED25519_SIG], SIGNATURE_CONTEXT + message)
            ml_key.verify(signature[_ED25519_SIG:], message, context=SIGNATURE_CONTEXT)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    """An operator's private signing key. Lives in the operator's key file only."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != _ED25519_RAW + _MLDSA_SEED:
            raise CryptoError("signing key has the wrong length")
        self._raw = raw

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(_ED25519_RAW + _MLDSA_SEED))

    def raw(self) -> bytes:
        return self._raw

    def _keys(self) -> tuple[ed25519.Ed25519PrivateKey, mldsa.MLDSA65PrivateKey]:
        return (
            ed25519.Ed25519PrivateKey.from_private_bytes(self._raw[:_ED25519_RAW]),
            mldsa.MLDSA65PrivateKey.from_seed_bytes(self._raw[_ED25519_RAW:]),
        )

    def verify_key(self) -> VerifyKey:
        ed_key, ml_key = self._keys()
        return VerifyKey(
            ed_key.public_key().public_bytes_raw() + ml_key.public_key().public_bytes_raw()
        )

    def sign(self, message: bytes) -> bytes:
        ed_key, ml_key = self._keys()
        return ed_key.sign(SIGNATURE_CONTEXT + message) + ml_key.sign(
            message, context=SIGNATURE_CONTEXT
        )

    def __repr__(self) -> str:
        return "SigningKey(<hidden>)"


# --------------------------------------------------------------------------- server secret


def _hkdf(secret: bytes, label: str, length: int = KEY_BYTES) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=None,
        info=b"checkin-intake/" + label.encode(),
    ).derive(secret)


@dataclass(frozen=True, slots=True)
class BlindIndexCost:
    """Argon2id parameters of the blind indexes. Fixed per database: changing
    them changes every index, so they are part of the format, not a setting."""

    memory_kib: int = 19_456  # OWASP's minimum recommendation for Argon2id
    iterations: int = 2
    lanes: int = 1


BLIND_INDEX_COST = BlindIndexCost()
BLIND_INDEX_CACHE = 4096


class ServerKeys:
    """Keys the running server derives from its secret file.

    None of them opens message content: content is sealed to operators'
    public keys. They key the blind indexes and seal the few values the server
    must read back itself.
    """

    __slots__ = (
        "_audit_key",
        "_blind_cache",
        "_blind_key",
        "_blind_salt",
        "_digest_key",
        "_seal_key",
    )

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise CryptoError("the server secret must be 32 bytes")
        self._seal_key = _hkdf(secret, "server-seal/v1")
        self._blind_key = _hkdf(secret, "blind-index-key/v1")
        self._blind_salt = _hkdf(secret, "blind-index-salt/v1", 16)
        self._digest_key = _hkdf(secret, "digest/v1")
        self._audit_key = _hkdf(secret, "audit-chain/v1")
        # The running server computes the same few indexes over and over (each
        # relative's id, on every message): it keeps recent ones in memory. A
        # live server sees these identifiers anyway; nothing here reaches disk.
        self._blind_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    @staticmethod
    def generate_secret() -> bytes:
        return os.urandom(KEY_BYTES)

    def seal(self, plaintext: bytes, binding: Binding) -> bytes:
        return _aead_seal(self._seal_key, Kind.SERVER, plaintext, binding)

    def open(self, blob: bytes, binding: Binding) -> bytes:
        return _aead_open(self._seal_key, Kind.SERVER, blob, binding)

    def blind_index(self, kind: str, normalised: str) -> bytes:
        """A keyed, deliberately slow index of an identifier (see docs/security.md).

        ``kind`` separates namespaces, so a phone number and a Telegram id with
        the same digits never share an index.
        """
        cached = self._blind_cache.get((kind, normalised))
        if cached is not None:
            self._blind_cache.move_to_end((kind, normalised))
            return cached
        cost = BLIND_INDEX_COST
        index = Argon2id(
            salt=self._blind_salt,
            length=KEY_BYTES,
            iterations=cost.iterations,
            lanes=cost.lanes,
            memory_cost=cost.memory_kib,
            secret=self._blind_key,
            ad=kind.encode(),
        ).derive(normalised.encode())
        self._blind_cache[(kind, normalised)] = index
        if len(self._blind_cache) > BLIND_INDEX_CACHE:
            self._blind_cache.popitem(last=False)
        return index

    def digest(self, purpose: str, value: str) -> bytes:
        """A fast keyed digest, for values an attacker cannot enumerate cheaply
        without the key (random codes, chat-and-message pairs, normalised texts)."""
        mac = hmac.HMAC(self._digest_key, hashes.SHA256())
        mac.update(purpose.encode() + b"\x00" + value.encode())
        return mac.finalize()

    def audit_mac(self, data: bytes) -> bytes:
        """The keyed hash of an audit entry: someone who can write the database but
        does not hold the server secret cannot recompute the chain."""
        mac = hmac.HMAC(self._audit_key, hashes.SHA256())
        mac.update(data)
        return mac.finalize()

    def code_digest(self, code: str) -> bytes:
        """A digest of a one-time invite code: codes are random, so a fast keyed MAC is enough."""
        return self.digest("invite-code", code)


def digests_equal(a: bytes, b: bytes) -> bool:
    return constant_time.bytes_eq(a, b)


def sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


# --------------------------------------------------------------------------- passphrases


@dataclass(frozen=True, slots=True)
class PassphraseCost:
    memory_kib: int = 262_144  # 256 MiB: an operator's laptop opens it in about a second
    iterations: int = 3
    lanes: int = 4


def passphrase_key(passphrase: str, salt: bytes, cost: PassphraseCost) -> bytes:
    return Argon2id(
        salt=salt,
        length=KEY_BYTES,
        iterations=cost.iterations,
        lanes=cost.lanes,
        memory_cost=cost.memory_kib,
    ).derive(passphrase.encode())


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise CryptoError("does not open") from exc


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
