"""Webhook mode: the stand-in POSTs updates to the bot's endpoint, which answers 200 only
once the update is committed and refuses anything without the right secret token.

``[webhook] public_url`` must be https:// (Telegram's rule); in production a TLS-terminating
reverse proxy forwards it to ``listen:port`` in plain HTTP. The stand-in speaks plain HTTP
only, so once the bot has set its webhook the test plays that proxy: it points the
stand-in's webhook at ``http://listen:port/path`` with the same secret token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app import serve
from bot.config import load_settings
from bot.intake import BotApplication
from bot.standin import TelegramStandIn
from storage.db import open_database
from tests.bot.intake_harness import Installation, eventually, install
from tests.conftest import Database

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET = "wh-secret_0123456789abcdefABCDEF"
HOOK_PATH = "/telegram-hook"
RELATIVE = 6_400_100_200
MALLORY = 6_400_666_666


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Webhook:
    installation: Installation
    port: int

    @property
    def public_url(self) -> str:
        return f"https://127.0.0.1:{self.port}{HOOK_PATH}"

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HOOK_PATH}"

    @property
    def url(self) -> str:
        return self.installation.settings.database.url


@pytest.fixture
async def webhook(tmp_path: Path, database: Database, standin: TelegramStandIn) -> Webhook:
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "webhook_secret").write_text(SECRET + "\n")
    port = free_port()
    installation = await install(
        folder,
        standin=standin,
        database_url=database.url,
        extra=f"""
[webhook]
listen = "127.0.0.1"
port = {port}
public_url = "https://127.0.0.1:{port}{HOOK_PATH}"
secret_token = "file:webhook_secret"
""",
    )
    # [telegram] is written by the harness; webhook mode goes into that table.
    config = folder / "config.toml"
    text = config.read_text()
    assert text.count("[telegram]\n") == 1
    config.write_text(text.replace("[telegram]\n", '[telegram]\nmode = "webhook"\n'))
    installation.settings = load_settings(config)
    assert installation.settings.telegram.mode == "webhook"
    assert installation.settings.webhook.secret_token is not None
    assert installation.settings.webhook.secret_token.get_secret_value() == SECRET
    return Webhook(installation, port)


async def call_standin(standin: TelegramStandIn, method: str, **params: Any) -> Any:
    """A Bot API call to the stand-in, as the test (not the bot) makes it."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{standin.base_url}{standin.token}/{method}", json=params) as resp,
    ):
        body = await resp.json()
    assert body["ok"], body
    return body["result"]


async def point_standin_at_listener(standin: TelegramStandIn, webhook: Webhook) -> None:
    """Play the TLS proxy: Telegram's POSTs to public_url reach listen:port."""
    await call_standin(standin, "setWebhook", url=webhook.local_url, secret_token=SECRET)


@contextlib.asynccontextmanager
async def webhook_bot(
    standin: TelegramStandIn,
    webhook: Webhook,
    *,
    after_drain: Callable[[BotApplication], Awaitable[None]] | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(webhook.installation.settings, stop=stop, after_drain=after_drain)
    )
    try:
        # The bot sets its webhook (to the public URL) once it listens.
        await eventually(
            lambda: standin.webhook_url == webhook.public_url or task.done(), within=30
        )
        if task.done():
            task.result()
        await point_standin_at_listener(standin, webhook)
        yield task
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


async def post(url: str, body: bytes, *, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        await resp.read()
        return resp.status


@dataclass(frozen=True)
class Stored:
    message_update_ids: list[int]
    processed: set[int]


async def stored(url: str) -> Stored:
    async with open_database(url, migrate_to_head=False) as engine, engine.connect() as conn:
        messages = (await conn.execute(sa.text("SELECT update_id FROM messages"))).scalars()
        marks = (await conn.execute(sa.text("SELECT update_id FROM processed_updates"))).scalars()
        return Stored([int(u) for u in messages], {int(u) for u in marks})


def forged_update(update_id: int, text: str) -> dict[str, Any]:
    """A well-formed update, as Telegram would POST it, that the stand-in never queued."""
    user = {"id": MALLORY, "is_bot": False, "first_name": "Mallory", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "from": user,
            "chat": {"id": MALLORY, "type": "private", "first_name": "Mallory"},
            "date": int(time.time()),
            "text": text,
        },
    }


