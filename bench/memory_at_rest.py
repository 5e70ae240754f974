"""How much memory does the idle intake bot hold with 100,000 groups, beside a bare echo bot?

    .venv/bin/python bench/memory_at_rest.py [--groups 100000] [--activists 300]
        [--settle 5] [--database-url postgresql://USER@HOST/DB]

The bot is meant to run for months on a small server, watching every group, so what it
holds while nothing happens is what the server must always have free. Three processes
are started one after the other against one Telegram stand-in (in this process), each
left idle, and their resident memory read from ``/proc/PID/status``:

1. **intake, no groups**: ``intake run`` (``python -m bot.cli run``) on a fresh
   installation (``bench/engine.py``'s ``install``: a SQLite file in a temporary folder,
   or a throwaway PostgreSQL database; one operator);
2. **intake, N groups**: the same installation filled with ``--groups`` monitored groups
   by ``bench/engine.py``'s ``populate`` (bulk inserts: every group OK, its next deadline
   within three days, one of ``--activists`` activists granted to it), then the bot again;
3. **echo**: the bare python-telegram-bot echo bot of ``bench/intake_throughput.py``
   (``run_polling``, one ``MessageHandler``), the floor any bot of this library pays; run
   from its function's source in a fresh interpreter, without the bench module's imports.

Idle means, for the intake bot: its drain's getUpdates and its first long poll reached
the stand-in, and its deadline engine finished a first pass. The signal for the pass is a
sentinel group with no activist, due at the moment the bot is started: its LATE flip
(which alerts nobody) is in the database once a pass has run. For the echo bot: its first
getUpdates, the long poll of its Updater. Then every process is left ``--settle`` seconds
more (the engine looks every 250 ms), its VmRSS sampled every 250 ms, and read at the end:
VmRSS (resident now) and VmHWM (the peak since it started, the start-up included).

Figures: each process's VmRSS and VmHWM in MB; ``ratio`` = intake (N groups) VmRSS / echo
VmRSS (``ratio_hwm`` for the peaks); and ``mb_per_1000_groups`` = (VmRSS with N groups -
VmRSS with none) / N * 1,000, the part that grows with the groups (a few MB either way is
noise: allocator and import timing). Prints one JSON line and one line for people;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.session import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import GRACE, INTERVAL, execute, group_row, install, memory_mb, populate
from intake_throughput import ECHO_TOKEN_ENV, child_env, fresh_database, run_echo_bot

from bot.standin import TelegramStandIn
from storage.crypto import KemName, PrivateKey
from storage.db import open_database, session_factory
from storage.models import Flip, Group
from storage.timeutil import utc_now

SAMPLE_EVERY = 0.25
START_WITHIN = 180.0  # seconds for a bot to reach idle


@dataclass
class AtRest:
    name: str
    startup_s: float  # from launch until idle
    vmrss_mb: float
    vmhwm_mb: float
    rss_samples_mb: list[float] = field(default_factory=list)

    def figures(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_startup_s": round(self.startup_s, 2),
            f"{prefix}_vmrss_mb": round(self.vmrss_mb, 1),
            f"{prefix}_vmhwm_mb": round(self.vmhwm_mb, 1),
            f"{prefix}_vmrss_at_idle_mb": round(self.rss_samples_mb[0], 1),
            f"{prefix}_vmrss_settle_min_mb": round(min(self.rss_samples_mb), 1),
            f"{prefix}_vmrss_settle_max_mb": round(max(self.rss_samples_mb), 1),
        }


# ------------------------------------------------------------------ one idle process


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    stderr_tail: list[bytes] = field(default_factory=list)

    async def read_stderr(self) -> None:
        assert self.proc.stderr is not None  # opened with a pipe
        async for line in self.proc.stderr:
            self.stderr_tail.append(line)
            del self.stderr_tail[:-40]

    def exited(self) -> bool:
        return self.proc.returncode is not None

    def fail(self, name: str) -> SystemExit:
        said = b"".join(self.stderr_tail).decode(errors="replace")
        return SystemExit(f"{name} exited early; it said:\n{said}")


@contextlib.asynccontextmanager
async def process(command: list[str], env: dict[str, str]) -> AsyncIterator[Running]:
    """A child process whose stderr is kept flowing (its tail kept for errors); stopped
    with SIGTERM (then SIGKILL after 30 s) on leaving."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Running(proc)
    reader = asyncio.create_task(running.read_stderr())
    try:
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await reader


