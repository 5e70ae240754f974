"""PostgreSQL restarted for real (not a proxy that cuts connections): the test's own
throwaway cluster (tests/bot/pg_cluster.py) is stopped and started again while the bot
takes in a burst; nothing confirmed is lost and nothing is stored twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.standin import TelegramStandIn
from tests.bot.pg_cluster import throwaway_cluster
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