# ------------------------------------------------------------------------------- delivery


async def test_healthz_answers_200_with_no_details_while_the_database_answers(
    standin: TelegramStandIn, webhook: Webhook
) -> None:
    async with (
        webhook_bot(standin, webhook),
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{webhook.port}/healthz") as resp,
    ):
        assert resp.status == 200
        assert await resp.text() == "ok"


async def test_the_standin_delivers_to_the_webhook_and_each_update_is_stored_once(
    standin: TelegramStandIn, webhook: Webhook
) -> None:
    me = standin.user(RELATIVE, language_code="en")
    traveller = standin.user(6_400_999_001, "Traveller")
    async with webhook_bot(standin, webhook):
        assert standin.webhook_url == webhook.local_url
        sent = [
            standin.send_text(me, "Reached the river"),
            standin.send_forward(
                me, "We are fine", origin=standin.origin_user(traveller, int(time.time()) - 600)
            ),
            standin.send_text(me, "Crossing tonight"),
        ]
        ids = [int(u["update_id"]) for u in sent]
        await standin.wait_confirmed(ids, within=30)
        # Receipts show the reply handlers ran after the commit.
        await eventually(
            lambda: sum(1 for m in standin.sent if m.chat_id == RELATIVE and m.text) >= len(ids)
        )
        assert "getUpdates" not in standin.calls[standin.calls.index("setWebhook") :]
    assert standin.pending_updates == []
    after = await stored(webhook.url)
    assert sorted(after.message_update_ids) == ids
    assert set(ids) <= after.processed
    texts = [s["body"]["text"] for s in await webhook.installation.stored()]
    assert texts == ["Reached the river", "We are fine", "Crossing tonight"]


async def test_updates_queued_before_start_are_drained_although_the_webhook_is_set(
    standin: TelegramStandIn, webhook: Webhook
) -> None:
    # A webhook left set by the previous run; the bot is down, so deliveries fail.
    await point_standin_at_listener(standin, webhook)
    me = standin.user(RELATIVE, language_code="en")
    ids = [int(standin.send_text(me, f"while you were away {n}")["update_id"]) for n in range(5)]
    await eventually(lambda: standin.webhook_deliveries >= 1)
    assert standin.confirmed_update_ids() == set()

    in_hook: list[tuple[str, list[int], int]] = []

    async def after_drain(application: BotApplication) -> None:
        url, pending = standin.webhook_url, len(standin.pending_updates)
        in_hook.append((url, (await stored(webhook.url)).message_update_ids, pending))

    async with webhook_bot(standin, webhook, after_drain=after_drain):
        assert len(in_hook) == 1
        webhook_url_in_hook, stored_in_hook, pending_in_hook = in_hook[0]
        # serve took the webhook down, drained by getUpdates, and only then set it again.
        assert webhook_url_in_hook == ""
        assert sorted(stored_in_hook) == ids
        assert pending_in_hook == 0
        assert standin.confirmed_update_ids() >= set(ids)
        # ...and it listens again afterwards.
        live = standin.send_text(me, "and now?")
        await standin.wait_confirmed([live["update_id"]], within=30)
    after = await stored(webhook.url)
    assert sorted(after.message_update_ids) == [*ids, live["update_id"]]


# ---------------------------------------------------------------------------- refusals


