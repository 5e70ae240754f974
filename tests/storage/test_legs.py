"""Route legs: appended in order, names sealed with the server key and unique
within a group."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.checkins import flip, record_signal, stage_by_hand
from storage.crypto import CryptoError, ServerKeys
from storage.legs import BadLegName, LegExists, add_leg, find_leg, leg_name, legs_of
from storage.models import Flip, Group, Leg, Operator, Signal, Status
from storage.session import AsyncSession
from storage.timeutil import utc_now
from tests.conftest import Database
from tests.storage.helpers import make_group
from tests.storage.scan import database_bytes, find, text_encodings

TAG = uuid.uuid4().hex[:8].upper()


async def test_leg_round_trips(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    group = await make_group(session)
    leg = await add_leg(
        session,
        server=server,
        group=group,
        name="  Qingdao to Kunming ",
        interval=timedelta(hours=6),
        grace=timedelta(hours=1),
        now=utc_now(),
    )
    await session.commit()
    session.expunge_all()

    stored = await session.get(Leg, leg.id)
    assert stored is not None
    assert stored.group_id == group.id
    assert stored.position == 1
    assert stored.interval_s == 6 * 3600
    assert stored.grace_s == 3600
    assert stored.dead_zone_s is None
    assert leg_name(server, stored) == "Qingdao to Kunming"
    found = await find_leg(session, server=server, group=group, name="qingdao TO kunming")
    assert found is not None
    assert found.id == leg.id
    assert await find_leg(session, server=server, group=group, name="Kunming") is None


async def test_legs_are_appended_in_order_per_group(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    pine = await make_group(session, "PINE-7")
    oak = await make_group(session, "OAK-2")
    names = ["Ryanggang", "Qingdao", "Kunming", "Laos border"]
    for name in names:
        await add_leg(session, server=server, group=pine, name=name, now=utc_now())
    await add_leg(session, server=server, group=oak, name="Shenyang", now=utc_now())
    await session.commit()

    pine_legs = await legs_of(session, server=server, group=pine)
    assert [name for _, name in pine_legs] == names
    assert [leg.position for leg, _ in pine_legs] == [1, 2, 3, 4]
    oak_legs = await legs_of(session, server=server, group=oak)
    assert [(leg.position, name) for leg, name in oak_legs] == [(1, "Shenyang")]
    # Another group's leg is not found under this one.
    assert await find_leg(session, server=server, group=pine, name="Shenyang") is None


@pytest.mark.parametrize("again", ["Kunming", "kunming", " KUNMING  ", "ＫＵＮＭＩＮＧ"])
async def test_leg_names_are_unique_within_a_group(
    session: AsyncSession, server: ServerKeys, operator: Operator, again: str
) -> None:
    pine = await make_group(session, "PINE-7")
    oak = await make_group(session, "OAK-2")
    await add_leg(session, server=server, group=pine, name="Kunming", now=utc_now())
    with pytest.raises(LegExists) as refused:
        await add_leg(session, server=server, group=pine, name=again, now=utc_now())
    assert "unming" not in str(refused.value).casefold()  # the route is not echoed
    # The same name in another group is another leg.
    await add_leg(session, server=server, group=oak, name=again, now=utc_now())
    await session.commit()
    assert len(await legs_of(session, server=server, group=pine)) == 1
    assert len(await legs_of(session, server=server, group=oak)) == 1


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
async def test_empty_leg_name_is_refused(
    session: AsyncSession, server: ServerKeys, operator: Operator, name: str
) -> None:
    group = await make_group(session)
    with pytest.raises(BadLegName):
        await add_leg(session, server=server, group=group, name=name, now=utc_now())


async def test_leg_name_is_sealed_and_bound_to_its_row(
    session: AsyncSession, server: ServerKeys, operator: Operator, database: Database
) -> None:
    group = await make_group(session)
    name = f"CANARY-LEG-{TAG} 쿤밍 昆明"
    first = await add_leg(session, server=server, group=group, name=name, now=utc_now())
    second = await add_leg(session, server=server, group=group, name="Vientiane", now=utc_now())
    await session.commit()

    for leg in (await session.exec(select(Leg))).all():
        for form in text_encodings(name):
            assert form not in leg.name_sealed
        assert TAG.encode() not in leg.name_sealed
    assert find([*text_encodings(name), TAG.encode()], await database_bytes(database)) == []

    # A ciphertext moved to another row does not open there.
    moved = Leg(
        id=second.id,
        group_id=group.id,
        position=second.position,
        name_sealed=first.name_sealed,
    )
    with pytest.raises(CryptoError):
        leg_name(server, moved)
    # Nor with another installation's secret.
    with pytest.raises(CryptoError):
        leg_name(ServerKeys(ServerKeys.generate_secret()), first)


async def test_a_stage_signal_moves_the_group_on_and_a_dead_zone_pauses_it(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    group = await make_group(session)
    now = utc_now()
    qingdao = await add_leg(session, server=server, group=group, name="Qingdao", now=now)
    mekong = await add_leg(
        session, server=server, group=group, name="Mekong", dead_zone=timedelta(hours=30), now=now
    )
    await record_signal(
        session, group=group, signal=Signal.STAGE, at=now, source="test", now=now, leg_id=qingdao.id
    )
    assert (group.current_leg, group.status) == (1, Status.PENDING)
    later = now + timedelta(hours=5)
    await record_signal(
        session,
        group=group,
        signal=Signal.STAGE,
        at=later,
        source="test",
        now=later,
        leg_id=mekong.id,
    )
    assert group.current_leg == 2
    assert (group.status, group.status_basis) == (Status.PAUSED, "dead zone")
    assert group.paused_until == later + timedelta(hours=30)
    # A stage phrase from earlier in the route, forwarded late, does not move it back.
    await record_signal(
        session,
        group=group,
        signal=Signal.STAGE,
        at=later,
        source="test",
        now=later,
        leg_id=qingdao.id,
    )
    assert group.current_leg == 2


@pytest.mark.parametrize("warning", [Status.SILENT, Status.DETAINED])
@pytest.mark.parametrize("by_hand", [True, False], ids=["stage-command", "stage-phrase"])
async def test_a_stage_does_not_start_a_dead_zone_on_a_warning(
    session: AsyncSession, server: ServerKeys, operator: Operator, warning: Status, by_hand: bool
) -> None:
    """#13: one activist's /stage (or a stage phrase captors can force) to a leg with a
    dead zone must not pause a SILENT or DETAINED group: that would stop its alerts
    and reminders for days with no second person and no announcement."""
    group = await make_group(session)
    now = utc_now()
    await add_leg(session, server=server, group=group, name="Qingdao", now=now)
    mekong = await add_leg(
        session, server=server, group=group, name="Mekong", dead_zone=timedelta(days=3), now=now
    )
    basis = "silence" if warning is Status.SILENT else "duress"
    await flip(session, group=group, to=warning, at=now, basis=basis, now=now)
    await session.commit()
    flips_before = len((await session.exec(select(Flip))).all())

    later = now + timedelta(minutes=5)
    if by_hand:
        await stage_by_hand(session, group=group, leg=mekong, now=later)
    else:
        await record_signal(
            session,
            group=group,
            signal=Signal.STAGE,
            at=later,
            source="test",
            now=later,
            leg_id=mekong.id,
        )
    await session.commit()
    session.expunge_all()

    stored = await session.get(Group, group.id)
    assert stored is not None
    assert stored.current_leg == 2  # the route moves on
    assert (stored.status, stored.status_basis, stored.paused_until) == (warning, basis, None)
    assert len((await session.exec(select(Flip))).all()) == flips_before


async def test_a_stage_by_hand_still_starts_a_dead_zone_on_a_quiet_group(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    group = await make_group(session)
    now = utc_now()
    mekong = await add_leg(
        session, server=server, group=group, name="Mekong", dead_zone=timedelta(days=3), now=now
    )
    await flip(session, group=group, to=Status.OK, at=now, basis="check-in", now=now)
    await session.commit()
    await stage_by_hand(session, group=group, leg=mekong, now=now)
    await session.commit()
    assert (group.status, group.status_basis) == (Status.PAUSED, "dead zone")
    assert group.paused_until == now + timedelta(days=3)
