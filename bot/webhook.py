"""Webhook mode: Telegram POSTs each update; the answer is 200 only after the commit.

Any other answer makes Telegram deliver the update again later, which is what
a failed commit needs. A request without the right secret token is refused
before anything is read into the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update

from bot.config import Settings
from bot.intake import BotApplication, Intake, Runtime
from bot.received import unreadable_update
from bot.startup import EX_UNAVAILABLE, StartupFailure
from storage.crypto import digests_equal

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
HEALTH_PATH = "/healthz"
MAX_BODY = 1024 * 1024  # an update is JSON metadata; files are fetched separately
# Telegram sends a whole update at once. A connection idle, or still sending its
# headers, after HEADER_TIMEOUT is closed (aiohttp's keep-alive timer covers both; its
# default is an hour, which let 300 slow connections sit for minutes), and a body not
# in after BODY_TIMEOUT is refused: slow clients cannot hold the bot's sockets.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0


def make_webhook_app(
    *,
    path: str,
    secret_token: str,
    application: BotApplication,
    intake: Intake,
    engine: AsyncEngine | None = None,
) -> web.Application:
    expected = secret_token.encode()

    async def healthz(_request: web.Request) -> web.Response:
        # For a load balancer or a monitor: 200 when the database answers, and no
        # details either way (the listener may face the internet).
        if engine is None:
            return web.Response(status=200, text="ok")
        try:
            async with asyncio.timeout(5), engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return web.Response(status=503, text="unavailable")
        return web.Response(status=200, text="ok")

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        # Constant time: the comparison must not tell an attacker how much they got right.
        if not digests_equal(given, expected):
            return web.Response(status=403, text="forbidden")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await request.read()
        except TimeoutError:
            return web.Response(status=408, text="too slow")
        try:
            data = json.loads(body)
            # Telegram's update_id is an integer; anything else is not an update.
            if not isinstance(data, dict) or type(data.get("update_id")) is not int:
                return web.Response(status=400, text="not an update")
        except Exception:  # any shape of garbage
            return web.Response(status=400, text="not an update")
        try:
            update = Update.de_json(data, application.bot)
        except Exception:  # python-telegram-bot raises many kinds
            # A private message of a shape the library refuses is still sealed, as raw JSON.
            stand_in = unreadable_update(data)
            if stand_in is None:
                return web.Response(status=400, text="not an update")
            stand_in.set_bot(application.bot)
            update = stand_in
        if not isinstance(update, Update):
            return web.Response(status=400, text="not an update")
        try:
            await intake.handle(update)
        except Exception as exc:
            log.error(
                "could not store update %d (%s); Telegram will retry",
                update.update_id,
                type(exc).__name__,
            )
            return web.Response(status=503, text="try again")
        return web.Response(status=200, text="ok")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(path, receive)
    if path != HEALTH_PATH:
        app.router.add_get(HEALTH_PATH, healthz)
    return app


def webhook_path(settings: Settings) -> str:
    public = settings.webhook.public_url or ""
    return urlsplit(public).path or "/"


@contextlib.asynccontextmanager
async def listening(
    settings: Settings, application: BotApplication, intake: Intake, runtime: Runtime
) -> AsyncIterator[str]:
    """Bind ``[webhook] listen:port`` and serve updates and ``/healthz`` there; yields
    the address. A port that cannot be bound is a ``StartupFailure`` raised before
    anything else is done, so a bot already running there keeps its webhook."""
    secret = settings.webhook.secret_token
    if secret is None or settings.webhook.public_url is None:
        raise RuntimeError(
            "webhook mode needs [webhook] public_url and secret_token"
        )  # checked at load
    app = make_webhook_app(
        path=webhook_path(settings),
        secret_token=secret.get_secret_value(),
        application=application,
        intake=intake,
        engine=runtime.engine,
    )
    # Access lines would carry the path only, but stay quiet.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=HEADER_TIMEOUT)
    await runner.setup()
    listen, port = settings.webhook.listen, settings.webhook.port
    address = f"[{listen}]:{port}" if ":" in listen else f"{listen}:{port}"
    try:
        try:
            await web.TCPSite(runner, listen, port).start()
        except OSError as exc:
            raise StartupFailure(
                f"cannot listen on {address} for the webhook: {exc.strerror or type(exc).__name__}",
                status=EX_UNAVAILABLE,
            ) from None
        yield address
    finally:
        await runner.cleanup()


async def set_webhook(settings: Settings, application: BotApplication) -> None:
    """Point Telegram at ``[webhook] public_url`` (once the backlog is drained)."""
    secret = settings.webhook.secret_token
    if secret is None or settings.webhook.public_url is None:
        raise RuntimeError("webhook mode needs [webhook] public_url and secret_token")
    await application.bot.set_webhook(
        settings.webhook.public_url,
        secret_token=secret.get_secret_value(),
        allowed_updates=Update.ALL_TYPES,
        drop_pending_updates=False,
    )
