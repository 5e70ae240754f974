"""The tamper-evident audit log: a hash chain over append-only rows.

Each entry's hash covers its own fields and the previous entry's hash, so an
edited, removed or reordered entry breaks every hash after it; the database
itself refuses UPDATE and DELETE on the table. Details never carry message
text or identifiers: codenames, roles, counts and row ids only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.crypto import sha256
from storage.models import AuditEvent

GENESIS = bytes(32)
# Any constant: PostgreSQL's advisory lock that serialises appends across
# processes, so two writers never both extend the same head.
_PG_LOCK = 0x43_4B_49_41  # "CKIA"


class AuditChainBroken(Exception):
    pass


def _entry_hash(
    prev: bytes,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    details: str,
) -> bytes:
    body = json.dumps(
        [
            seq,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            subject,
            details,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return sha256(prev + body)


async def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    at: datetime,
    subject: str | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Add an entry in the caller's transaction (it commits with the change it records)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK)))  # type: ignore[call-overload]
    head = (
        await session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1))
    ).first()
    seq = 1 if head is None else head.seq + 1
    prev = GENESIS if head is None else head.hash
    text = json.dumps(
        dict(details or {}), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    at = at.astimezone(UTC)  # hashed as the database gives it back: UTC
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=text,
        prev_hash=prev,
        hash=_entry_hash(
            prev, seq=seq, at=at, actor=actor, action=action, subject=subject, details=text
        ),
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: bytes

    def text(self) -> str:
        return f"{self.seq}:{self.hash.hex()}"


async def length(session: AsyncSession) -> int:
    """How many entries the log holds (the total a progress bar counts to)."""
    return int((await session.exec(select(sa.func.count()).select_from(AuditEvent))).one())


async def verify(
    session: AsyncSession,
    *,
    checkpoint: ChainHead | None = None,
    on_entry: Callable[[int], None] | None = None,
) -> ChainHead:
    """Check every link; with a checkpoint kept off the server, also detect a cut tail.
    ``on_entry`` is told each sequence number as it is checked (for a progress bar)."""
    prev, seq = GENESIS, 0
    result = await session.stream(select(AuditEvent).order_by(col(AuditEvent.seq)))
    async for (event,) in result:
        seq += 1
        if on_entry is not None:
            on_entry(seq)
        if event.seq != seq:
            raise AuditChainBroken(f"entry {seq} is missing (found {event.seq})")
        expected = _entry_hash(
            prev,
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=event.details,
        )
        if event.prev_hash != prev or event.hash != expected:
            raise AuditChainBroken(f"entry {event.seq} was altered")
        prev = event.hash
    head = ChainHead(seq=seq, hash=prev)
    if checkpoint is not None:
        if seq < checkpoint.seq:
            raise AuditChainBroken(
                f"the log ends at {seq}, before the checkpoint at {checkpoint.seq}"
            )
        if checkpoint.seq and await _hash_at(session, checkpoint.seq) != checkpoint.hash:
            raise AuditChainBroken(f"entry {checkpoint.seq} does not match the checkpoint")
    return head


async def _hash_at(session: AsyncSession, seq: int) -> bytes | None:
    event = await session.get(AuditEvent, seq)
    return None if event is None else event.hash
