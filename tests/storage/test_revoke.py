"""A revocation cuts a person off at once: storage.people.revoke_roles, what `intake role
revoke` and the console's Revoke both run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storage.alerts import alerted, still_watched, watchers
from storage.checkins import flip
from storage.crypto import ServerKeys
from storage.models import (
    ActKind,
    Alert,
    AlertState,
    GroupAct,
    Person,
    Role,
    RoleGrant,
    Status,
)
from storage.people import (
    create_invite,
    get_or_create_person,
    live_grants,
    redeem_invite,
    revoke_roles,
)
from storage.session import AsyncSession
from tests.storage.helpers import make_group

T0 = datetime(2026, 8, 12, 6, 0, tzinfo=UTC)


async def granted(
    session: AsyncSession, server: ServerKeys, telegram_id: int, *grants: tuple[Role, object]
) -> Person:
    person = await get_or_create_person(
        session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=T0
    )
    for role, group in grants:
        _, code = await create_invite(
            session,
            server=server,
            role=role,
            group=group,  # type: ignore[arg-type]
            ttl=timedelta(days=1),
            now=T0,
        )
        await redeem_invite(session, server=server, code=code, person=person, now=T0)
    await session.commit()
    return person


@pytest.mark.usefixtures("operator")  # a group's key needs an operator to be sealed to
async def test_revoking_an_activist_ends_the_grant_drops_waiting_alerts_and_lapses_requests(
    session: AsyncSession, server: ServerKeys
) -> None:
    pine = await make_group(session)
    seized = await granted(session, server, 6_100_000_001, (Role.ACTIVIST, pine))
    other = await granted(session, server, 6_100_000_002, (Role.ACTIVIST, pine))
    await flip(session, group=pine, to=Status.SILENT, at=T0, basis="silence", now=T0)
    request = GroupAct(
        group_id=pine.id,
        act=ActKind.PAUSE,
        from_status=Status.SILENT,
        requested_by=seized.id,
        requested_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )
    session.add(request)
    await session.commit()
    waiting = (await session.exec(select(Alert).where(Alert.recipient_id == seized.id))).all()
    assert [a.state for a in waiting] == [AlertState.PENDING]

    revoked = await revoke_roles(
        session, person=seized, role=None, group_id=None, now=T0 + timedelta(minutes=1)
    )
    await session.commit()
    assert [(g.role, g.group_id, g.revoked_at) for g in revoked.grants] == [
        (Role.ACTIVIST, pine.id, T0 + timedelta(minutes=1))
    ]
    assert revoked.alerts_dropped == 1
    assert await live_grants(session, person_id=seized.id) == []
    for alert in waiting:
        await session.refresh(alert)
    assert [(a.state, a.last_error) for a in waiting] == [(AlertState.FAILED, "revoked")]
    await session.refresh(request)
    assert (request.done_at, request.outcome) == (T0 + timedelta(minutes=1), "revoked")
    # The other activist is untouched, and is still alerted.
    assert len(await live_grants(session, person_id=other.id)) == 1
    theirs = (await session.exec(select(Alert).where(Alert.recipient_id == other.id))).all()
    assert [a.state for a in theirs] == [AlertState.PENDING]
    # Nothing is left to revoke: nothing is done twice.
    again = await revoke_roles(session, person=seized, role=None, group_id=None, now=T0)
    assert (again.grants, again.alerts_dropped) == ([], 0)


@pytest.mark.usefixtures("operator")
async def test_revoking_one_grant_of_an_activist_keeps_what_the_other_grants_still_send(
    session: AsyncSession, server: ServerKeys
) -> None:
    pine, oak = await make_group(session, "PINE-7"), await make_group(session, "OAK-2")
    person = await granted(
        session, server, 6_100_000_003, (Role.RELATIVE, oak), (Role.ACTIVIST, pine)
    )
    await flip(session, group=pine, to=Status.SILENT, at=T0, basis="silence", now=T0)
    await session.commit()

    revoked = await revoke_roles(
        session, person=person, role=Role.RELATIVE, group_id=oak.id, now=T0
    )
    await session.commit()
    assert [(g.role, g.group_id) for g in revoked.grants] == [(Role.RELATIVE, oak.id)]
    # Still an activist of PINE-7: the alert about it still goes.
    assert revoked.alerts_dropped == 0
    assert [(g.role, g.group_id) for g in await live_grants(session, person_id=person.id)] == [
        (Role.ACTIVIST, pine.id)
    ]
    alerts = (await session.exec(select(Alert).where(Alert.recipient_id == person.id))).all()
    assert [a.state for a in alerts] == [AlertState.PENDING]
    # A role for another group only: nothing matches, nothing is ended.
    none = await revoke_roles(session, person=person, role=Role.ACTIVIST, group_id=oak.id, now=T0)
    assert none.grants == []
    ended = (await session.exec(select(RoleGrant).where(RoleGrant.person_id == person.id))).all()
    assert sorted(g.revoked_at is None for g in ended) == [False, True]


@pytest.mark.usefixtures("operator")
async def test_revoking_one_groups_activist_grant_cuts_that_group_alone(
    session: AsyncSession, server: ServerKeys
) -> None:
    """#13: someone watching PINE-7 and OAK-2 loses PINE-7 at once (its waiting alerts,
    its reminders and notices, their request on it, the buttons under its old alerts)
    and keeps OAK-2; an escalated alert still reaches them as every activist."""
    pine, oak = await make_group(session, "PINE-7"), await make_group(session, "OAK-2")
    person = await granted(
        session, server, 6_100_000_009, (Role.ACTIVIST, pine), (Role.ACTIVIST, oak)
    )
    other = await granted(session, server, 6_100_000_010, (Role.ACTIVIST, pine))
    silent = await flip(session, group=pine, to=Status.SILENT, at=T0, basis="silence", now=T0)
    oak_silent = await flip(session, group=oak, to=Status.SILENT, at=T0, basis="silence", now=T0)
    requests = {
        g.id: GroupAct(
            group_id=g.id,
            act=ActKind.PAUSE,
            from_status=Status.SILENT,
            requested_by=person.id,
            requested_at=T0,
            expires_at=T0 + timedelta(hours=1),
        )
        for g in (pine, oak)
    }
    session.add_all(requests.values())
    await session.commit()
    mine = {
        a.flip_id: a
        for a in (await session.exec(select(Alert).where(Alert.recipient_id == person.id))).all()
    }
    assert set(mine) == {silent.id, oak_silent.id}
    assert await still_watched(session, alert_ids=[a.id for a in mine.values()]) == {
        a.id for a in mine.values()
    }

    later = T0 + timedelta(minutes=1)
    revoked = await revoke_roles(
        session, person=person, role=Role.ACTIVIST, group_id=pine.id, now=later
    )
    await session.commit()
    assert [(g.role, g.group_id) for g in revoked.grants] == [(Role.ACTIVIST, pine.id)]
    assert revoked.alerts_dropped == 1
    for alert in mine.values():
        await session.refresh(alert)
    assert mine[silent.id].state is AlertState.FAILED
    assert mine[oak_silent.id].state is AlertState.PENDING
    # No reminder, notice or all-clear about PINE-7 goes to them any more; OAK-2's do.
    assert person.id not in await alerted(session, flip_id=silent.id)
    assert person.id not in await watchers(session, group_id=pine.id)
    assert other.id in await alerted(session, flip_id=silent.id)
    assert person.id in await alerted(session, flip_id=oak_silent.id)
    assert person.id in await watchers(session, group_id=oak.id)
    # A button under the old PINE-7 alert is no longer theirs to press; under OAK-2's it is.
    assert await still_watched(session, alert_ids=[a.id for a in mine.values()]) == {
        mine[oak_silent.id].id
    }
    for request in requests.values():
        await session.refresh(request)
    assert (requests[pine.id].done_at, requests[pine.id].outcome) == (later, "revoked")
    assert (requests[oak.id].done_at, requests[oak.id].outcome) == (None, None)

    # Escalated to every activist: they hear it as any activist of another group does.
    detained = await flip(
        session, group=pine, to=Status.DETAINED, at=later, basis="silence", now=later
    )
    await session.commit()
    assert person.id in await alerted(session, flip_id=detained.id)
