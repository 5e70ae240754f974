"""A real bot (``bot.app.serve``) against the local Telegram stand-in, over HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.app import serve
from bot.config import Settings, load_settings
from bot.intake import BotApplication, Runtime
from bot.standin import TelegramStandIn
from bot.watch import Watchers
from storage.crypto import KemName, PrivateKey, ServerKeys, SigningKey
from storage.db import open_database, session_factory
from storage.messages import attachments_of, open_attachment, open_message
from storage.models import Message, Operator
from storage.operators import add_operator
from storage.sealing import Keyring
from storage.timeutil import utc_now
from storage.trust import Signers, sign, signers_path


async def eventually(condition: Callable[[], bool], *, within: float = 15.0) -> None:
    """Wait for something the bot does asynchronously (not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the bot did not get there in time")
        await asyncio.sleep(0.02)


@dataclass
class Installation:
    path: Path
    settings: Settings
    operator_key: PrivateKey

    async def stored(self) -> list[dict[str, Any]]:
        """Every stored message, opened with the operator's key, oldest first."""
        url = self.settings.database.url
        async with (
            open_database(url, migrate_to_head=False) as engine,
            session_factory(engine)() as session,
        ):
            keyring = await Keyring.for_key(session, self.operator_key)
            query = select(Message).order_by(Message.received_at, Message.version)
            opened = []
            for row in (await session.exec(query)).all():
                files = [
                    await open_attachment(session, keyring, a)
                    for a in await attachments_of(session, message=row)
                ]
                body = await open_message(session, keyring, row)
                opened.append({"row": row, "body": body, "files": files})
            return opened


def write_installation(
    folder: Path,
    *,
    standin: TelegramStandIn,
    database_url: str,
    extra: str = "",
    question_ttl: str = "1s",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(standin.token)
    (folder / "token").chmod(0o600)  # `intake run` refuses secrets others may read
    secret = base64.urlsafe_b64encode(ServerKeys.generate_secret()).decode()
    (folder / "server_secret").write_text(secret)
    (folder / "server_secret").chmod(0o600)  # `intake run` refuses secrets others may read
    config = folder / "config.toml"
    config.write_text(
        f"""
[telegram]
token = "file:token"
base_url = "{standin.base_url}"
file_base_url = "{standin.file_base_url}"

[database]
url = "{database_url}"

[keys]
server_secret = "file:server_secret"
kem = "X25519"
allow_classical = true

[intake]
receipt_ttl = "1s"
question_ttl = "{question_ttl}"
max_attachment_mb = 1
{extra}
"""
    )
    return config


async def install(
    folder: Path,
    *,
    standin: TelegramStandIn,
    database_url: str,
    extra: str = "",
    question_ttl: str = "1s",
) -> Installation:
    config = write_installation(
        folder, standin=standin, database_url=database_url, extra=extra, question_ttl=question_ttl
    )
    settings = load_settings(config)
    key = PrivateKey.generate(KemName.X25519)
    async with (
        open_database(settings.database.url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        await add_operator(
            session,
            server=ServerKeys(settings.server_secret_bytes()),
            public_key=key.public_key(),
            name="Operator",
            now=utc_now(),
        )
    return Installation(path=folder, settings=settings, operator_key=key)


async def sign_operator(installation: Installation) -> SigningKey:
    """What `intake operator sign` leaves: the operator's signing key pinned in
    ``operator_signers`` beside the config, and their row signed with it."""
    signing = SigningKey.generate()
    signers = Signers()
    signers.pin(installation.operator_key.public_key().fingerprint(), signing.verify_key())
    signers.save(signers_path(installation.settings.config_dir))
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        operator = (await session.exec(select(Operator))).one()
        sign(operator, signing)
        session.add(operator)
    return signing


@contextlib.asynccontextmanager
async def running_bot(
    installation: Installation, standin: TelegramStandIn
) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(serve(installation.settings, stop=stop))
    try:
        await eventually(lambda: "getUpdates" in standin.calls or task.done())
        if task.done():
            task.result()
        yield task
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


@dataclass
class RunningBot:
    """A bot running in this process, its Application at hand once the engine runs."""

    application: BotApplication

    @property
    def runtime(self) -> Runtime:
        runtime = self.application.bot_data["runtime"]
        assert isinstance(runtime, Runtime)
        return runtime

    @property
    def watchers(self) -> Watchers:
        watchers = self.application.bot_data["watchers"]
        assert isinstance(watchers, Watchers)
        return watchers
