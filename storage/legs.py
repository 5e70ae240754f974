"""Route legs of a group: named stretches in order, each name sealed with the
server key (the bot must read it back to match ``stage:NAME`` phrases, and a
seized database must not show the route)."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import select

from storage.crypto import Binding, ServerKeys
from storage.models import Group, Leg
from storage.session import AsyncSession

TABLE = "legs"
MAX_NAME = 80


class BadLegName(ValueError):
    pass


class LegExists(Exception):
    pass


def name_binding(leg_id: uuid.UUID) -> Binding:
    return Binding(TABLE, "name_sealed", leg_id)


def clean_name(name: str) -> str:
    """The name as stored: Unicode NFKC, white space collapsed."""
    cleaned = " ".join(unicodedata.normalize("NFKC", name).split())
    if not cleaned:
        raise BadLegName("a leg needs a name")
    if len(cleaned) > MAX_NAME:
        raise BadLegName(f"a leg name has at most {MAX_NAME} characters")
    return cleaned


def _key(name: str) -> str:
    """What two names must share to be the same leg: case does not count."""
    return clean_name(name).casefold()


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def leg_name(server: ServerKeys, leg: Leg) -> str:
    return server.open(leg.name_sealed, name_binding(leg.id)).decode()


async def legs_of(
    session: AsyncSession, *, server: ServerKeys, group: Group
) -> list[tuple[Leg, str]]:
    """The group's legs in route order, with their names opened."""
    legs = (
        await session.exec(select(Leg).where(Leg.group_id == group.id).order_by(Leg.position))
    ).all()
    return [(leg, leg_name(server, leg)) for leg in legs]


async def find_leg(
    session: AsyncSession, *, server: ServerKeys, group: Group, name: str
) -> Leg | None:
    """The group's leg of this name (case and surrounding space do not count)."""
    wanted = _key(name)
    for leg, opened in await legs_of(session, server=server, group=group):
        if opened.casefold() == wanted:
            return leg
    return None


async def add_leg(
    session: AsyncSession,
    *,
    server: ServerKeys,
    group: Group,
    name: str,
    interval: timedelta | None = None,
    grace: timedelta | None = None,
    dead_zone: timedelta | None = None,
    now: datetime,
) -> Leg:
    """Append a leg after the group's last one (the first is at position 1).
    Names are unique within a group."""
    del now  # legs carry no time of their own; kept so every data function reads alike
    cleaned = clean_name(name)
    if await find_leg(session, server=server, group=group, name=cleaned) is not None:
        raise LegExists(f"{group.codename} already has a leg of that name")
    last = (
        await session.exec(select(sa.func.max(Leg.position)).where(Leg.group_id == group.id))
    ).one()
    leg_id = uuid.uuid4()
    leg = Leg(
        id=leg_id,
        group_id=group.id,
        position=1 if last is None else last + 1,
        name_sealed=server.seal(cleaned.encode(), name_binding(leg_id)),
        interval_s=_seconds(interval),
        grace_s=_seconds(grace),
        dead_zone_s=_seconds(dead_zone),
    )
    session.add(leg)
    await session.flush()
    return leg