async def test_a_missing_or_wrong_secret_token_is_refused_and_nothing_is_stored(
    standin: TelegramStandIn, webhook: Webhook
) -> None:
    standin.user(MALLORY, "Mallory", language_code="en")
    update = forged_update(990_000_001, "forged: all is well")
    body = json.dumps(update).encode()
    async with webhook_bot(standin, webhook):
        sent_before = len(standin.sent)
        statuses = {
            "no header": await post(webhook.local_url, body, secret=None),
            "empty": await post(webhook.local_url, body, secret=""),
            "wrong, same length": await post(webhook.local_url, body, secret="x" * len(SECRET)),
            "a prefix": await post(webhook.local_url, body, secret=SECRET[:-1]),
            "longer": await post(webhook.local_url, body, secret=SECRET + "0"),
            "other case": await post(webhook.local_url, body, secret=SECRET.upper()),
        }
        assert statuses == dict.fromkeys(statuses, 403)
        assert len(standin.sent) == sent_before, "the bot answered a refused update"
        refused = await stored(webhook.url)
        assert refused.message_update_ids == []
        assert 990_000_001 not in refused.processed

        # The same update with the right secret is taken in (so the refusals above were
        # about the secret), and a second delivery of it is not stored again.
        assert await post(webhook.local_url, body, secret=SECRET) == 200
        assert await post(webhook.local_url, body, secret=SECRET) == 200
    accepted = await stored(webhook.url)
    assert accepted.message_update_ids == [990_000_001]
    assert 990_000_001 in accepted.processed


MALFORMED: dict[str, bytes] = {
    "not JSON": b"all is well",
    "cut short": b'{"update_id": 990000002, "message": {',
    "JSON null": b"null",
    "a list": b"[]",
    "a number": b"42",
    "a string": b'"update"',
    "an empty object": b"{}",
    "no update_id": b'{"message": {"message_id": 1}}',
    # update_id is an Integer in the Bot API; anything else is not an update.
    "a text update_id": b'{"update_id": "990000005"}',
    "a fractional update_id": b'{"update_id": 990000006.5}',
    "a boolean update_id": b'{"update_id": true}',
}


async def test_a_malformed_body_gets_400_and_nothing_is_stored(
    standin: TelegramStandIn, webhook: Webhook
) -> None:
    async with webhook_bot(standin, webhook):
        statuses = {
            name: await post(webhook.local_url, body, secret=SECRET)
            for name, body in MALFORMED.items()
        }
        # The endpoint still works after all that.
        standin.user(MALLORY, "Mallory", language_code="en")
        good = json.dumps(forged_update(990_000_009, "fine")).encode()
        assert await post(webhook.local_url, good, secret=SECRET) == 200
    assert statuses == dict.fromkeys(MALFORMED, 400)
    after = await stored(webhook.url)
    assert after.message_update_ids == [990_000_009]
    assert after.processed == {990_000_009}


async def test_an_update_the_library_refuses_is_sealed_raw_and_receipted_where_it_can_be(
    standin: TelegramStandIn, webhook: Webhook
) -> None:
    """An update (by Telegram: the secret is right) that python-telegram-bot cannot parse
    is never answered 400 and lost: it is sealed as it came, with no sender (issue #14),
    and its private chat, where that can be read, gets the receipt."""
    no_date = forged_update(990_000_010, "no date here")
    del no_date["message"]["date"]
    bodies = {
        990_000_003: b'{"update_id": 990000003, "message": 5}',
        990_000_004: b'{"update_id": 990000004, "message": {"text": "hi"}}',
        990_000_010: json.dumps(no_date).encode(),
    }
    standin.user(MALLORY, "Mallory", language_code="en")
    async with webhook_bot(standin, webhook):
        statuses = {
            update_id: await post(webhook.local_url, body, secret=SECRET)
            for update_id, body in bodies.items()
        }
        await eventually(
            lambda: any(
                c.chat_id == MALLORY and c.method == "sendMessage" for c in standin.chat_calls
            )
        )
    assert statuses == dict.fromkeys(bodies, 200)
    after = await stored(webhook.url)
    assert sorted(after.message_update_ids) == sorted(bodies)
    assert set(bodies) <= after.processed


# --------------------------------------------------------------------- 200 after commit


