"""What the bot trusts in the database, and why: operators' signatures.

Someone who can write the database (a PostgreSQL server on another host, a
tampered backup restored, a server seized while off and handed back) could
otherwise swap a group's public key, insert an operator, or turn a duress
phrase into a check-in. So the rows the bot acts on carry an operator's
signature, and the operators' signing keys are pinned in a file outside the
database (``operator_signers``, beside the server secret, mode 0600):

* ``operators``: each operator signs their own encryption key with the signing
  key pinned for them; an inserted operator has no pinned key.
* ``groups``: the group's public key, signed by any pinned operator.
* ``codebook_entries``: the entry's group, meaning, leg and sealed phrase,
  signed by any pinned operator.

A row that does not verify is not used: nothing is sealed or wrapped to its key,
no phrase of it is acted on; it is remembered here so that the bot tells the
admins once. Without the file (an installation older than signing), nothing is
enforced until an operator runs ``intake operator sign --key FILE``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.crypto import (
    CryptoError,
    KemName,
    PrivateKey,
    PublicKey,
    ServerKeys,
    SigningKey,
    VerifyKey,
    sha256,
)
from storage.models import CodebookEntry, Group, Operator
from storage.session import AsyncSession
from storage.signers import SIGNERS_FILE as SIGNERS_FILE
from storage.signers import PinnedSigner as PinnedSigner
from storage.signers import Signers as Signers
from storage.signers import SignersFileError as SignersFileError
from storage.signers import signers_path as signers_path

# --------------------------------------------------------------------------- what is signed


def _message(kind: str, fields: Iterable[object]) -> bytes:
    return json.dumps([f"checkin-intake/{kind}/v1", *fields], separators=(",", ":")).encode()


def _operator_key_message(public_key: PublicKey) -> bytes:
    # No row id: the operator signs their key when they make it (`intake keygen`),
    # before any database has a row for it.
    raw = public_key.raw.hex()
    return _message("operator", [public_key.kem.value, raw, public_key.fingerprint()])


def operator_message(op: Operator) -> bytes:
    return _operator_key_message(PublicKey(KemName(op.kem), op.public_key))


@dataclass(frozen=True, slots=True)
class OperatorIdentity:
    """An operator's public key, their signing key, and their signature binding the
    two: the one line `intake keygen` prints and `intake operator add` takes."""

    public_key: PublicKey
    verify_key: VerifyKey
    signature: bytes

    @classmethod
    def make(cls, private: PrivateKey, signing: SigningKey) -> OperatorIdentity:
        public = private.public_key()
        return cls(public, signing.verify_key(), signing.sign(_operator_key_message(public)))

    def valid(self) -> bool:
        return self.verify_key.verify(self.signature, _operator_key_message(self.public_key))

    def to_text(self) -> str:
        body = json.dumps(
            [self.public_key.to_text(), self.verify_key.to_text(), self.signature.hex()],
            separators=(",", ":"),
        ).encode()
        return "ckop1:" + base64.urlsafe_b64encode(body).rstrip(b"=").decode()

    @classmethod
    def from_text(cls, text: str) -> OperatorIdentity:
        body = text.strip().removeprefix("ckop1:")
        try:
            public, verify, signature = json.loads(
                base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            )
            identity = cls(
                PublicKey.from_text(public), VerifyKey.from_text(verify), bytes.fromhex(signature)
            )
        except (ValueError, TypeError) as exc:
            raise CryptoError("not an operator identity (ckop1:...)") from exc
        if not identity.valid():
            raise CryptoError("the operator identity's signature does not verify")
        return identity


def group_message(group: Group) -> bytes:
    return _message("group", [group.id.hex, group.codename, group.kem, group.public_key.hex()])


def entry_message(entry: CodebookEntry) -> bytes:
    return _message(
        "codebook",
        [
            entry.id.hex,
            entry.group_id.hex if entry.group_id else None,
            str(entry.means),
            entry.leg_id.hex if entry.leg_id else None,
            sha256(entry.phrase_sealed).hex(),
        ],
    )


Signed = Operator | Group | CodebookEntry


def _message_of(row: Signed) -> bytes:
    if isinstance(row, Operator):
        return operator_message(row)
    if isinstance(row, Group):
        return group_message(row)
    return entry_message(row)


def sign(row: Signed, signing: SigningKey) -> None:
    """Set the row's signature (the caller adds the row to its session)."""
    row.signature = signing.sign(_message_of(row))
    row.signed_by = signing.verify_key().fingerprint()


