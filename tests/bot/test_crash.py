"""Crash test: nothing the stand-in saw confirmed is lost, nothing is stored twice.

A burst of 1,300 text updates from several relatives queues at the stand-in; the bot runs
as a real process (``intake run``) and is killed with SIGKILL in the middle of the burst, at
a point chosen from how many updates the stand-in has seen confirmed. At that moment every
confirmed update must already be in the database exactly once. The bot is then started
again until every update is taken in, and in the end all 1,300 are there exactly once.

Slow, and SQLite only: each repetition starts a real bot process and takes in 1,300
updates, so the five together take a few minutes; running them again on PostgreSQL would
double that. The other intake tests (tests/bot/test_intake.py, test_downtime.py,
test_webhook.py) run on both databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy as sa

from bot.standin import TelegramStandIn
from storage.db import open_database
from tests.bot.intake_harness import Installation, install

REPO = Path(__file__).resolve().parents[2]
BURST = 1_300
RELATIVES = tuple(6_200_000_001 + n for n in range(8))
# (confirmations, then receipts after them): the bot takes updates 100 at a time, sends a
# committed batch's receipts while it fetches the next (which confirms it) and takes that one
# in, and keeps at most two batches of replies running. So receipts run up to one batch ahead
# of confirmations and up to two behind. Killing the bot some receipts after a point leaves
# updates committed but not yet confirmed, which Telegram gives again after restart. The last
# point (800, then 95 receipts: at most 900 + 95 + 200 confirmed) keeps the kill before the
# whole burst (1,300) is confirmed. Thirteen batches are enough to kill at five places in the
# batch cycle; a longer burst (2,000 until December 2026) only made each run longer.
KILL_POINTS = ((150, 0), (300, 20), (500, 45), (650, 70), (800, 95))
# 1,300 texts from eight people in a minute is far over the default per-person limit (120 an
# hour), which would keep only the first 120 of each: the crash test is about every update.
NO_RATE_LIMIT = "rate_limit_per_hour = 1000000"


def bot_env() -> dict[str, str]:
    """The shell's environment without any INTAKE_* variable of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}


@dataclass
class BotProcess:
    """``intake run --config PATH`` as a real process; its stdout and stderr go to ``log``."""

    config: Path
    log: Path
    runs: list[asyncio.subprocess.Process] = field(default_factory=list)
    _log_file: IO[bytes] | None = None

    @property
    def proc(self) -> asyncio.subprocess.Process:
        return self.runs[-1]

    async def start(self) -> None:
        if self._log_file is None:
            self._log_file = self.log.open("ab")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "--config",
            str(self.config),
            env=bot_env(),
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.runs.append(proc)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def exited(self) -> bool:
        return bool(self.runs) and self.proc.returncode is not None

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout=30)

    async def close(self) -> None:
        for proc in self.runs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


async def wait_until(
    standin: TelegramStandIn,
    bot: BotProcess,
    condition: Callable[[], bool],
    *,
    within: float,
    what: str,
) -> None:
    """Wait for ``condition`` (checked at every change of the stand-in's state); fail at once
    with the bot's output if the bot process ends first, and after ``within`` seconds."""
    try:
        await standin.wait_for(lambda: condition() or bot.exited(), within=within)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}\n{bot.output()[-3000:]}") from None
    if not condition():
        raise AssertionError(
            f"the bot exited ({bot.proc.returncode}) before {what}\n{bot.output()[-3000:]}"
        )


@contextlib.asynccontextmanager
async def bot_process(installation: Installation) -> AsyncIterator[BotProcess]:
    process = BotProcess(
        config=installation.path / "config.toml", log=installation.path / "bot-output.log"
    )
    try:
        yield process
    finally:
        await process.close()


@dataclass(frozen=True)
class Intake:
    """What the database holds: update_id of every messages row (with repeats), and every
    processed_updates mark."""

    message_update_ids: list[int]
    processed: set[int]

    @property
    def stored_once(self) -> set[int]:
        return {u for u, n in Counter(self.message_update_ids).items() if n == 1}

    @property
    def stored_twice(self) -> set[int]:
        return {u for u, n in Counter(self.message_update_ids).items() if n > 1}


async def read_intake(url: str) -> Intake:
    async with open_database(url, migrate_to_head=False) as engine, engine.connect() as conn:
        messages = (await conn.execute(sa.text("SELECT update_id FROM messages"))).scalars()
        message_ids = [int(u) for u in messages]
        marks = (await conn.execute(sa.text("SELECT update_id FROM processed_updates"))).scalars()
        return Intake(message_update_ids=message_ids, processed={int(u) for u in marks})


def receipts(standin: TelegramStandIn) -> int:
    return sum(1 for m in standin.sent if m.chat_id in RELATIVES)


@pytest.mark.slow
@pytest.mark.parametrize(("kill_after", "into_batch"), KILL_POINTS)
async def test_sigkill_mid_burst_loses_nothing_confirmed_and_stores_nothing_twice(
    tmp_path: Path, standin: TelegramStandIn, kill_after: int, into_batch: int
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    installation = await install(
        tmp_path / "server", standin=standin, database_url=url, extra=NO_RATE_LIMIT
    )
    people = [standin.user(uid, f"Relative {n}") for n, uid in enumerate(RELATIVES)]
    burst = [
        int(standin.send_text(people[n % len(people)], f"check-in {n:04d}")["update_id"])
        for n in range(BURST)
    ]
    everything = set(burst)
    assert len(everything) == BURST

    async with bot_process(installation) as bot:
        await bot.start()
        await wait_until(
            standin,
            bot,
            lambda: len(standin.confirmed_update_ids()) >= kill_after,
            within=600,
            what=f"{kill_after} confirmations",
        )
        replied = receipts(standin)
        await wait_until(
            standin,
            bot,
            lambda: receipts(standin) >= replied + into_batch,
            within=600,
            what=f"{into_batch} more receipts",
        )
        await bot.kill()

        confirmed = standin.confirmed_update_ids()
        assert len(confirmed) < BURST, "the kill came after the whole burst: nothing was tested"
        at_kill = await read_intake(url)
        # Every update the stand-in saw confirmed is in the database, exactly once.
        assert confirmed <= at_kill.processed
        assert confirmed <= at_kill.stored_once
        assert at_kill.stored_twice == set()
        assert set(at_kill.message_update_ids) <= everything

        # Started again until everything is taken in (what was committed but not yet
        # confirmed when it died comes again, and is recognised by its update_id).
        await bot.start()
        await wait_until(
            standin,
            bot,
            lambda: standin.confirmed_update_ids() >= everything,
            within=600,
            what="the whole burst to be confirmed",
        )
        assert await bot.stop() == 0, bot.output()[-3000:]

    final = await read_intake(url)
    assert len(final.message_update_ids) == BURST
    assert final.stored_once == everything
    assert final.processed == everything
    assert standin.pending_updates == []
    # What each update carried is what was stored: the operator opens every text.
    texts = sorted(s["body"]["text"] for s in await installation.stored())
    assert texts == [f"check-in {n:04d}" for n in range(BURST)]
