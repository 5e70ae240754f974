"""The command-line runner, and what the stand-in writes to the log (nothing sensitive)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import httpx
import pytest
from telegram import Bot

from bot.standin import TelegramStandIn, origin_hidden_user

REPO = Path(__file__).parents[3]


async def test_the_stand_in_logs_no_text_no_identifier_and_no_token(
    standin: TelegramStandIn, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary_text = "CANARY-밀-4711"
    alice = standin.user(918273645, "CanaryName", username="canary_user")
    standin.send_forward(alice, canary_text, origin=origin_hidden_user("CanaryName", 1))
    standin.send_document(alice, b"CANARY-BYTES", file_name="canary.txt", mime_type="text/plain")
    updates = await bot.get_updates()
    document = updates[1].message.document if updates[1].message else None
    assert document is not None
    await (await bot.get_file(document.file_id)).download_as_bytearray()
    await bot.send_message(alice.id, canary_text)
    standin.fail_next("sendMessage", status=500)
    with pytest.raises(Exception, match="Internal Server Error"):
        await bot.send_message(alice.id, canary_text)
    await bot.get_updates(offset=updates[-1].update_id + 1)
    mine = [r for r in caplog.records if r.name.startswith(("bot.standin", "aiohttp"))]
    assert any(r.name == "bot.standin" for r in mine)
    for record in mine:
        line = record.getMessage()
        for secret in (canary_text, "CanaryName", "canary", str(alice.id), standin.token):
            assert secret not in line, (record.name, line)
        assert record.levelno <= logging.DEBUG or record.name != "bot.standin"


async def start_runner(*options: str) -> asyncio.subprocess.Process:
    """``python -m bot.standin --port 0``, its stdin and stdout piped to the test."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bot.standin", "--port", "0", *options),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_the_runner_prints_its_urls_and_sends_typed_lines() -> None:
    proc = await start_runner()
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or "Ctrl-C stops." not in lines[-1]:
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 10)).decode())
        values = dict(line.split(":", 1) for line in lines[:3])
        base_url = values["base_url"].strip()
        file_url = values["file_base_url"].strip()
        token = values["token"].strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/bot")
        assert file_url == base_url.replace("/bot", "/file/bot")
        proc.stdin.write(b"hello from a person\n")
        await proc.stdin.drain()
        async with Bot(token, base_url=base_url) as bot:
            updates = await bot.get_updates(timeout=5)
            assert updates[0].message is not None
            assert updates[0].message.text == "hello from a person"
            await bot.send_message(updates[0].message.chat.id, "Received")
        echoed = await asyncio.wait_for(proc.stdout.readline(), 5)
        assert b"Received" in echoed
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 10)


async def test_the_stand_in_serves_other_clients_than_ptb(standin: TelegramStandIn) -> None:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"{standin.base_url}{standin.token}/getMe")
        missing = await client.get(f"http://127.0.0.1:{standin.port}/nothing")
    assert reply.json()["result"]["username"] == standin.bot_username
    assert missing.status_code == 404


async def test_ctrl_c_stops_the_runner_even_when_it_was_started_with_sigint_ignored() -> None:
    """A script that starts the runner in the background (``cmd &`` without job control)
    hands it SIGINT ignored; the banner's "Ctrl-C stops." holds all the same."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited across exec
    try:
        proc = await start_runner("--no-state")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert proc.stdout is not None
    try:
        line = b""
        while b"Ctrl-C stops." not in line:
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line, "the runner ended before it was ready"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
