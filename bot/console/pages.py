"""What each page of the console shows, read from the database as the ``inbox``
and ``status`` commands read it (no Telegram, no server secret): plain data for
the templates, with no HTML in it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.schedules import next_due
from storage import audit
from storage.audit import AuditChainBroken
from storage.models import AuditEvent, Flip, Group, Message, Person, RoleGrant, Status
from storage.people import pseudonym

# Flips that alert activists until one of them acknowledges.
ALERTING = (Status.SILENT, Status.DETAINED)
AUDIT_PAGE = 200


@dataclass(frozen=True, slots=True)
class BoardRow:
    codename: str
    status: str
    since: datetime
    basis: str | None
    last_checkin: datetime | None
    next_due: datetime | None
    overdue: bool
    unacknowledged: int
    unread: int
    shredded: bool


async def board(
    session: AsyncSession, *, now: datetime, unread: dict[uuid.UUID | None, int]
) -> list[BoardRow]:
    groups = (await session.exec(select(Group).order_by(col(Group.codename)))).all()
    open_alerts = dict(
        (
            await session.exec(
                select(Flip.group_id, sa.func.count())
                .where(col(Flip.to_status).in_(ALERTING), col(Flip.acknowledged_at).is_(None))
                .group_by(col(Flip.group_id))
            )
        ).all()
    )
    rows = []
    for g in groups:
        due = None
        if g.last_checkin_at is not None and g.shredded_at is None:
            due = next_due(g, after=g.last_checkin_at)
        rows.append(
            BoardRow(
                codename=g.codename,
                status=g.status.value,
                since=g.status_since,
                basis=g.status_basis,
                last_checkin=g.last_checkin_at,
                next_due=due,
                overdue=due is not None and due < now,
                unacknowledged=open_alerts.get(g.id, 0),
                unread=unread.get(g.id, 0),
                shredded=g.shredded_at is not None,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class PersonRow:
    pseudonym: str
    since: datetime
    roles: list[str]  # "relative of PINE-7", "activist (revoked)"
    messages: int


async def people(session: AsyncSession) -> list[PersonRow]:
    """Everyone the bot knows, by pseudonym: their roles and how many messages they sent.
    (No identifier is stored in clear, so none can be shown.)"""
    persons = (await session.exec(select(Person).order_by(col(Person.created_at)))).all()
    codenames = {g.id: g.codename for g in (await session.exec(select(Group))).all()}
    grants: dict[uuid.UUID, list[str]] = {}
    for grant in (await session.exec(select(RoleGrant).order_by(col(RoleGrant.granted_at)))).all():
        role = grant.role.value
        if grant.group_id is not None:
            role += f" of {codenames.get(grant.group_id, '?')}"
        if grant.revoked_at is not None:
            role += " (revoked)"
        grants.setdefault(grant.person_id, []).append(role)
    sent = dict(
        (
            await session.exec(
                select(Message.sender_id, sa.func.count()).group_by(col(Message.sender_id))
            )
        ).all()
    )
    return [
        PersonRow(
            pseudonym=pseudonym(p),
            since=p.created_at,
            roles=grants.get(p.id, []) or ["stranger"],
            messages=sent.get(p.id, 0),
        )
        for p in persons
    ]


@dataclass(frozen=True, slots=True)
class AuditPage:
    verified: bool
    verdict: str  # "OK: 12 entries, head …" or what broke
    entries: list[AuditEvent]  # newest first


async def audit_trail(session: AsyncSession) -> AuditPage:
    try:
        head = await audit.verify(session)
        verified, verdict = True, f"chain verified: {head.seq} entries, head {head.text()[:28]}…"
    except AuditChainBroken as exc:
        verified, verdict = False, f"BROKEN: {exc}"
    entries = (
        await session.exec(
            select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(AUDIT_PAGE)
        )
    ).all()
    return AuditPage(verified=verified, verdict=verdict, entries=list(entries))
