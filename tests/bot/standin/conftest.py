"""Fixtures: a started stand-in on a free port, and the real python-telegram-bot client."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.standin import TelegramStandIn

from .apispec import API_JSON, ApiSpec


@pytest.fixture
async def standin() -> AsyncIterator[TelegramStandIn]:
    server = TelegramStandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    assert server.errors == [], "the stand-in failed internally"


# one TLS context for every client: building one per client (loading the CA bundle) is most
# of a test's setup time, and the stand-in speaks plain HTTP on 127.0.0.1 anyway
_TLS = ssl.create_default_context()


def make_bot(standin: TelegramStandIn, read_timeout: float = 5.0) -> Bot:
    def request() -> HTTPXRequest:
        return HTTPXRequest(
            read_timeout=read_timeout, connect_timeout=2.0, httpx_kwargs={"verify": _TLS}
        )

    return Bot(
        standin.token,
        base_url=standin.base_url,
        base_file_url=standin.file_base_url,
        request=request(),
        get_updates_request=request(),
    )


@pytest.fixture
async def bot(standin: TelegramStandIn) -> AsyncIterator[Bot]:
    async with make_bot(standin) as client:
        yield client


@pytest.fixture(scope="session")
def api_spec() -> ApiSpec:
    if not API_JSON.exists():
        pytest.skip(
            "no ../shared/telegram-bot-api/api.json in this checkout: "
            "the stand-in's shapes are checked where it exists"
        )
    return ApiSpec.load()
