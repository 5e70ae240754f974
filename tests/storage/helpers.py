"""Builders shared by the storage tests."""

from __future__ import annotations

from datetime import timedelta

from storage.crypto import KemName
from storage.groups import Schedule, create_group
from storage.models import Group
from storage.session import AsyncSession
from storage.timeutil import utc_now

SCHEDULE = Schedule(
    interval=timedelta(hours=12), grace=timedelta(hours=2), detained_after=timedelta(days=2)
)


async def make_group(
    session: AsyncSession, codename: str = "PINE-7", kem: KemName = KemName.MLKEM768_X25519
) -> Group:
    group = await create_group(
        session, codename=codename, schedule=SCHEDULE, kem=kem, now=utc_now()
    )
    await session.commit()
    return group
