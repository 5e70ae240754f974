"""How fast does the intake bot take updates in, beside a bare python-telegram-bot echo bot?

    .venv/bin/python bench/intake_throughput.py [--updates N] [--relatives K]
        [--database-url postgresql://USER@HOST/DB] [--kem MLKEM768_X25519|X25519]

Both bots run as their own processes against one local Telegram stand-in (in this process),
one after the other, each with a burst of N text updates (default 2,000) from K relatives
queued before it starts:

- the intake bot is ``intake run``: every update sealed and committed before it is confirmed,
  then its neutral receipt sent and the relative's message deleted;
- the echo bot is an ``Application`` with ``run_polling`` and one ``MessageHandler`` that
  replies with the text (python-telegram-bot's own Updater, which confirms on fetch).

Rate = N / (time from the bot's first getUpdates to its last update done). For the intake
bot "done" is the stand-in seeing the last update confirmed, which the bot does only after
committing it (so this is at most one reply later than the last commit); for the echo bot
it is its N-th reply. Prints one JSON line and one line for people. The aim (not asserted):
intake at least half the echo bot's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import compileall
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

import bot
import storage
from bot.standin import TelegramStandIn
from storage.crypto import KemName, PrivateKey, ServerKeys
from storage.db import open_database, session_factory
from storage.operators import add_operator
from storage.timeutil import utc_now

ECHO_TOKEN_ENV = "BENCH_ECHO_TOKEN"  # noqa: S105 (the name of a variable)
THIS_FILE = Path(__file__).resolve()
INTAKE_RUN = ("-m", "bot.cli", "run", "--config")
FIRST_RELATIVE = 6_500_000_001


@dataclass(frozen=True)
class Run:
    name: str
    updates: int
    seconds: float
    cpu_seconds: float | None  # from its first getUpdates on: start-up is not counted
    calls: dict[str, int] = field(default_factory=dict)  # Bot API calls in that time

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms_per_update(self) -> float | None:
        return None if self.cpu_seconds is None else 1000 * self.cpu_seconds / self.updates


def child_env(*, plain: bool = False) -> dict[str, str]:
    """The environment of a bot process the benches start: as docs/deploy.md's systemd
    unit runs it (``SERVICE_ENV``, its bytecode cached as ``cached_as_served`` leaves it),
    or, ``plain``, as ``intake run`` typed in a shell, with the bot's own modules compiled
    as an installation has them (``compiled_as_installed``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    if plain:
        compiled_as_installed()
        return env
    cached_as_served()
    return served_env(env)


# docs/deploy.md's unit: Python optimised (its Environment= lines; tests/test_deploy.py
# runs the unit so). The cache folder stands for the unit's /var/cache/intake/bytecode.
SERVICE_ENV = {"PYTHONOPTIMIZE": "2"}
# The user's own cache, not the shared temporary folder: bytecode found there is run.
BYTECODE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "checkin-intake"
    / "bench-bytecode"
)
# What `intake run` imports before it serves, with both databases' drivers: compiled into
# the cache once, so that a measured start reads its bytecode as every start of the
# service after its first does. (The service writes its own; these machines set
# PYTHONDONTWRITEBYTECODE, which systemd would not.)
SERVING = """
import compileall, bot, storage
for package in (bot, storage):
    for folder in package.__path__:
        compileall.compile_dir(folder, quiet=1)
from bot.startup import lighten
lighten()
import bot.app, bot.watch, bot.integrity.jobs, bot.cli
import httpcore._async.connection_pool, anyio._backends._asyncio
import aiosqlite, asyncpg
import sqlalchemy.dialects.sqlite.aiosqlite, sqlalchemy.dialects.postgresql.asyncpg
"""


