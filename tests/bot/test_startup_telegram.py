"""`intake run` against a Telegram that refuses what the configuration asks at start
(a webhook address it will not deliver to) or that another process already polls
with the same token: one line and exit status 78 or 69, never a traceback or a loop
of 409 Conflict forever; and a webhook left set from webhook mode is taken down when
the mode is polling (#16)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from bot.app import serve
from bot.config import load_settings
from bot.standin import TelegramStandIn
from bot.startup import StartupFailure
from tests.bot.intake_harness import eventually, install
from tests.bot.test_startup import (
    EX_CONFIG,
    EX_UNAVAILABLE,
    assert_one_line_failure,
    config_of,
    free_port,
    run_intake,
    webhook_installation,
)
from tests.conftest import Database


async def test_a_webhook_address_telegram_refuses_is_one_line_with_status_78(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    public = "https://intake.example.org/hook"  # the stand-in delivers only to 127.0.0.1
    installation = await webhook_installation(
        tmp_path / "server", standin, database, public_url=public, port=free_port()
    )
    ran = await run_intake(config_of(installation), "run")
    assert_one_line_failure(
        ran, EX_CONFIG, standin.token, "refused the webhook", public, "[webhook] public_url"
    )
    assert "setWebhook" in standin.calls


async def test_a_webhook_telegram_cannot_take_now_is_a_startup_failure_with_status_69(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    port = free_port()
    installation = await webhook_installation(
        tmp_path / "server",
        standin,
        database,
        public_url=f"https://127.0.0.1:{port}/hook",
        port=port,
    )
    standin.fail_next("setWebhook", status=502)
    with pytest.raises(StartupFailure) as failed:
        await serve(load_settings(config_of(installation)), stop=asyncio.Event())
    assert failed.value.status == EX_UNAVAILABLE
    assert "cannot reach Telegram" in str(failed.value)
    assert standin.token.split(":")[1] not in str(failed.value)


async def test_the_webhook_start_line_names_the_listen_address_and_the_bot(
    tmp_path: Path,
    database: Database,
    standin: TelegramStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    installation = await webhook_installation(
        tmp_path / "server",
        standin,
        database,
        public_url=f"https://127.0.0.1:{port}/hook",
        port=port,
    )
    caplog.set_level(logging.INFO, logger="bot.app")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(load_settings(config_of(installation)), stop=stop))
    try:
        await eventually(lambda: standin.webhook_url.endswith("/hook") or task.done(), within=30)
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("started:")]
    kind = "SQLite" if database.backend == "sqlite" else "PostgreSQL"
    assert started == [
        f"started: webhook on 127.0.0.1:{port} as @{standin.bot_username}, "
        f"database {kind}, watching 0 groups"
    ]


async def test_polling_takes_down_a_webhook_left_set_and_says_so(
    tmp_path: Path,
    database: Database,
    standin: TelegramStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    installation = await install(tmp_path / "server", standin=standin, database_url=database.url)
    async with aiohttp.ClientSession() as session:
        url = f"{standin.base_url}{standin.token}/setWebhook"
        async with session.post(url, json={"url": "https://127.0.0.1:9/old"}) as resp:
            assert resp.status == 200
    caplog.set_level(logging.INFO, logger="bot.app")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(load_settings(config_of(installation)), stop=stop))
    try:
        person = standin.user(6_400_300_100, "Relative")
        standin.send_text(person, "taken in by polling")
        await eventually(
            lambda: any(m.chat_id == person.id for m in standin.sent) or task.done(), within=30
        )
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert standin.webhook_url == ""
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if "webhook" in m] == [
        "a webhook to 127.0.0.1 was set for this bot: deleted it, as polling needs"
    ]
    assert not [m for m in said if "conflict" in m.lower()]


async def test_a_second_poller_of_one_token_on_another_database_stops_with_status_69(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    first = await install(
        tmp_path / "first", standin=standin, database_url=f"sqlite:///{tmp_path}/first.db"
    )
    second = await install(
        tmp_path / "second", standin=standin, database_url=f"sqlite:///{tmp_path}/second.db"
    )
    stop = asyncio.Event()
    live = asyncio.create_task(serve(load_settings(config_of(first)), stop=stop))
    try:
        await eventually(lambda: "getUpdates" in standin.calls or live.done(), within=30)
        with pytest.raises(StartupFailure) as failed:
            await asyncio.wait_for(
                serve(load_settings(config_of(second)), stop=asyncio.Event(), conflict_limit=2),
                timeout=60,
            )
        assert failed.value.status == EX_UNAVAILABLE
        assert "another process polls this bot token" in str(failed.value)
        assert not live.done()
        # The first keeps polling: what is sent now reaches it.
        person = standin.user(6_400_300_200, "Relative")
        standin.send_text(person, "still taken in")
        await eventually(
            lambda: any(m.chat_id == person.id for m in standin.sent) or live.done(), within=30
        )
        assert not live.done()
    finally:
        stop.set()
        await asyncio.wait_for(live, timeout=30)
