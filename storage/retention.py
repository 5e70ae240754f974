"""Retention: the contents of a group marked SAFE are shredded after a while,
keeping only its status timeline (flips and check-in times)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from storage import audit
from storage.groups import shred_group
from storage.models import Group, Status
from storage.session import AsyncSession

# The SAFE that starts the retention clock: two people agreed to it
# ("confirmed"), or an operator marked it on the server ("operator"). One
# person's SAFE ("marked", possibly from a seized phone) never destroys anything.
SHREDDABLE_SAFE = frozenset({"confirmed", "operator"})


def due_for_shredding(
    groups: Sequence[Group], *, now: datetime, after_safe: timedelta
) -> list[Group]:
    """Pure: the groups agreed SAFE for at least ``after_safe`` whose contents remain."""
    return [
        g
        for g in groups
        if g.status is Status.SAFE
        and g.status_basis in SHREDDABLE_SAFE
        and g.shredded_at is None
        and g.status_since + after_safe <= now
    ]


async def apply_retention(
    session: AsyncSession, *, now: datetime, after_safe: timedelta, actor: str
) -> list[str]:
    """Shred what retention says is due, in the caller's transaction; returns the codenames.
    After the commit, ``storage.db.reclaim_deleted`` clears what the database keeps."""
    safe = (
        await session.exec(
            select(Group).where(Group.status == Status.SAFE, Group.shredded_at.is_(None))
        )
    ).all()
    shredded = []
    for group in due_for_shredding(safe, now=now, after_safe=after_safe):
        await shred_group(session, group=group, now=now)
        await audit.append(
            session,
            actor=actor,
            action="group.shred",
            subject=group.codename,
            at=now,
            details={"reason": "retention", "safe_since": group.status_since.isoformat()},
        )
        shredded.append(group.codename)
    return shredded
