"""The timeline picture: a valid portrait PNG or SVG of times, statuses, legs, alerts
and acknowledgements, nothing anyone wrote (no message or codebook phrase; leg names
only for those who read them in alerts), with labels that never overlap."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from bot.i18n import Words
from bot.timeline import Journey, caption, gather, render
from storage.checkins import flip, record_signal
from storage.codebook import add_phrase
from storage.crypto import ServerKeys
from storage.legs import add_leg
from storage.messages import store_message
from storage.models import MessageKind, Operator, Signal, Status
from storage.session import AsyncSession
from tests.storage.helpers import make_group

T0 = datetime(2026, 8, 12, 3, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
LEG = "Kunming bus depot"
PHRASE = "the persimmons are ripe"
TEXT = "we crossed at the third bend of the river"
ENGLISH = Words("en", UTC)


def journey() -> Journey:
    return Journey(
        codename="PINE-7",
        start=T0,
        now=T0 + 40 * HOUR,
        checkins=(T0 + 2 * HOUR, T0 + 13 * HOUR),
        windows=((T0 + 14 * HOUR, T0 + 16 * HOUR), (T0 + 25 * HOUR, T0 + 27 * HOUR)),
        stages=((T0 + 13 * HOUR, 2),),
        statuses=(
            (T0, Status.PENDING),
            (T0 + 2 * HOUR, Status.OK),
            (T0 + 27 * HOUR, Status.SILENT),
        ),
    )


def test_the_png_is_a_png_of_a_sensible_size() -> None:
    png = render(journey(), "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1080, 1350)  # portrait, for a phone
    assert png.endswith(b"IEND\xaeB`\x82")


def test_the_svg_is_an_svg_with_the_statuses_and_leg_numbers() -> None:
    svg = render(journey(), "svg").decode()
    root = ET.fromstring(svg)  # noqa: S314 (our own output, not untrusted data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    for shown in ("PINE-7", "OK", "SILENT", "leg 2", "check-in", "grace period", "now"):
        assert shown in svg


def empty() -> Journey:
    """A group that never checked in, drawn the moment it was made."""
    return Journey(
        codename="OAK-2",
        start=T0,
        now=T0,
        checkins=(),
        windows=(),
        stages=(),
        statuses=((T0, Status.PENDING),),
    )


def test_a_group_without_any_check_in_still_draws() -> None:
    assert render(empty(), "png").startswith(b"\x89PNG")
    # It says why no check-in is due: the schedule starts with the first one.
    assert "No check-in yet: the schedule starts with the first." in caption(empty(), ENGLISH)
    assert ET.fromstring(render(empty(), "svg")).tag.endswith("svg")  # noqa: S314


async def test_the_timeline_of_a_stored_group_shows_no_content(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    group = await make_group(session, "PINE-7")
    group.created_at = T0  # the picture starts where the group does
    await add_leg(session, server=server, group=group, name="Qingdao harbour", now=T0)
    leg = await add_leg(session, server=server, group=group, name=LEG, now=T0)
    await add_phrase(
        session,
        server=server,
        group=group,
        phrase=PHRASE,
        means=Signal.STAGE,
        leg_id=leg.id,
        now=T0,
    )
    message = await store_message(
        session,
        server=server,
        kind=MessageKind.TEXT,
        body={"text": TEXT},
        received_at=T0 + 3 * HOUR,
        group=group,
    )
    await record_signal(
        session, group=group, signal=Signal.CHECKIN, at=T0 + HOUR, source="phrase", now=T0 + HOUR
    )
    await record_signal(
        session,
        group=group,
        signal=Signal.STAGE,
        at=T0 + 3 * HOUR,
        source="phrase",
        now=T0 + 3 * HOUR,
        message=message,
        leg_id=leg.id,
    )
    await flip(session, group=group, to=Status.LATE, at=T0 + 20 * HOUR, basis="due", now=T0)
    await session.commit()

    facts = await gather(session, group=group, now=T0 + 30 * HOUR)
    named = await gather(session, group=group, now=T0 + 30 * HOUR, server=server)
    assert facts.checkins == (T0 + HOUR, T0 + 3 * HOUR)
    assert facts.stages == ((T0 + 3 * HOUR, 2),)
    assert len(facts.windows) == 2
    assert facts.statuses[-1] == (T0 + 20 * HOUR, Status.LATE)

    svg = render(facts, "svg").decode()
    assert "leg 2" in svg
    assert "LATE" in svg
    for secret in (LEG, "Kunming", "Qingdao", PHRASE, "persimmons", TEXT, "third bend"):
        assert secret not in svg
    # For the group's activists, legs by name (as their alerts say "Leg: Kunming…").
    shown = render(named, "svg").decode()
    assert "Kunming bus depot" in shown
    for secret in (PHRASE, "persimmons", TEXT, "third bend"):
        assert secret not in shown


async def test_the_picture_judges_each_window_on_its_leg_and_says_an_overdue_check_in_was_due(
    session: AsyncSession, server: ServerKeys, operator: Operator
) -> None:
    """The bands and the due time are the engine's own: a border leg's tighter interval
    and grace, and for a LATE group a check-in that was due, never a "next" in the past."""
    group = await make_group(session, "PINE-7")
    group.created_at = T0
    border = await add_leg(
        session,
        server=server,
        group=group,
        name=LEG,
        interval=2 * HOUR,
        grace=timedelta(minutes=30),
        now=T0,
    )
    await record_signal(
        session, group=group, signal=Signal.CHECKIN, at=T0 + HOUR, source="phrase", now=T0 + HOUR
    )
    await record_signal(
        session,
        group=group,
        signal=Signal.STAGE,
        at=T0 + 2 * HOUR,
        source="phrase",
        now=T0 + 2 * HOUR,
        leg_id=border.id,
    )
    await record_signal(
        session,
        group=group,
        signal=Signal.CHECKIN,
        at=T0 + 3 * HOUR,
        source="phrase",
        now=T0 + 3 * HOUR,
    )
    await flip(session, group=group, to=Status.OK, at=T0 + HOUR, basis="checked in", now=T0)
    await session.commit()
    assert group.current_leg == border.position

    on_time = await gather(session, group=group, now=T0 + 4 * HOUR)
    # The first check-in was before the border leg: the group's own schedule judged it.
    assert on_time.windows[0][0] > T0 + 3 * HOUR
    # The stage message (a check-in too) and the last were on the border leg: each due
    # two hours later, with half an hour of grace.
    assert on_time.windows[1] == (T0 + 4 * HOUR, T0 + 4 * HOUR + timedelta(minutes=30))
    assert on_time.windows[2] == (T0 + 5 * HOUR, T0 + 5 * HOUR + timedelta(minutes=30))
    assert on_time.next_due == T0 + 5 * HOUR
    assert on_time.was_due is None

    await flip(session, group=group, to=Status.LATE, at=T0 + 5 * HOUR, basis="check-in due", now=T0)
    await session.commit()
    late = await gather(session, group=group, now=T0 + 5 * HOUR + timedelta(minutes=10))
    assert late.next_due is None
    assert late.was_due == T0 + 5 * HOUR
    svg = render(late, "svg").decode()
    assert "was due at 2026-08-12 08:00 UTC" in svg
    assert "Next check-in due" not in svg