# --------------------------------------------------------------------------- checking


UNSIGNED = "unsigned"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that is not used: which table and row, and why (no content). ``name``
    says whose it is where that is no content either: an operator's key fingerprint,
    a group's codename, a codebook entry's group codename ("" organisation-wide)."""

    table: str
    row_id: uuid.UUID
    reason: str
    name: str = ""

    @property
    def unsigned(self) -> bool:
        """Never signed (`intake operator sign` signs it), rather than a signature
        that fails (the row changed after signing, or a key not pinned signed it)."""
        return self.reason == UNSIGNED

    def text(self) -> str:
        return f"{self.table} row {self.row_id.hex[:12]}: {self.reason}"


_VERIFIED_KEPT = 100_000
_LOOK_EVERY = 1.0  # seconds between looks at the signers file's modification time


def _stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size)


class Trust:
    """Checks rows against the pinned signers and remembers the ones that fail."""

    def __init__(self, signers: Signers | None, path: Path | None = None) -> None:
        self.signers = signers
        # The file the signers came from: read again when it changes, so that an
        # operator added (or removed) while the bot runs counts at once.
        self._path = path
        self._stamp = _stamp(path)
        self._looked = time.monotonic()
        # Rows already verified, by a digest of (signer, signed message, signature): a
        # hybrid verification costs about 1.5 ms, and the bot checks the same group and
        # operators for every message. A changed row has another digest and is checked.
        self._verified: set[bytes] = set()
        self._rejected: dict[tuple[str, uuid.UUID], Rejected] = {}
        self._told: set[tuple[str, uuid.UUID]] = set()
        self._listener: Callable[[], None] | None = None

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Have ``listener`` called whenever a row is rejected for the first time (None:
        no longer). The bot tells its admins then (bot.integrity.jobs) rather than
        looking for news every few seconds, which kept an idle bot waking for nothing."""
        self._listener = listener

    @property
    def enforced(self) -> bool:
        return self.signers is not None

    def _reload_if_changed(self) -> None:
        if self._path is None or time.monotonic() - self._looked < _LOOK_EVERY:
            return
        self._looked = time.monotonic()
        stamp = _stamp(self._path)
        if stamp != self._stamp:
            try:
                self.signers = Signers.load(self._path) or self.signers
            except SignersFileError:
                return  # half-written or damaged: keep what was pinned
            self._stamp = stamp

    def problem(self, row: Signed) -> str | None:
        """Why ``row`` cannot be trusted, or None if its signature verifies."""
        self._reload_if_changed()
        if self.signers is None:
            return None
        if row.signature is None or row.signed_by is None:
            return UNSIGNED
        signer = self.signers.active().get(row.signed_by)
        if signer is None:
            return "signed by a key that is not pinned (or was removed)"
        if isinstance(row, Operator) and signer.operator != row.fingerprint:
            return "not signed by the operator's own pinned key"
        message = _message_of(row)
        seen = sha256(row.signed_by.encode() + b"\x00" + message + b"\x00" + row.signature)
        if seen in self._verified:
            return None
        if not signer.verify_key.verify(row.signature, message):
            return "bad signature"
        if len(self._verified) >= _VERIFIED_KEPT:
            self._verified.clear()
        self._verified.add(seen)
        return None

    def check(self, row: Signed) -> bool:
        """True if ``row`` may be used; a failing row is remembered for the admins."""
        reason = self.problem(row)
        if reason is None:
            return True
        table = str(type(row).__tablename__)
        if (table, row.id) not in self._rejected:
            self._rejected[(table, row.id)] = Rejected(table, row.id, reason)
            if self._listener is not None:
                self._listener()
        return False

    def untold(self) -> list[Rejected]:
        """Rejected rows not yet reported; each is returned once."""
        fresh = [r for key, r in self._rejected.items() if key not in self._told]
        self._told.update((r.table, r.row_id) for r in fresh)
        return fresh


UNENFORCED = Trust(None)


# --------------------------------------------------------------------------- per database


@dataclass(frozen=True, slots=True)
class Installation:
    """What an open database's installation holds outside the database: the server
    keys (for the audit chain's key) and the pinned signers."""

    server: ServerKeys
    trust: Trust


_BOUND: weakref.WeakKeyDictionary[sa.Engine, Installation] = weakref.WeakKeyDictionary()


