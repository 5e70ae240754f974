"""The running bot against a database someone wrote to: a codebook meaning changed from
duress to check-in is not acted on and the admins are told once (no content); the audit
head reaches the admins at shutdown and is recorded beside the config, and a log cut
after it is caught. Each checkpoint is POSTed to the heartbeat URL (the head and nothing
else), and a monitor that fails does not keep it from the admins."""

from __future__ import annotations

import logging
import re
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy import select

from bot.standin import TelegramStandIn
from storage import audit
from storage.codebook import add_phrase
from storage.crypto import ServerKeys, SigningKey
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

            await standin.wait_confirmed([update["update_id"]], within=15)
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
            # The server kept the same head, outside the database.
            kept = installation.settings.config_dir / "audit_checkpoints"
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600
            recorded = audit.recorded_checkpoints(kept)
            assert [c.head for c in recorded] == [head]
            assert (await audit.verify(session, checkpoints=recorded)).seq == head.seq
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
            else:
                await conn.exec_driver_sql("DROP TRIGGER audit_events_append_only ON audit_events")
            await conn.execute(sa.text("DELETE FROM audit_events WHERE seq = :s"), {"s": head.seq})
        async with session_factory(engine)() as session:
            with pytest.raises(audit.AuditChainBroken, match="before the checkpoint"):
                await audit.verify(session, checkpoint=head)
            with pytest.raises(audit.AuditChainBroken, match="before the checkpoint of "):
                await audit.verify(session, checkpoints=recorded)


# --------------------------------------------------------------------------- the monitor


@pytest.fixture
async def monitor() -> AsyncIterator[tuple[str, list[bytes], list[str]]]:
    """A stand-in for an outside monitor (healthchecks.io): the bodies POSTed to it
    (audit checkpoints) and the paths of the GETs (the heartbeat)."""
    posts: list[bytes] = []
    pings: list[str] = []

    async def post(request: web.Request) -> web.Response:
        posts.append(await request.read())
        return web.Response(text="OK")

    async def ping(request: web.Request) -> web.Response:
        pings.append(request.path)
        return web.Response(text="OK")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="down")

    app = web.Application()
    app.router.add_post("/ping/{check}", post)
    app.router.add_get("/ping/{check}", ping)
    app.router.add_route("*", "/broken/{check}", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/ping/c0ffee", posts, pings
    await runner.cleanup()


async def _with_admin(
    tmp_path: Path, database: Database, standin: TelegramStandIn, url: str
) -> Installation:
    """An installation that checkpoints every second to the admin and to ``url``."""
    installation = await install(
        tmp_path / "server",
        standin=standin,
        database_url=database.url,
        extra=f'[alerts]\nheartbeat_url = "{url}"\n\n[audit]\ncheckpoint_every = "1s"\n',
    )
    server = ServerKeys(installation.settings.server_secret_bytes())
    async with (
        open_database(installation.settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        admin = await get_or_create_person(
            session, server=server, telegram_id=ADMIN, chat_id=ADMIN, now=utc_now()
        )
        session.add(RoleGrant(person_id=admin.id, role=Role.ADMIN))
    standin.user(ADMIN, language_code="en")
    return installation


def _checkpoints_to_admin(standin: TelegramStandIn) -> list[str]:
    """The SEQ:HASH of each checkpoint the admin received, in order."""
    found = []
    for message in standin.sent:
        if message.chat_id == ADMIN and (message.text or "").startswith("Audit checkpoint"):
            head = re.search(r"--checkpoint (\d+:[0-9a-f]{64})", message.text or "")
            assert head is not None, message.text
            found.append(head[1])
    return found


async def test_each_checkpoint_is_posted_to_the_monitor_with_nothing_else(
    tmp_path: Path,
    database: Database,
    standin: TelegramStandIn,
    monitor: tuple[str, list[bytes], list[str]],
) -> None:
    url, posts, _ = monitor
    installation = await _with_admin(tmp_path, database, standin, url)
    async with running_bot(installation, standin):
        await eventually(lambda: len(posts) >= 2)  # the job every [audit] checkpoint_every
        during = len(posts)
    await eventually(lambda: len(posts) > during)  # and the one at shutdown

    heads = _checkpoints_to_admin(standin)
    bodies = [p.decode("ascii") for p in posts]
    assert all(re.fullmatch(r"audit \d+:[0-9a-f]{64}", b) for b in bodies), bodies
    # What the admins received, the monitor received (a job's checkpoint may still be on
    # its way while the one at shutdown goes: compared as sets), and the server recorded.
    assert len(bodies) >= 3
    assert {b.removeprefix("audit ") for b in bodies} == set(heads)
    assert heads[-1] in {b.removeprefix("audit ") for b in bodies}
    recorded = audit.recorded_checkpoints(installation.settings.config_dir / "audit_checkpoints")
    assert {c.head.text() for c in recorded} == set(heads)
    assert len(recorded) >= len(heads)
    # Nothing else: no chat id, no token, no server secret, no group or person.
    secret = (installation.path / "server_secret").read_text().strip()
    for body in bodies:
        for leak in (str(ADMIN), standin.token, standin.token.split(":")[1], secret):
            assert leak not in body


@pytest.mark.parametrize("failure", ["refused", "HTTP 500"])
async def test_a_failing_monitor_does_not_stop_the_checkpoints_to_the_admins(
    tmp_path: Path,
    database: Database,
    standin: TelegramStandIn,
    monitor: tuple[str, list[bytes], list[str]],
    failure: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if failure == "refused":
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/ping/c0ffee"
    else:
        url, _, _ = monitor
        url = url.replace("/ping/", "/broken/")  # the monitor answers 500
    installation = await _with_admin(tmp_path, database, standin, url)
    caplog.set_level(logging.WARNING, logger="bot.integrity.jobs")
    async with running_bot(installation, standin):
        await eventually(lambda: len(_checkpoints_to_admin(standin)) >= 2)
        during = len(_checkpoints_to_admin(standin))
    assert len(_checkpoints_to_admin(standin)) > during  # the one at shutdown too
    recorded = audit.recorded_checkpoints(installation.settings.config_dir / "audit_checkpoints")
    assert {c.head.text() for c in recorded} == set(_checkpoints_to_admin(standin))
    said = "could not be reached" if failure == "refused" else "answered HTTP 500"
    assert any(said in r.getMessage() for r in caplog.records), caplog.text
    assert "c0ffee" not in caplog.text  # the URL is the monitor's secret