@contextlib.asynccontextmanager
async def writes_refused(database: Database) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """Hold the database's write lock from another connection until the block ends; yields
    a counter that reads through that same connection."""
    if database.backend == "sqlite":
        assert database.path is not None
        lock = sqlite3.connect(database.path, isolation_level=None, timeout=0)
        try:
            for _ in range(200):  # the bot may be writing right now: wait, without blocking
                try:
                    lock.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("could not take the write lock")

            async def count_sqlite(query: str) -> int:
                return int(lock.execute(query).fetchone()[0])

            yield count_sqlite
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        return
    async with open_database(database.url, migrate_to_head=False) as engine:
        conn: AsyncConnection = await engine.connect()
        try:
            await conn.begin()
            # Reads go on; every insert into these tables waits for this transaction.
            await conn.exec_driver_sql(
                "LOCK TABLE messages, processed_updates, people IN EXCLUSIVE MODE"
            )

            async def count_pg(query: str) -> int:
                return int((await conn.exec_driver_sql(query)).scalar_one())

            yield count_pg
        finally:
            await conn.rollback()
            await conn.close()


async def test_the_webhook_answers_200_only_after_the_commit(
    standin: TelegramStandIn, webhook: Webhook, database: Database
) -> None:
    me = standin.user(RELATIVE, language_code="en")
    async with webhook_bot(standin, webhook):
        first = standin.send_text(me, "before the lock")
        await standin.wait_confirmed([first["update_id"]], within=30)
        update_id = None
        async with writes_refused(database) as count:
            deliveries = standin.webhook_deliveries
            update = standin.send_text(me, "while the database refuses writes")
            update_id = int(update["update_id"])
            # Telegram gets no 200 while nothing can be committed, so it keeps trying.
            await standin.wait_for(lambda: standin.webhook_deliveries >= deliveries + 2, within=60)
            assert update_id not in standin.confirmed_update_ids()
            where = f"update_id = {update_id}"
            assert await count(f"SELECT count(*) FROM processed_updates WHERE {where}") == 0
            assert await count(f"SELECT count(*) FROM messages WHERE {where}") == 0
        # Writes are possible again: the next delivery is committed, then answered 200.
        await standin.wait_confirmed([update_id], within=60)
        assert standin.pending_updates == []
    after = await stored(webhook.url)
    assert sorted(after.message_update_ids) == [first["update_id"], update_id]
    assert update_id in after.processed


async def test_slow_or_idle_connections_are_closed_and_a_slow_body_refused(
    standin: TelegramStandIn, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import webhook as webhook_module

    monkeypatch.setattr(webhook_module, "HEADER_TIMEOUT", 1.0)
    monkeypatch.setattr(webhook_module, "BODY_TIMEOUT", 1.0)
    standin.user(MALLORY, "Mallory", language_code="en")
    update = json.dumps(forged_update(990_000_101, "slow")).encode()
    async with webhook_bot(standin, webhook):
        started = time.monotonic()
        idle = [await asyncio.open_connection("127.0.0.1", webhook.port) for _ in range(50)]
        half_headers = [await asyncio.open_connection("127.0.0.1", webhook.port) for _ in range(50)]
        for _, writer in half_headers:
            writer.write(f"POST {HOOK_PATH} HTTP/1.1\r\nHost: x\r\n".encode())
        slow_body_reader, slow_body = await asyncio.open_connection("127.0.0.1", webhook.port)
        slow_body.write(
            (
                f"POST {HOOK_PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(update)}\r\n\r\n"
            ).encode()
            + update[:10]
        )
        closed = await asyncio.gather(
            *(asyncio.wait_for(reader.read(), 30) for reader, _ in idle + half_headers)
        )
        answer = await asyncio.wait_for(slow_body_reader.read(), 30)
        # Generous bound on a shared machine: the timeouts are 1 s.
        assert time.monotonic() - started < 25
        assert all(data == b"" for data in closed)  # closed without an answer
        assert answer.startswith(b"HTTP/1.1 408")
        # A whole update in one go is still taken in.
        assert await post(webhook.local_url, update, secret=SECRET) == 200
