"""What each page of the console shows, read from the database as the ``inbox``
and ``status`` commands read it (no Telegram; the server secret only to name people
and operators, where the console was given the installation's config): plain data
for the templates, with no HTML in it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import select

from bot.schedules import next_due
from storage import audit
from storage.audit import AuditChainBroken, AuditUnkeyed
from storage.crypto import CryptoError, ServerKeys
from storage.models import AuditEvent, Flip, Group, Invite, Message, Person, RoleGrant, Status
from storage.operators import operator_names
from storage.people import label_of_invite, pseudonym
from storage.session import AsyncSession
from storage.trust import installation_of

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
    groups = (await session.exec(select(Group).order_by(Group.codename))).all()
    # Alerts still going out: unacknowledged flips into the status the group is still in,
    # since it entered it (the reminders stop once it leaves, storage.alerts.plan_reminder);
    # a SILENT that a check-in since cleared is over, acknowledged or not.
    open_alerts = dict(
        (
            await session.exec(
                select(Flip.group_id, sa.func.count())
                .join(Group, Group.id == Flip.group_id)
                .where(
                    Flip.to_status.in_(ALERTING),
                    Flip.acknowledged_at.is_(None),
                    Flip.to_status == Group.status,
                    Flip.at >= Group.status_since,
                )
                .group_by(Flip.group_id)
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
class GrantRow:
    role: str  # "relative", "activist", "operator", "admin"
    group: str | None  # the codename, for a relative's or an activist's grant
    chat_label: str | None  # the neutral word a relative of several groups chooses by
    granted_at: datetime
    revoked_at: datetime | None

    @property
    def text(self) -> str:
        """As `intake people list` names a grant: "relative PINE-7", "admin"."""
        return f"{self.role} {self.group}" if self.group else self.role

    def revoke_command(self, pseudonym: str) -> str:
        """The command an admin runs to end this grant (`intake role revoke`)."""
        command = f"intake role revoke {pseudonym} --role {self.role}"
        return command + (f" --group {self.group}" if self.group else "")


@dataclass(frozen=True, slots=True)
class PersonRow:
    pseudonym: str
    since: datetime
    # The label the admin gave at invite time ("Ji-woo"): sealed with the server secret,
    # so shown only where the console was given the installation's config.
    label: str | None
    label_sealed: bool  # a label exists that this console cannot open
    grants: list[GrantRow]  # oldest first, revoked ones too
    messages: int

    @property
    def live(self) -> list[GrantRow]:
        return [g for g in self.grants if g.revoked_at is None]


async def people(session: AsyncSession) -> list[PersonRow]:
    """Everyone the bot knows, by pseudonym: their grants (with a relative's chat label),
    the admin's label for them where the server secret is here, and how many messages
    they sent. (No identifier is stored in clear, so none can be shown.)"""
    installation = installation_of(session)
    persons = (await session.exec(select(Person).order_by(Person.created_at))).all()
    codenames = {g.id: g.codename for g in (await session.exec(select(Group))).all()}
    grants: dict[uuid.UUID, list[GrantRow]] = {}
    labels: dict[uuid.UUID, bytes | None] = {}
    opened: dict[uuid.UUID, str | None] = {}
    found = await session.exec(
        select(RoleGrant, Invite)
        .outerjoin(Invite, Invite.id == RoleGrant.invite_id)
        .order_by(RoleGrant.granted_at)
    )
    for grant, invite in found.all():
        grants.setdefault(grant.person_id, []).append(
            GrantRow(
                role=grant.role.value,
                group=codenames.get(grant.group_id, "?") if grant.group_id else None,
                chat_label=grant.chat_label,
                granted_at=grant.granted_at,
                revoked_at=grant.revoked_at,
            )
        )
        if invite is not None and invite.label_sealed is not None:
            # The newest labelled grant's label, as `intake people list` shows it.
            labels[grant.person_id] = invite.label_sealed
            opened[grant.person_id] = (
                _label(installation.server, invite) if installation is not None else None
            )
    sent = dict(
        (
            await session.exec(
                select(Message.sender_id, sa.func.count()).group_by(Message.sender_id)
            )
        ).all()
    )
    return [
        PersonRow(
            pseudonym=pseudonym(p),
            since=p.created_at,
            label=opened.get(p.id),
            label_sealed=p.id in labels and opened.get(p.id) is None,
            grants=grants.get(p.id, []),
            messages=sent.get(p.id, 0),
        )
        for p in persons
    ]


def _label(server: ServerKeys, invite: Invite) -> str | None:
    try:
        return label_of_invite(server, invite)
    except (CryptoError, UnicodeDecodeError):
        return None  # another installation's secret, or a row someone else wrote


@dataclass(frozen=True, slots=True)
class AuditPage:
    verified: bool
    verdict: str  # "OK: 12 entries, head …" or what broke
    entries: list[AuditEvent]  # newest first
    # Who each operator actor is, by the fingerprint's first 16 characters that an
    # operator's entries carry: their name where the console has the server secret,
    # else "operator 3f2a:91c0…".
    operators: dict[str, str]

    def actor(self, entry: AuditEvent) -> str:
        return self.operators.get(entry.actor, entry.actor)


async def audit_trail(session: AsyncSession) -> AuditPage:
    try:
        head = await audit.verify(session)
        verified, verdict = True, f"chain verified: {head.seq} entries, head {head.text()[:28]}…"
    except AuditChainBroken as exc:
        verified, verdict = False, f"BROKEN: {exc}"
    except AuditUnkeyed:
        # A copy or a URL without the installation's config: the chain is keyed with the
        # server secret, so only `intake audit verify` where it is kept can check it.
        verified, verdict = (
            False,
            (
                "not verified here: the chain is keyed with the server secret, which this "
                "console was not given (run `intake audit verify` where it is kept)"
            ),
        )
    entries = (
        await session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(AUDIT_PAGE))
    ).all()
    operators = {op.fingerprint[:16]: op.label for op in await operator_names(session)}
    return AuditPage(verified=verified, verdict=verdict, entries=list(entries), operators=operators)
