"""Small robustness: a stranger's refused commands are audited once per command and
hour, with a count (a hundred /status from one sender made a hundred audit rows); a
deletion Telegram refuses for good (400) is not tried again every few seconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.handlers import DELETE_RETRY
from bot.refusals import REFUSALS_EVERY, RefusalTally
from bot.standin import TelegramStandIn
from storage.db import open_database, session_factory
from storage.models import AuditEvent, PendingDeletion
from tests.bot.intake_harness import eventually, install, running_bot
from tests.conftest import Database

T0 = datetime(2026, 8, 12, 3, 0, tzinfo=UTC)
STRANGER = 6_800_000_001


def test_the_first_refusal_is_counted_then_the_rest_of_the_window_in_one_entry() -> None:
    tally = RefusalTally()
    assert tally.refused(1, "status", T0) == 1
    assert [tally.refused(1, "status", T0 + timedelta(seconds=s)) for s in range(99)] == [None] * 99
    assert tally.refused(1, "group", T0) == 1  # another command: its own window
    assert tally.refused(2, "status", T0) == 1  # another sender too
    assert tally.refused(1, "status", T0 + REFUSALS_EVERY) == 100  # 99 held + this one


async def test_a_strangers_repeated_command_makes_one_audit_row(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    stranger = standin.user(STRANGER, language_code="en")
    async with running_bot(installation, standin):
        for _ in range(30):
            update = standin.send_text(stranger, "/status")
        await eventually(lambda: update["update_id"] in standin.confirmed_update_ids())
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        rows = (
            await session.exec(select(AuditEvent).where(AuditEvent.action == "command.status"))
        ).all()
    assert [r.details for r in rows] == ['{"allowed":false}']


async def test_a_strangers_wrong_invite_codes_make_one_audit_row(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    stranger = standin.user(STRANGER + 2, language_code="en")
    async with running_bot(installation, standin):
        for n in range(30):
            update = standin.send_text(stranger, f"/start WRONG-CODE-{n:02d}")
        await eventually(lambda: update["update_id"] in standin.confirmed_update_ids())
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        rows = (
            await session.exec(select(AuditEvent).where(AuditEvent.action == "invite.refused"))
        ).all()
    assert [r.details for r in rows] == ['{"allowed":false}']


async def test_a_permanent_400_on_a_deletion_is_not_tried_again(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    relative = standin.user(STRANGER + 1, language_code="en")
    standin.fail_next("deleteMessages", status=400, count=1000)
    async with running_bot(installation, standin):
        update = standin.send_text(relative, "at the station")
        await eventually(lambda: update["update_id"] in standin.confirmed_update_ids())
        await eventually(lambda: standin.calls.count("deleteMessages") >= 2)  # message, receipt
        await asyncio.sleep(2 * DELETE_RETRY.total_seconds())
        settled = standin.calls.count("deleteMessages")
        await asyncio.sleep(2 * DELETE_RETRY.total_seconds())
        # Tried again every DELETE_RETRY, the count would have grown by about two per chain.
        assert standin.calls.count("deleteMessages") == settled
    # Written-down deletions refused for good are crossed off, not kept (with the chat
    # sealed in them) to be tried at every start until Telegram's 48 hours run out.
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
    ):
        assert (await session.exec(select(PendingDeletion))).all() == []


async def test_a_reply_refused_for_good_is_not_sent_again(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    """A 400 on a receipt (the chat is gone) is given up at once: tried again it would
    hold that chat's replies for half a minute. The message itself is still stored and
    deleted from the chat."""
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    relative = standin.user(STRANGER + 2, language_code="en")
    standin.fail_next("sendMessage", status=400, retry_after=None, count=1000)
    async with running_bot(installation, standin):
        update = standin.send_text(relative, "at the station")
        await eventually(lambda: update["update_id"] in standin.confirmed_update_ids())
        await eventually(lambda: standin.calls.count("deleteMessages") >= 1)
        await asyncio.sleep(1.5)
        sent = standin.calls.count("sendMessage")
        assert sent <= 2  # the receipt and the follow-up, each tried once
        await asyncio.sleep(3.0)  # a retry would come after 1 s, 2 s, then 4 s
        assert standin.calls.count("sendMessage") == sent
    assert len(await installation.stored()) == 1
