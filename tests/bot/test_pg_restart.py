"""PostgreSQL restarted for real (not a proxy that cuts connections): the test's own
throwaway cluster (tests/bot/pg_cluster.py) is stopped and started again while the bot
takes in a burst, and while its deadline engine writes flips: nothing confirmed is lost,
nothing is stored twice, no flip is lost or doubled and every alert goes out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.standin import TelegramStandIn
from storage.db import open_database
from tests.bot.pg_cluster import throwaway_cluster
from tests.bot.test_crash import bot_process
from tests.bot.test_crash_engine import build, check_final, deliver_everything, snapshot
from tests.bot.test_faults import rig, started


@pytest.mark.slow
async def test_postgresql_restarted_mid_burst_loses_and_doubles_nothing(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    async with throwaway_cluster() as pg, rig(tmp_path, standin, database_url=pg.url) as r:
        await started(r)
        burst = set(r.send(400, "burst"))
        await r.until(
            lambda: len(burst & standin.confirmed_update_ids()) >= 100,
            within=60,
            what="100 confirmations",
        )
        await pg.restart(down_for=3.0)
        assert not burst <= standin.confirmed_update_ids(), "the restart came after the burst"
        r.assert_alive("the restart")
        await r.assert_nothing_confirmed_is_lost()
        r.send(10, "after")
        await r.assert_caught_up()
        await r.stop_cleanly()
    # The restart bit: the bot saw its transactions fail and came back on its own.
    assert "could not store update" in r.bot.output() or "database" in r.bot.output()


async def _in_a_flip_pass(url: str) -> bool:
    """Whether a transaction is writing flips right now (seen from PostgreSQL itself)."""
    async with open_database(url, migrate_to_head=False) as engine, engine.connect() as conn:
        found = await conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND xact_start IS NOT NULL AND query ILIKE '%flips%'"
            )
        )
        return bool(found.scalar_one())


@pytest.mark.slow
async def test_postgresql_restarted_mid_flip_pass_loses_and_doubles_no_flip(
    tmp_path: Path, standin: TelegramStandIn
) -> None:
    async with throwaway_cluster() as pg:
        world = await build(tmp_path, standin, url=pg.url)
        chats = set(world.chat_of.values())
        async with bot_process(world.installation) as bot:
            await bot.start()
            loop = asyncio.get_running_loop()
            give_up = loop.time() + 120
            while not await _in_a_flip_pass(pg.url):
                assert loop.time() < give_up, "never saw the engine pass\n" + bot.output()[-3000:]
                assert not bot.exited(), bot.output()[-3000:]
            at_restart = len(standin.sent)
            await pg.restart(down_for=2.0)
            assert not bot.exited(), "the bot ended with the database\n" + bot.output()[-3000:]
            await deliver_everything(bot, standin, world, chats)
            # The restart bit: the pass's transaction failed with the server.
            assert "DBAPIError" in bot.output() or "ConnectionRefusedError" in bot.output()
        final = await snapshot(world)
    told = check_final(final, world, standin, chats)
    # Only alerts already on their way when the server went down may arrive twice.
    assert sum(n - 1 for n in told.values()) <= max(at_restart, 0) * 3
