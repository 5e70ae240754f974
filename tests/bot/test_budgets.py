"""Disk budgets (issue #14): a stranger's attachments per day, and the installation's. Past
either, files are kept as details only; the admins hear of the installation's once."""

from __future__ import annotations

import os
from pathlib import Path

from bot.standin import SimUser, TelegramStandIn
from storage.crypto import ServerKeys
from storage.db import open_database, session_factory
from storage.models import Role, RoleGrant
from storage.people import get_or_create_person
from storage.timeutil import utc_now
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database

STRANGER = 6_800_000_001
RELATIVE = 6_800_000_002
ADMIN = 6_800_000_003
FILE = 300 * 1024  # sealed, each pads to half a megabyte


async def _grant(installation: Installation, telegram_id: int, role: Role) -> None:
    server = ServerKeys(installation.settings.server_secret_bytes())
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        person = await get_or_create_person(
            session, server=server, telegram_id=telegram_id, chat_id=telegram_id, now=utc_now()
        )
        session.add(RoleGrant(person_id=person.id, role=role))


async def _send_files(standin: TelegramStandIn, user: SimUser, count: int) -> None:
    for n in range(count):
        update = standin.send_document(
            user, os.urandom(FILE), file_name=f"scan-{n}.jpg", mime_type="image/jpeg"
        )

        await standin.wait_confirmed([update["update_id"]], within=15)


async def _kept(installation: Installation) -> list[bool]:
    """For each stored file, oldest first: whether its content was kept (else its
    details only)."""
    stored = await installation.stored()
    return [f.content is not None for s in stored for f in s["files"]]


async def test_a_strangers_files_beyond_the_daily_budget_are_kept_as_details(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra="stranger_attachment_mb_per_day = 1",
    )
    await _grant(installation, RELATIVE, Role.RELATIVE)
    stranger = standin.user(STRANGER, language_code="en")
    relative = standin.user(RELATIVE, language_code="en")
    async with running_bot(installation, standin):
        await _send_files(standin, stranger, 3)
        await _send_files(standin, relative, 3)
    kept = await _kept(installation)
    assert kept == [True, True, False, True, True, True]  # the relative's are not limited
    assert len(await installation.stored()) == 6  # every message is kept


async def test_the_installations_budget_keeps_details_and_tells_the_admins_once(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra="attachments_budget_mb = 1",
    )
    await _grant(installation, RELATIVE, Role.RELATIVE)
    await _grant(installation, ADMIN, Role.ADMIN)
    relative = standin.user(RELATIVE, language_code="en")
    standin.user(ADMIN, language_code="en")
    async with running_bot(installation, standin):
        await _send_files(standin, relative, 4)
        await eventually(lambda: any(m.chat_id == ADMIN for m in standin.sent), within=30)
    assert await _kept(installation) == [True, True, False, False]
    notes = [
        m.text or ""
        for m in standin.sent
        if m.chat_id == ADMIN and not (m.text or "").startswith("Audit checkpoint")
    ]
    assert len(notes) == 1
    assert "1 MB of attachments at most" in notes[0]
