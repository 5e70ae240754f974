"""The running bot against a database someone wrote to: a codebook meaning changed from
duress to check-in is not acted on and the admins are told once (no content); the audit
head reaches the admins at shutdown, and a log cut after it is caught."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.standin import TelegramStandIn
from storage import audit
from storage.codebook import add_phrase
from storage.crypto import SigningKey
from storage.db import open_database, session_factory
from storage.groups import create_group
from storage.models import AuditEvent, CheckinEvent, Operator, Role, RoleGrant, Signal
from storage.people import create_invite, get_or_create_person, redeem_invite
from storage.timeutil import utc_now
from storage.trust import Signers, bind_installation, sign, signers_path
from tests.bot.intake_harness import Installation, eventually, install, running_bot
from tests.conftest import Database
from tests.storage.helpers import SCHEDULE

ADMIN = 6_700_000_001
RELATIVE = 6_700_000_002
DURESS = "grandmother's garden needs rain"


async def _signed_installation(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> tuple[Installation, str]:
    """An installation whose operator, group and duress phrase are signed, with an
    admin and an enrolled relative; the id of the duress entry."""
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    settings = installation.settings
    signing = SigningKey.generate()
    signers = Signers()
    signers.pin(installation.operator_key.public_key().fingerprint(), signing.verify_key())
    signers.save(signers_path(settings.config_dir))
    now = utc_now()
    async with open_database(settings.database.url) as engine:
        server = bind_installation(
            engine, secret=settings.server_secret_bytes(), config_dir=settings.config_dir
        ).server
        async with session_factory(engine)() as session, session.begin():
            operator = (await session.exec(select(Operator))).one()
            sign(operator, signing)
            session.add(operator)
            group = await create_group(
                session,
                codename="PINE-7",
                schedule=SCHEDULE,
                kem=installation.operator_key.kem,
                now=now,
                signing=signing,
            )
            entry = await add_phrase(
                session,
                server=server,
                group=group,
                phrase=DURESS,
                means=Signal.DURESS,
                now=now,
                signing=signing,
            )
            admin = await get_or_create_person(
                session, server=server, telegram_id=ADMIN, chat_id=ADMIN, now=now
            )
            session.add(RoleGrant(person_id=admin.id, role=Role.ADMIN))
            relative = await get_or_create_person(
                session, server=server, telegram_id=RELATIVE, chat_id=RELATIVE, now=now
            )
            _, code = await create_invite(
                session, server=server, role=Role.RELATIVE, group=group, ttl=SCHEDULE.grace, now=now
            )
            await redeem_invite(session, server=server, code=code, person=relative, now=now)
    return installation, entry.id.hex


async def test_a_changed_meaning_is_not_acted_on_and_admins_are_told_once(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    installation, entry_id = await _signed_installation(tmp_path, database, standin)
    url = installation.settings.database.url
    async with open_database(url, migrate_to_head=False) as engine, engine.begin() as conn:
        # The intruder turns the duress phrase into a check-in.
        await conn.execute(
            sa.text("UPDATE codebook_entries SET means = 'checkin'"),
        )
    relative = standin.user(RELATIVE, language_code="en")
    standin.user(ADMIN, language_code="en")
    async with running_bot(installation, standin):
        for _ in range(2):
            update = standin.send_text(relative, f"Mum says: {DURESS}")
            await eventually(lambda u=update: u["update_id"] in standin.confirmed_update_ids())
        await eventually(
            lambda: any("Integrity warning" in (m.text or "") for m in standin.sent), within=30
        )
    to_admin = [m.text or "" for m in standin.sent if m.chat_id == ADMIN]
    warnings = [t for t in to_admin if "Integrity warning" in t]
    assert len(warnings) == 1  # once, though the phrase came twice
    assert f"codebook_entries ({entry_id[:12]})" in warnings[0]
    assert DURESS not in warnings[0]
    assert "garden" not in warnings[0]

    async with open_database(url, migrate_to_head=False) as engine:
        bind_installation(
            engine,
            secret=installation.settings.server_secret_bytes(),
            config_dir=installation.settings.config_dir,
        )
        async with session_factory(engine)() as session:
            # Nothing was recorded from the phrase: neither the intruder's check-in
            # nor anything else.
            assert (await session.exec(select(CheckinEvent))).all() == []
            actions = (await session.exec(select(AuditEvent.action))).all()
            assert actions.count("integrity.rejected") == 1

            # The shutdown checkpoint reached the admin; it verifies now, and a cut
            # after it is caught.
            [checkpoint] = [t for t in to_admin if t.startswith("Audit checkpoint")]
            found = re.search(r"--checkpoint (\d+):([0-9a-f]{64})", checkpoint)
            assert found is not None
            head = audit.ChainHead(int(found[1]), bytes.fromhex(found[2]))
            assert head.seq >= 1
            assert (await audit.verify(session, checkpoint=head)).seq == head.seq
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
            else:
                await conn.exec_driver_sql("DROP TRIGGER audit_events_append_only ON audit_events")
            await conn.execute(sa.text("DELETE FROM audit_events WHERE seq = :s"), {"s": head.seq})
        async with session_factory(engine)() as session:
            with pytest.raises(audit.AuditChainBroken, match="before the checkpoint"):
                await audit.verify(session, checkpoint=head)