def served_env(env: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return kept | SERVICE_ENV | {"PYTHONPYCACHEPREFIX": str(BYTECODE)}


@functools.cache
def cached_as_served() -> None:
    command = [sys.executable, "-c", SERVING]
    subprocess.run(command, env=served_env(dict(os.environ)), check=True, timeout=300)  # noqa: S603


@functools.cache
def compiled_as_installed() -> None:
    """Compile the bot's own modules to bytecode, as ``pip install`` leaves them in a
    deployment (docs/deploy.md). These machines set PYTHONDONTWRITEBYTECODE, and the
    benches run the editable checkout: without this every bot process would compile
    ``bot`` and ``storage`` from source, about 0.1 s of start-up that no installation
    pays. (Libraries in the virtualenv were compiled by pip already.) Stale bytecode is
    never used: Python checks each file's source time and size."""
    for package in (bot, storage):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (Linux), to see where the time goes."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------- databases


@contextlib.asynccontextmanager
async def fresh_database(url: str | None, folder: Path) -> AsyncIterator[str]:
    """A new, empty database: a SQLite file, or a throwaway PostgreSQL database."""
    if url is None or url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{folder / 'intake.db'}"
        return
    admin_url = make_url(url).set(drivername="postgresql+asyncpg")
    name = f"intake_bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


async def install(folder: Path, standin: TelegramStandIn, database_url: str, kem: KemName) -> Path:
    """An installation as `intake init` + `intake operator add` leave it, with the per-person
    limit raised (a burst from a few relatives is far over the default 120 an hour)."""
    (folder / "token").write_text(standin.token)
    (folder / "token").chmod(0o600)  # `intake run` refuses secrets others may read
    secret = ServerKeys.generate_secret()
    (folder / "server_secret").write_text(base64.urlsafe_b64encode(secret).decode())
    (folder / "server_secret").chmod(0o600)  # `intake run` refuses secrets others may read
    (folder / "database_url").write_text(database_url)
    (folder / "database_url").chmod(0o600)  # `intake run` refuses secrets others may read
    config = folder / "config.toml"
    config.write_text(
        f"""
[telegram]
token = "file:token"
base_url = "{standin.base_url}"
file_base_url = "{standin.file_base_url}"

[database]
url = "file:database_url"

[keys]
server_secret = "file:server_secret"
kem = "{kem.value}"
allow_classical = true

[intake]
rate_limit_per_hour = 1000000
"""
    )
    async with (
        open_database(database_url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        await add_operator(
            session,
            server=ServerKeys(secret),
            public_key=PrivateKey.generate(kem).public_key(),
            name="Bench operator",
            now=utc_now(),
        )
    return config


async def stored_count(database_url: str) -> int:
    async with open_database(database_url, migrate_to_head=False) as engine, engine.connect() as c:
        return int((await c.execute(sa.text("SELECT count(*) FROM messages"))).scalar_one())


# ------------------------------------------------------------------------------ runs


def queue_burst(standin: TelegramStandIn, updates: int, relatives: int, label: str) -> set[int]:
    people = [standin.user(FIRST_RELATIVE + n, f"Relative {n}") for n in range(relatives)]
    return {
        int(standin.send_text(people[n % relatives], f"{label} check-in {n:05d}")["update_id"])
        for n in range(updates)
    }


async def timed_run(
    standin: TelegramStandIn,
    name: str,
    command: list[str],
    *,
    env: dict[str, str],
    updates: int,
    done: Callable[[], bool],
    within: float,
) -> Run:
    """Start ``command``; time from its first getUpdates until ``done()``; stop it."""
    loop = asyncio.get_running_loop()
    calls_before = len(standin.calls)
    proc = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        def exited() -> bool:
            return proc.returncode is not None

        await standin.wait_for(
            lambda: "getUpdates" in standin.calls[calls_before:] or exited(), within=60
        )
        start, cpu_at_start, calls_at_start = loop.time(), cpu_seconds(proc.pid), len(standin.calls)
        await standin.wait_for(lambda: done() or exited(), within=within)
        end = loop.time()
        if exited():
            stderr = await proc.stderr.read() if proc.stderr else b""
            raise SystemExit(f"{name} exited early:\n{stderr.decode(errors='replace')[-2000:]}")
        cpu_at_end = cpu_seconds(proc.pid)
        cpu = (
            cpu_at_end - cpu_at_start
            if cpu_at_end is not None and cpu_at_start is not None
            else None
        )
        calls = dict(Counter(standin.calls[calls_at_start:]))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.communicate(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    return Run(name=name, updates=updates, seconds=end - start, cpu_seconds=cpu, calls=calls)


async def run_intake(standin: TelegramStandIn, args: argparse.Namespace) -> tuple[Run, str]:
    """One intake run on a fresh installation; the run and the database's backend name."""
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        folder = Path(tmp)
        async with fresh_database(args.database_url, folder) as database_url:
            config = await install(folder, standin, database_url, KemName(args.kem))
            burst = queue_burst(standin, args.updates, args.relatives, "intake")
            intake = await timed_run(
                standin,
                "intake",
                [sys.executable, *profiled(args.profile), *INTAKE_RUN, str(config)],
                env=child_env(),
                updates=args.updates,
                done=lambda: burst <= standin.confirmed_update_ids(),
                within=args.timeout,
            )
            stored = await stored_count(database_url)
            if stored != args.updates:
                raise SystemExit(f"intake stored {stored} of {args.updates} messages")
            return intake, make_url(database_url).get_backend_name()


async def run_echo(standin: TelegramStandIn, args: argparse.Namespace) -> Run:
    replies_before = len(standin.sent)
    queue_burst(standin, args.updates, args.relatives, "echo")
    return await timed_run(
        standin,
        "echo",
        [sys.executable, str(THIS_FILE), "--echo-bot", "--base-url", standin.base_url],
        env={**child_env(), ECHO_TOKEN_ENV: standin.token},
        updates=args.updates,
        done=lambda: len(standin.sent) - replies_before >= args.updates,
        within=args.timeout,
    )


async def bench(args: argparse.Namespace) -> dict[str, object]:
    """``--repeat`` rounds of intake then echo, alternating so that a busy spell of a
    shared machine falls on both; the ratio is of the median rates."""
    standin = TelegramStandIn()
    await standin.start()
    intakes: list[Run] = []
    echoes: list[Run] = []
    try:
        for _ in range(args.repeat):
            intake, backend = await run_intake(standin, args)
            intakes.append(intake)
            echoes.append(await run_echo(standin, args))
    finally:
        await standin.stop()
    intake, echo = _median(intakes), _median(echoes)
    return {
        "bench": "intake_throughput",
        "updates": args.updates,
        "relatives": args.relatives,
        "repeat": args.repeat,
        "database": backend,
        "kem": args.kem,
        "intake_seconds": round(intake.seconds, 3),
        "intake_updates_per_s": round(intake.per_second, 1),
        "intake_cpu_ms_per_update": _round(intake.cpu_ms_per_update),
        "echo_seconds": round(echo.seconds, 3),
        "echo_updates_per_s": round(echo.per_second, 1),
        "echo_cpu_ms_per_update": _round(echo.cpu_ms_per_update),
        "ratio": round(intake.per_second / echo.per_second, 3),
        "target_ratio": 0.5,
        "ratios_per_round": [
            round(i.per_second / e.per_second, 3) for i, e in zip(intakes, echoes, strict=True)
        ],
        "intake_calls": intake.calls,
        "echo_calls": echo.calls,
    }


def _median(runs: list[Run]) -> Run:
    """The run of the median rate (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r.per_second)[(len(runs) - 1) // 2]


def profiled(path: str | None) -> list[str]:
    """Run the intake bot under cProfile (written when it stops on SIGTERM)."""
    return [] if path is None else ["-m", "cProfile", "-o", path]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# ------------------------------------------------------------------------ the echo bot


def run_echo_bot(base_url: str) -> None:
    """A bare python-telegram-bot echo bot: the baseline (runs in its own process)."""
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message is not None and update.message.text is not None:
            await update.message.reply_text(update.message.text)

    application = ApplicationBuilder().token(os.environ[ECHO_TOKEN_ENV]).base_url(base_url).build()
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    application.run_polling(allowed_updates=Update.ALL_TYPES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2_000, help="burst size (2000)")
    parser.add_argument("--relatives", type=int, default=8, help="senders of the burst (8)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to bench on (a throwaway database is made there); "
        "default: a SQLite file",
    )
    parser.add_argument(
        "--kem", default=KemName.MLKEM768_X25519.value, choices=[k.value for k in KemName]
    )
    parser.add_argument("--timeout", type=float, default=1800, help="per bot, seconds")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of intake then echo; medians (3)"
    )
    parser.add_argument("--profile", help="write a cProfile of the intake bot to this file")
    parser.add_argument("--echo-bot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_bot:
        run_echo_bot(args.base_url)
        return
    result = asyncio.run(bench(args))
    print(json.dumps(result))
    print(
        f"intake {result['intake_updates_per_s']} updates/s "
        f"({result['updates']} in {result['intake_seconds']} s, "
        f"{result['intake_cpu_ms_per_update']} ms CPU each, {result['database']}) vs "
        f"echo bot {result['echo_updates_per_s']} updates/s "
        f"({result['echo_cpu_ms_per_update']} ms CPU each): ratio {result['ratio']} "
        f"(aim: at least {result['target_ratio']}); medians of {result['repeat']} rounds, "
        f"whose ratios were {result['ratios_per_round']}"
    )


if __name__ == "__main__":
    main()