async def measure_at_rest(
    name: str,
    command: list[str],
    *,
    env: dict[str, str],
    idle: Callable[[], Awaitable[bool]],
    settle: float,
) -> AtRest:
    """Start ``command``, wait until ``idle``, let it rest ``settle`` seconds, read its memory."""
    launched = time.perf_counter()
    async with process(command, env) as running:
        while not await idle():
            if running.exited():
                raise running.fail(name)
            if time.perf_counter() - launched > START_WITHIN:
                raise SystemExit(f"{name} did not become idle within {START_WITHIN:.0f} s")
            await asyncio.sleep(SAMPLE_EVERY / 5)
        startup_s = time.perf_counter() - launched
        samples: list[float] = []
        resting_until = time.perf_counter() + settle
        while True:
            samples.append(memory_mb(running.proc.pid).get("VmRSS", float("nan")))
            if time.perf_counter() >= resting_until:
                break
            await asyncio.sleep(SAMPLE_EVERY)
        memory = memory_mb(running.proc.pid)
        if running.exited():
            raise running.fail(name)
    return AtRest(
        name=name,
        startup_s=startup_s,
        vmrss_mb=memory["VmRSS"],
        vmhwm_mb=memory["VmHWM"],
        rss_samples_mb=samples,
    )


# ------------------------------------------------------------------ the intake bot


async def add_sentinel(sessions: async_sessionmaker[AsyncSession], codename: str) -> uuid.UUID:
    """A group with no activist, due now: the bot's first engine pass flips it LATE
    (a flip that alerts nobody), which shows that the pass ran."""
    now = utc_now()
    row = group_row(
        codename,
        last=now - INTERVAL - timedelta(seconds=1),
        interval=INTERVAL,
        grace=GRACE,
        public_key=PrivateKey.generate(KemName.MLKEM768_X25519).public_key().raw,
        now=now,
    )
    await execute(sessions, (sa.insert(Group), [row]))
    sentinel: uuid.UUID = row["id"]
    return sentinel


def intake_idle(
    standin: TelegramStandIn, sessions: async_sessionmaker[AsyncSession], sentinel: uuid.UUID
) -> Callable[[], Awaitable[bool]]:
    """Idle: the drain's getUpdates and the first long poll reached the stand-in (the
    engine's jobs start in between, bot.app.serve), and a pass flipped the sentinel."""
    polls_before = standin.calls.count("getUpdates")

    async def idle() -> bool:
        if standin.calls.count("getUpdates") < polls_before + 2:
            return False
        async with sessions() as session:
            flipped = await (await session.connection()).execute(
                sa.select(sa.func.count()).select_from(Flip).where(Flip.group_id == sentinel)
            )
            return bool(flipped.scalar_one())

    return idle


async def intake_at_rest(
    name: str,
    folder: Path,
    standin: TelegramStandIn,
    sessions: async_sessionmaker[AsyncSession],
    *,
    sentinel: str,
    settle: float,
) -> AtRest:
    sentinel_id = await add_sentinel(sessions, sentinel)
    return await measure_at_rest(
        name,
        [sys.executable, "-m", "bot.cli", "run", "--config", str(folder / "config.toml")],
        env=child_env(),
        idle=intake_idle(standin, sessions, sentinel_id),
        settle=settle,
    )


# ------------------------------------------------------------------ the echo bot


