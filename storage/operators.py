"""Operators: the only people whose keys open stored content."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import Binding, PublicKey, ServerKeys
from storage.models import Operator
from storage.trust import OperatorIdentity


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