def bind(engine: AsyncEngine, *, server: ServerKeys, trust: Trust) -> Installation:
    """Attach the installation to an engine, so that every session on it keys the
    audit chain and checks signatures (the bot and the CLI do it at opening)."""
    installation = Installation(server=server, trust=trust)
    _BOUND[engine.sync_engine] = installation
    return installation


def bind_installation(engine: AsyncEngine, *, secret: bytes, config_dir: Path) -> Installation:
    """``bind`` with the server secret and the signers file beside the config."""
    path = signers_path(config_dir)
    return bind(engine, server=ServerKeys(secret), trust=Trust(Signers.load(path), path))


def bound(engine: AsyncEngine) -> Installation | None:
    return _BOUND.get(engine.sync_engine)


def installation_of(session: AsyncSession) -> Installation | None:
    bind_ = session.get_bind()
    engine = bind_.engine if isinstance(bind_, sa.Connection) else bind_
    return _BOUND.get(engine)


def trust_of(session: AsyncSession) -> Trust:
    found = installation_of(session)
    return UNENFORCED if found is None else found.trust


def trusted_operators(session: AsyncSession, operators: Iterable[Operator]) -> list[Operator]:
    trust = trust_of(session)
    return [op for op in operators if trust.check(op)]


def trusted_group(session: AsyncSession, group: Group) -> bool:
    return trust_of(session).check(group)


# --------------------------------------------------------------------------- whole tables


async def _signed_rows(session: AsyncSession) -> list[Signed]:
    operators = (await session.exec(select(Operator).where(Operator.removed_at.is_(None)))).all()
    groups = (await session.exec(select(Group).where(Group.shredded_at.is_(None)))).all()
    entries = (await session.exec(select(CodebookEntry))).all()
    return [*operators, *groups, *entries]


def _name(row: Signed, codenames: dict[uuid.UUID, str]) -> str:
    if isinstance(row, Operator):
        return row.fingerprint
    if isinstance(row, Group):
        return row.codename
    return "" if row.group_id is None else codenames.get(row.group_id, row.group_id.hex[:12])


async def unverified(session: AsyncSession, trust: Trust) -> list[Rejected]:
    """Every row the bot would refuse (for `intake audit verify` and `intake doctor`):
    unsigned, signed by a key not pinned, or with a signature that does not verify;
    each named by its fingerprint or codename (never a phrase)."""
    found = []
    codenames: dict[uuid.UUID, str] | None = None
    for row in await _signed_rows(session):
        reason = trust.problem(row)
        if reason is None:
            continue
        if codenames is None:
            # Shredded groups too: their codebook entries may outlive them.
            codenames = dict((await session.exec(select(Group.id, Group.codename))).all())
        found.append(Rejected(str(type(row).__tablename__), row.id, reason, _name(row, codenames)))
    return found


@dataclass(frozen=True, slots=True)
class SignedNow:
    operators: int
    groups: tuple[str, ...]
    entries: int
    refused: tuple[Rejected, ...]


async def sign_unsigned(
    session: AsyncSession, *, signing: SigningKey, operator: Operator, trust: Trust
) -> SignedNow:
    """The migration of an installation older than signatures: sign the operator's own
    row, and every live group key and codebook entry that carries no signature yet.
    A row whose signature is there and fails is never signed over: it is returned."""
    counts = {"operators": 0, "entries": 0}
    groups: list[str] = []
    refused = []
    for row in await _signed_rows(session):
        own = isinstance(row, Operator) and row.id == operator.id
        if isinstance(row, Operator) and not own:
            continue  # each operator signs their own key
        if row.signature is not None and not own:
            reason = trust.problem(row)
            if reason is not None:
                refused.append(Rejected(str(type(row).__tablename__), row.id, reason))
            continue
        sign(row, signing)
        session.add(row)
        if isinstance(row, Group):
            groups.append(row.codename)
        else:
            counts["operators" if own else "entries"] += 1
    await session.flush()
    return SignedNow(counts["operators"], tuple(sorted(groups)), counts["entries"], tuple(refused))


async def take_over_signatures(
    session: AsyncSession, *, leaver: VerifyKey, signing: SigningKey
) -> int:
    """Sign again, with ``signing``, every group key and codebook entry that ``leaver``
    signed validly: once the leaver's key is retired, their signatures count no more."""
    count = 0
    for row in await _signed_rows(session):
        if isinstance(row, Operator) or row.signed_by != leaver.fingerprint():
            continue
        if row.signature is not None and leaver.verify(row.signature, _message_of(row)):
            sign(row, signing)
            session.add(row)
            count += 1
    await session.flush()
    return count