def bare_echo_bot(base_url: str) -> list[str]:
    """``intake_throughput.run_echo_bot`` in a fresh interpreter, from its own source.
    Started as ``intake_throughput.py --echo-bot`` it would also carry that module's
    imports (SQLAlchemy, the stand-in, the storage layer: some 40 MB), which a bare echo
    bot does not have; its throughput does not notice them, its memory does."""
    source = "\n".join(
        [
            "import os",
            f"ECHO_TOKEN_ENV = {ECHO_TOKEN_ENV!r}",
            inspect.getsource(run_echo_bot),
            f"run_echo_bot({base_url!r})",
        ]
    )
    return [sys.executable, "-c", source]


async def echo_at_rest(standin: TelegramStandIn, *, settle: float) -> AtRest:
    polls_before = standin.calls.count("getUpdates")

    async def idle() -> bool:  # its Updater's first call is already a long poll
        return standin.calls.count("getUpdates") > polls_before

    return await measure_at_rest(
        "echo",
        bare_echo_bot(standin.base_url),
        env={**child_env(), ECHO_TOKEN_ENV: standin.token},
        idle=idle,
        settle=settle,
    )


# ------------------------------------------------------------------ the whole run


async def bench(args: argparse.Namespace) -> dict[str, object]:
    figures: dict[str, object] = {"bench": "memory_at_rest", "groups": args.groups}
    async with TelegramStandIn() as standin:
        with tempfile.TemporaryDirectory(prefix="intake-memory-bench-") as tmp:
            folder = Path(tmp)
            async with fresh_database(args.database_url, folder) as url:
                figures["database"] = make_url(url).get_backend_name()
                server = await install(folder, standin, url)
                async with open_database(url, migrate_to_head=False) as engine:
                    sessions = session_factory(engine)
                    empty = await intake_at_rest(
                        "intake (no groups but the sentinel)",
                        folder,
                        standin,
                        sessions,
                        sentinel="SENTINEL-A",
                        settle=args.settle,
                    )
                    started = time.perf_counter()
                    await populate(sessions, server, groups=args.groups, activists=args.activists)
                    figures["populate_s"] = round(time.perf_counter() - started, 1)
                    full = await intake_at_rest(
                        f"intake ({args.groups} groups)",
                        folder,
                        standin,
                        sessions,
                        sentinel="SENTINEL-B",
                        settle=args.settle,
                    )
        echo = await echo_at_rest(standin, settle=args.settle)
    figures |= empty.figures("intake_empty") | full.figures("intake") | echo.figures("echo")
    figures |= {
        "ratio": round(full.vmrss_mb / echo.vmrss_mb, 3),
        "ratio_hwm": round(full.vmhwm_mb / echo.vmhwm_mb, 3),
        "intake_over_empty_mb": round(full.vmrss_mb - empty.vmrss_mb, 1),
        "mb_per_1000_groups": round(
            (full.vmrss_mb - empty.vmrss_mb) / max(1, args.groups) * 1000, 4
        ),
        "settle_s": args.settle,
    }
    return figures


def describe(f: dict[str, object]) -> str:
    return (
        f"idle on {f['database']}: intake bot with {f['groups']:,} groups "
        f"{f['intake_vmrss_mb']} MB resident (peak {f['intake_vmhwm_mb']} MB), with none "
        f"{f['intake_empty_vmrss_mb']} MB (peak {f['intake_empty_vmhwm_mb']} MB), "
        f"{f['intake_over_empty_mb']:+} MB, {f['mb_per_1000_groups']} MB per 1,000 groups "
        f"(a few MB either way is noise); bare echo bot "
        f"{f['echo_vmrss_mb']} MB (peak {f['echo_vmhwm_mb']} MB): ratio {f['ratio']} "
        f"(peaks {f['ratio_hwm']}); filling took {f['populate_s']} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=100_000, help="monitored groups")
    parser.add_argument("--activists", type=int, default=300, help="their activists")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds each bot rests once idle (5)"
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (a throwaway database is made there); default: SQLite",
    )
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    print(json.dumps(result))
    print(describe(result))


if __name__ == "__main__":
    main()
