"""Operators: the only people whose keys open stored content."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage.crypto import Binding, CryptoError, PublicKey, ServerKeys
from storage.models import Operator
from storage.session import AsyncSession
from storage.trust import OperatorIdentity, installation_of


class OperatorExists(Exception):
    pass


def name_binding(operator_id: uuid.UUID) -> Binding:
    return Binding("operators", "name_sealed", operator_id)


async def add_operator(
    session: AsyncSession,
    *,
    server: ServerKeys,
    public_key: PublicKey,
    name: str,
    now: datetime,
    identity: OperatorIdentity | None = None,
) -> Operator:
    """Register an operator. With their ``identity`` (what `intake keygen` prints: the
    public key with the operator's own signature over it), the row carries that
    signature; the caller pins the signing key in the signers file."""
    existing = (
        await session.exec(select(Operator).where(Operator.public_key == public_key.raw))
    ).first()
    if existing is not None:
        raise OperatorExists(f"operator key {public_key.fingerprint()} is already registered")
    operator_id = uuid.uuid4()
    operator = Operator(
        id=operator_id,
        name_sealed=server.seal(name.encode(), name_binding(operator_id)),
        kem=public_key.kem.value,
        public_key=public_key.raw,
        fingerprint=public_key.fingerprint(),
        created_at=now,
    )
    if identity is not None:
        if identity.public_key != public_key:
            raise OperatorExists("the signed identity is for another key")
        operator.signature = identity.signature
        operator.signed_by = identity.verify_key.fingerprint()
    session.add(operator)
    await session.flush()
    return operator


def operator_name(server: ServerKeys, operator: Operator) -> str:
    return server.open(operator.name_sealed, name_binding(operator.id)).decode()


def name_or_none(server: ServerKeys, operator: Operator) -> str | None:
    """The operator's name for a page that shows it, or None where it does not open
    (another installation's secret, a row written by someone else)."""
    try:
        return operator_name(server, operator)
    except (CryptoError, UnicodeDecodeError):
        return None


def operator_label(name: str | None, fingerprint: str) -> str:
    """How people read an operator's name: the name, else the first two groups of the
    key's fingerprint, labelled ("operator 3f2a:91c0…"), as `intake operator list` shows it."""
    return name if name else f"operator {fingerprint[:9]}…"


@dataclass(frozen=True, slots=True)
class Named:
    id: uuid.UUID
    fingerprint: str
    name: str | None  # None: the server secret is not known here

    @property
    def label(self) -> str:
        return operator_label(self.name, self.fingerprint)


async def operator_names(session: AsyncSession) -> list[Named]:
    """Every operator, with the name opened where this process has the server secret
    (the installation bound to the session's database): one query, for a page that
    names several (audit entries carry the fingerprint's first 16 characters)."""
    installation = installation_of(session)
    rows = (await session.exec(select(Operator).order_by(Operator.created_at))).all()
    return [
        Named(
            id=op.id,
            fingerprint=op.fingerprint,
            name=name_or_none(installation.server, op) if installation else None,
        )
        for op in rows
    ]
