"""End to end through the stand-in: a group stops checking in, its activist is
told SILENT and then everyone DETAINED; acknowledging stops the repeats; a new
check-in sends the all-clear to everyone who was alerted.

Time is real but short: the group is due every 2 s, with 1 s of grace, and
is DETAINED after 2 s more of silence.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.standin import SentMessage, SimUser, TelegramStandIn
from storage.checkins import record_signal
from storage.codebook import add_phrase
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.groups import Schedule, create_group
from storage.models import Alert, Flip, Role, RoleGrant, Signal, Status
from storage.people import get_or_create_person
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

OWN_ACTIVIST = 6_400_000_001
OTHER_ACTIVIST = 6_400_000_002
RELATIVE = 6_400_000_003
CHECKIN_PHRASE = "the persimmons are ripe"
FAST = Schedule(
    interval=timedelta(seconds=2), grace=timedelta(seconds=1), detained_after=timedelta(seconds=2)
)


@dataclass
class World:
    standin: TelegramStandIn
    installation: Installation
    own: SimUser
    other: SimUser
    relative: SimUser

    def alerts_to(self, user: SimUser) -> list[SentMessage]:
        return [m for m in self.standin.sent if m.chat_id == user.id]

    def texts_to(self, user: SimUser) -> list[str]:
        return [m.text or "" for m in self.alerts_to(user)]

    async def recorded_as_sent(self, message_id: int) -> None:
        """Wait until the bot has recorded which alert that Telegram message is."""
        for _ in range(200):
            async with (
                open_database(self.installation.settings.database.url) as engine,
                session_factory(engine)() as session,
            ):
                found = await session.exec(
                    select(Alert.id).where(Alert.telegram_message_id == message_id)
                )
                if found.first() is not None:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("the alert was never recorded as sent")

    async def flips(self) -> list[Status]:
        async with (
            open_database(self.installation.settings.database.url) as engine,
            session_factory(engine)() as session,
        ):
            rows = await session.exec(select(Flip).order_by(Flip.at, Flip.recorded_at))
            return [f.to_status for f in rows.all()]


@pytest.fixture
async def world(tmp_path: Path, database: Database, standin: TelegramStandIn) -> World:
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra=(
            '[alerts]\nrepeat_every = "1s"\nescalate_after = "1h"\n'
            '[display]\ntimezone = "Asia/Seoul"\n'
        ),
    )
    server = ServerKeys(installation.settings.server_secret_bytes())
    now = utc_now()
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        group = await create_group(
            session, codename="PINE-7", schedule=FAST, kem=KemName.X25519, now=now
        )
        await add_phrase(
            session,
            server=server,
            group=group,
            phrase=CHECKIN_PHRASE,
            means=Signal.CHECKIN,
            now=now,
        )
        for telegram_id, role, of_group in (
            (OWN_ACTIVIST, Role.ACTIVIST, True),
            (OTHER_ACTIVIST, Role.ACTIVIST, False),
            (RELATIVE, Role.RELATIVE, True),
        ):
            someone = await get_or_create_person(
                session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=now
            )
            session.add(
                RoleGrant(person_id=someone.id, role=role, group_id=group.id if of_group else None)
            )
        await record_signal(
            session, group=group, signal=Signal.CHECKIN, at=now, source="test", now=now
        )
    return World(
        standin=standin,
        installation=installation,
        own=standin.user(OWN_ACTIVIST, "Min", language_code="en"),
        other=standin.user(OTHER_ACTIVIST, "Jae", language_code="en"),
        relative=standin.user(RELATIVE, language_code="en"),
    )


async def test_silence_alerts_then_detention_escalates_ack_stops_repeats_and_check_in_clears(
    world: World,
) -> None:
    async with running_bot(world.installation, world.standin):
        await eventually(lambda: any("SILENT" in t for t in world.texts_to(world.own)))
        silent = next(m for m in world.alerts_to(world.own) if "SILENT" in (m.text or ""))
        assert "PINE-7" in (silent.text or "")
        assert "KST" in (silent.text or "")  # the time in the recipient's zone
        assert silent.protect_content
        assert silent.callback_data == ["al:ack", "al:claim", "al:clear"]
        # SILENT is for the group's own activists only.
        assert not any("SILENT" in t for t in world.texts_to(world.other))

        await eventually(lambda: any("DETAINED" in t for t in world.texts_to(world.other)))
        await eventually(lambda: any("DETAINED" in t for t in world.texts_to(world.own)))
        # Unacknowledged, it is repeated.
        await eventually(
            lambda: any(" reminder, not acknowledged" in t for t in world.texts_to(world.own))
        )

        detained = next(
            m for m in reversed(world.alerts_to(world.own)) if "DETAINED" in (m.text or "")
        )
        await world.recorded_as_sent(detained.message_id)  # as a person would: not within ms
        world.standin.press_button(world.own, detained.message, "al:ack")
        await eventually(lambda: bool(world.standin.answered_callbacks))
        await eventually(lambda: "reply_markup" not in _now(world, detained))  # buttons gone
        # The alert keeps a line saying who acknowledged it, and when, in their zone.
        kept = str(_now(world, detained)["text"]).splitlines()[-1]
        assert re.fullmatch(r"✓ Acknowledged by \S+ at \d\d:\d\d KST\.", kept), kept
        # Acknowledged: no more reminders, to anyone, for this flip.
        await asyncio.sleep(0.5)  # let a reminder already on its way land
        count = len(world.standin.sent)
        await asyncio.sleep(2.5)  # more than two repeat periods
        assert len(world.standin.sent) == count

        world.standin.send_text(world.relative, CHECKIN_PHRASE)
        await eventually(lambda: any("OK again" in t for t in world.texts_to(world.own)))
        await eventually(lambda: any("OK again" in t for t in world.texts_to(world.other)))
    # Later flips (LATE again, as the test ends) may follow; these came first, in order.
    assert (await world.flips())[:5] == [
        Status.OK,
        Status.LATE,
        Status.SILENT,
        Status.DETAINED,
        Status.OK,
    ]


def _now(world: World, sent: SentMessage) -> dict[str, object]:
    """The alert as its recipient sees it now."""
    chat = world.standin.messages_in(sent.chat_id)
    return next(m for m in chat if m["message_id"] == sent.message_id)
