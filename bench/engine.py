"""The deadline engine over 100,000 monitored groups, and its alerts through the stand-in.

    .venv/bin/python bench/engine.py [--groups 100000] [--activists 300] [--passes 50]
        [--due-share 0.01] [--delay-groups 200] [--spread 20] [--burst 300]
        [--database-url postgresql://USER@HOST/DB]

A fresh installation (a SQLite file in a temporary folder, or a throwaway database made on
the given PostgreSQL server and dropped afterwards) is filled with ``--groups`` monitored
groups by bulk Core inserts: every group OK, with a last check-in and its next deadline
spread over the coming three days, and an activist grant for one of ``--activists``
activists. Then:

1. idle: ``--passes`` engine passes (``bot.engine.run_pass``) with nothing due, each beside
   an empty transaction running ``SELECT 1`` on the same database (the floor any pass pays,
   since a pass is one transaction); median and p95 in ms, and the ratio of the medians;
2. due: ``--due-share`` of the groups (1,000 of 100,000) made LATE with their grace ending
   at one moment just past; passes until every one is SILENT with its alert written:
   the total, the number of passes, and the time of each pass;
3. delay: the real bot (``python -m bot.cli run``) as its own process on that database,
   against a Telegram stand-in in this process. Once it polls, ``--delay-groups`` groups
   are added, each with its own activist, whose SILENT deadlines fall at evenly spread
   moments over the next ``--spread`` seconds; the stand-in's sent list is read every
   10 ms, and each activist's alert is timed from its deadline. Median and p99 in ms;
   aim: p99 under one second;
4. memory: the bot process's VmHWM and VmRSS (/proc/PID/status) at the end; aim: under
   150 MB;
5. burst: ``--burst`` more groups, each with its own activist, silent at one moment after
   the delay groups: the time from that moment until the last alert reached the stand-in,
   beside Telegram's own bound for that many messages (30 a second overall), as a ratio.

Prints one JSON line and one line for people, which says plainly when a figure misses
its aim. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_throughput import child_env, cpu_seconds, fresh_database

from bot.engine import AlertTiming, run_pass
from bot.standin import TelegramStandIn
from storage.crypto import KemName, PrivateKey, ServerKeys
from storage.db import open_database, session_factory
from storage.models import (
    Alert,
    AlertState,
    Flip,
    Group,
    Person,
    Role,
    RoleGrant,
    ScheduleKind,
    Status,
)
from storage.operators import add_operator
from storage.people import chat_binding
from storage.timeutil import utc_now

# As the bot's defaults ([alerts] in config.example.toml): nothing repeats during the bench.
TIMING = AlertTiming(repeat_every=timedelta(minutes=15), escalate_after=timedelta(hours=1))
FIRST_WATCHER = 8_100_000_001  # the activists of the monitored groups (never alerted live)
FIRST_DELAY = 8_200_000_001  # one activist per delay group
FIRST_BURST = 8_300_000_001  # one activist per burst group
INSERT_CHUNK = 5_000
INTERVAL = timedelta(days=3)
GRACE = timedelta(hours=2)
DETAINED_AFTER = timedelta(days=2)
# The live groups: due every 30 s with 5 s of grace, so they go LATE 5 s before the
# deadline being timed (as a real group does) and SILENT at it.
LIVE_INTERVAL = timedelta(seconds=30)
LIVE_GRACE = timedelta(seconds=5)
TELEGRAM_PER_SECOND = 30
AIM_IDLE_MS = 5.0  # "a few milliseconds"
AIM_P99_MS = 1000.0
AIM_MEMORY_MB = 150.0
POLL_EVERY = 0.01


# ------------------------------------------------------------------ small helpers
def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (the peak resident set) and VmRSS (now) of a running process, in MB (Linux)."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0]) / 1024
    return found


def pct(values: list[float], p: float) -> float:
    """The p-th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def install(folder: Path, standin: TelegramStandIn, database_url: str) -> ServerKeys:
    """An installation as `intake init` + `intake operator add` leave it."""
    (folder / "token").write_text(standin.token)
    (folder / "token").chmod(0o600)  # `intake run` refuses secrets others may read
    secret = ServerKeys.generate_secret()
    (folder / "server_secret").write_text(base64.urlsafe_b64encode(secret).decode())
    (folder / "server_secret").chmod(0o600)  # `intake run` refuses secrets others may read
    (folder / "database_url").write_text(database_url)
    (folder / "database_url").chmod(0o600)  # `intake run` refuses secrets others may read
    (folder / "config.toml").write_text(
        f"""
[telegram]
token = "file:token"
base_url = "{standin.base_url}"
file_base_url = "{standin.file_base_url}"

[database]
url = "file:database_url"

[keys]
server_secret = "file:server_secret"
"""
    )
    server = ServerKeys(secret)
    async with (
        open_database(database_url) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        await add_operator(
            session,
            server=server,
            public_key=PrivateKey.generate(KemName.MLKEM768_X25519).public_key(),
            name="Bench operator",
            now=utc_now(),
        )
    return server


# ------------------------------------------------------------------ rows, in bulk


def person_rows(server: ServerKeys, telegram_ids: range, now: datetime) -> list[dict[str, Any]]:
    """Activists as the bot stores them, except the blind index of their Telegram id: that
    is random bytes here, since nothing in this bench looks a person up by Telegram id
    and the real index (Argon2id, deliberately slow) would only add minutes of setup."""
    rows = []
    for telegram_id in telegram_ids:
        person_id = uuid.uuid4()
        rows.append(
            {
                "id": person_id,
                "telegram_index": os.urandom(32),
                "chat_sealed": server.seal(str(telegram_id).encode(), chat_binding(person_id)),
                "language": "en",
                "created_at": now,
            }
        )
    return rows


def group_row(
    codename: str,
    *,
    last: datetime,
    interval: timedelta,
    grace: timedelta,
    public_key: bytes,
    now: datetime,
) -> dict[str, Any]:
    """An interval group that checked in at ``last``: OK until its due time, which is its
    next transition (what ``bot.deadlines.evaluate`` would store)."""
    return {
        "id": uuid.uuid4(),
        "codename": codename,
        "schedule_kind": ScheduleKind.INTERVAL,
        "interval_s": int(interval.total_seconds()),
        "grace_s": int(grace.total_seconds()),
        "detained_after_s": int(DETAINED_AFTER.total_seconds()),
        "status": Status.OK,
        "status_since": last,
        "status_basis": "checked in",
        "last_checkin_at": last,
        "next_transition_at": last + interval,
        "kem": KemName.MLKEM768_X25519.value,
        "public_key": public_key,
        "created_at": min(last, now),
    }


def grant_row(person_id: uuid.UUID, group_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "person_id": person_id,
        "role": Role.ACTIVIST,
        "group_id": group_id,
        "granted_at": now,
    }


async def execute(sessions: async_sessionmaker[AsyncSession], *statements: Any) -> None:
    async with sessions() as session, session.begin():
        connection = await session.connection()
        for statement, rows in statements:
            await connection.execute(statement, rows)


async def populate(
    sessions: async_sessionmaker[AsyncSession], server: ServerKeys, *, groups: int, activists: int
) -> None:
    now = utc_now()
    # One real group public key (the production KEM) on every row: rows of a real size.
    public_key = PrivateKey.generate(KemName.MLKEM768_X25519).public_key().raw
    watchers = person_rows(server, range(FIRST_WATCHER, FIRST_WATCHER + activists), now)
    await execute(sessions, (sa.insert(Person), watchers))
    spread_s = int((INTERVAL - timedelta(hours=1)).total_seconds())
    for start in range(0, groups, INSERT_CHUNK):
        rows = [
            group_row(
                f"W-{n:06d}",
                # Checked in at some moment of the last 71 hours: due in 1 to 72 hours.
                last=now - timedelta(seconds=(n * 7919) % spread_s),
                interval=INTERVAL,
                grace=GRACE,
                public_key=public_key,
                now=now,
            )
            for n in range(start, min(groups, start + INSERT_CHUNK))
        ]
        grants = [
            grant_row(watchers[n % len(watchers)]["id"], row["id"], now)
            for n, row in enumerate(rows, start)
        ]
        await execute(sessions, (sa.insert(Group), rows), (sa.insert(RoleGrant), grants))
    async with sessions() as session:  # the statistics a live database would have
        await (await session.connection()).exec_driver_sql("ANALYZE")
        await session.commit()


# ------------------------------------------------------------------ passes in this process


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return 1000 * (time.perf_counter() - started)


async def idle_and_due(
    sessions: async_sessionmaker[AsyncSession], *, groups: int, passes: int, due_share: float
) -> dict[str, Any]:
    async def floor() -> None:
        async with sessions() as session, session.begin():
            await (await session.connection()).exec_driver_sql("SELECT 1")

    async def idle_pass() -> None:
        result = await run_pass(sessions, now=utc_now(), timing=TIMING)
        if result.looked_at or result.reminders:
            raise SystemExit(f"an idle pass found work: {result}")

    for _ in range(5):  # warm the pool, the caches and the statement cache
        await floor()
        await idle_pass()
    floor_ms, idle_ms = [], []
    for _ in range(passes):  # interleaved, so that drift in the machine hits both alike
        floor_ms.append(await timed(floor))
        idle_ms.append(await timed(idle_pass))

    # 1% whose grace ended at one moment, a second ago: LATE, as the engine left them.
    due = max(1, round(groups * due_share))
    deadline = utc_now() - timedelta(seconds=1)
    last = deadline - INTERVAL - GRACE
    async with sessions() as session, session.begin():
        connection = await session.connection()
        codenames = [f"W-{n:06d}" for n in range(0, groups, max(1, groups // due))][:due]
        await connection.execute(
            sa.update(Group)
            .where(col(Group.codename).in_(codenames))
            .values(
                status=Status.LATE,
                status_since=last + INTERVAL,
                status_basis="check-in due",
                last_checkin_at=last,
                next_transition_at=deadline,
            )
        )
    due_ms: list[float] = []
    flipped = alerts = 0
    started = time.perf_counter()
    while flipped < due and len(due_ms) < 10 * due:
        pass_started = time.perf_counter()
        result = await run_pass(sessions, now=utc_now(), timing=TIMING)
        due_ms.append(1000 * (time.perf_counter() - pass_started))
        flipped += result.flips
        alerts += result.alerts
    due_total_ms = 1000 * (time.perf_counter() - started)
    if flipped != due or alerts != due:
        raise SystemExit(f"{due} due groups gave {flipped} flips and {alerts} alerts")
    # Those alerts and their repeats belong to this figure only: the live bot must not
    # send them (their activists have no chat at the stand-in).
    await execute(
        sessions,
        (sa.update(Alert).values(state=AlertState.SENT, sent_at=utc_now()), None),
        (sa.update(Flip).values(next_reminder_at=None), None),
    )
    return {
        "floor_ms": statistics.median(floor_ms),
        "idle_pass_ms": statistics.median(idle_ms),
        "idle_pass_p95_ms": pct(idle_ms, 95),
        "idle_ratio": statistics.median(idle_ms) / statistics.median(floor_ms),
        "due_groups": due,
        "due_total_ms": due_total_ms,
        "due_passes": len(due_ms),
        "due_pass_ms": [round(ms, 1) for ms in due_ms],
    }


# ------------------------------------------------------------------ the real bot


async def add_live_groups(
    sessions: async_sessionmaker[AsyncSession],
    people: list[dict[str, Any]],
    *,
    prefix: str,
    deadlines: list[datetime],
    late: bool,
) -> None:
    """One group per activist, SILENT at its deadline. Due ``LIVE_GRACE`` before it, so
    the engine flips it LATE first, as a real group; or, with ``late``, already LATE (as
    the engine would have left it), so that its LATE flip falls in nobody's figure."""
    now = utc_now()
    rows = []
    for n, silent_at in enumerate(deadlines):
        last = silent_at - LIVE_INTERVAL - LIVE_GRACE
        row = group_row(
            f"{prefix}-{n:05d}",
            last=last,
            interval=LIVE_INTERVAL,
            grace=LIVE_GRACE,
            public_key=b"",
            now=now,
        )
        if late:
            row |= {
                "status": Status.LATE,
                "status_since": last + LIVE_INTERVAL,
                "status_basis": "check-in due",
                "next_transition_at": silent_at,
            }
        rows.append(row)
    grants = [grant_row(p["id"], r["id"], now) for p, r in zip(people, rows, strict=True)]
    await execute(sessions, (sa.insert(Group), rows), (sa.insert(RoleGrant), grants))


async def silent_flips(sessions: async_sessionmaker[AsyncSession]) -> dict[str, datetime]:
    """When a pass wrote each live group's SILENT flip, by codename."""
    async with sessions() as session:
        rows = await (await session.connection()).execute(
            sa.select(Group.codename, Flip.recorded_at)
            .join(Flip, col(Flip.group_id) == col(Group.id))
            .where(Flip.to_status == Status.SILENT, ~col(Group.codename).startswith("W-"))
        )
        return {codename: recorded_at for codename, recorded_at in rows.all()}


async def live(
    folder: Path,
    sessions: async_sessionmaker[AsyncSession],
    server: ServerKeys,
    standin: TelegramStandIn,
    args: argparse.Namespace,
) -> dict[str, Any]:
    now = utc_now()
    delay_people = person_rows(server, range(FIRST_DELAY, FIRST_DELAY + args.delay_groups), now)
    burst_people = person_rows(server, range(FIRST_BURST, FIRST_BURST + args.burst), now)
    await execute(sessions, (sa.insert(Person), delay_people + burst_people))
    chat_of: dict[int, str] = {}
    for n in range(args.delay_groups):
        standin.user(FIRST_DELAY + n, f"Activist D{n}", language_code="en")
        chat_of[FIRST_DELAY + n] = f"D-{n:05d}"
    for n in range(args.burst):
        standin.user(FIRST_BURST + n, f"Activist B{n}", language_code="en")
        chat_of[FIRST_BURST + n] = f"B-{n:05d}"

    launched = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--config",
        str(folder / "config.toml"),
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    stderr_tail: list[bytes] = []

    async def read_stderr() -> None:  # kept flowing, so that a chatty bot never blocks
        assert proc.stderr is not None
        async for line in proc.stderr:
            stderr_tail.append(line)
            del stderr_tail[:-40]

    reader = asyncio.create_task(read_stderr())
    seen: dict[str, datetime] = {}
    silent_count: dict[str, int] = {}
    try:
        # Ready: the drain's getUpdates, then the first long poll, which follows the
        # start of the engine and sender jobs (bot.app.serve).
        await standin.wait_for(
            lambda: standin.calls.count("getUpdates") >= 2 or proc.returncode is not None,
            within=120,
        )
        if proc.returncode is not None:
            raise SystemExit("the bot exited early:\n" + b"".join(stderr_tail).decode())
        startup_s = time.perf_counter() - launched
        ready = utc_now()
        first = ready + timedelta(seconds=2)
        delay_deadlines = [
            first + timedelta(seconds=args.spread * n / max(1, args.delay_groups))
            for n in range(args.delay_groups)
        ]
        burst_at = first + timedelta(seconds=args.spread + 4)
        await add_live_groups(
            sessions, delay_people, prefix="D", deadlines=delay_deadlines, late=False
        )
        await add_live_groups(
            sessions, burst_people, prefix="B", deadlines=[burst_at] * args.burst, late=True
        )
        deadline_of = {f"D-{n:05d}": d for n, d in enumerate(delay_deadlines)}
        deadline_of |= {f"B-{n:05d}": burst_at for n in range(args.burst)}

        give_up = time.monotonic() + args.spread + 60 + args.burst / TELEGRAM_PER_SECOND * 3
        index = 0
        while len(seen) < len(deadline_of) and time.monotonic() < give_up:
            at = utc_now()
            for message in standin.sent[index:]:
                code = chat_of.get(message.chat_id)
                if code is not None and "SILENT" in (message.text or ""):
                    silent_count[code] = silent_count.get(code, 0) + 1
                    seen.setdefault(code, at)
            index = len(standin.sent)
            if proc.returncode is not None:
                raise SystemExit("the bot exited:\n" + b"".join(stderr_tail).decode())
            await asyncio.sleep(POLL_EVERY)
        await asyncio.sleep(1)  # anything sent twice would show by now
        for message in standin.sent[index:]:
            code = chat_of.get(message.chat_id)
            if code is not None and "SILENT" in (message.text or ""):
                silent_count[code] = silent_count.get(code, 0) + 1
        memory = memory_mb(proc.pid)
        cpu = cpu_seconds(proc.pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await reader
    missing = sorted(set(deadline_of) - set(seen))
    if missing:
        raise SystemExit(
            f"{len(missing)} alert(s) never reached the stand-in; the bot said:\n"
            + b"".join(stderr_tail).decode(errors="replace")
        )
    noticed = await silent_flips(sessions)

    def ms(later: datetime, earlier: datetime) -> float:
        return 1000 * (later - earlier).total_seconds()

    timed_codes = [c for c in deadline_of if c.startswith("D-")]
    delays = [ms(seen[c], deadline_of[c]) for c in timed_codes]
    # Where a delay goes: until a pass noticed the deadline (the flip's recorded_at is the
    # pass's `now`), then the pass's writes and the sender's claim, composing and send.
    to_notice = [ms(noticed[c], deadline_of[c]) for c in timed_codes]
    to_send = [ms(seen[c], noticed[c]) for c in timed_codes]
    burst_codes = [c for c in deadline_of if c.startswith("B-")]
    burst_s = max((seen[c] - burst_at).total_seconds() for c in burst_codes)
    bound_s = args.burst / TELEGRAM_PER_SECOND
    return {
        "bot_startup_s": startup_s,
        "delay_groups": args.delay_groups,
        "delay_median_ms": statistics.median(delays),
        "delay_p99_ms": pct(delays, 99),
        "delay_max_ms": max(delays),
        "delay_min_ms": min(delays),
        "delay_to_notice_median_ms": statistics.median(to_notice),
        "delay_to_notice_p99_ms": pct(to_notice, 99),
        "delay_notice_to_alert_median_ms": statistics.median(to_send),
        "delay_notice_to_alert_p99_ms": pct(to_send, 99),
        "alerts_twice": sum(1 for n in silent_count.values() if n > 1),
        "bot_vmhwm_mb": memory.get("VmHWM", float("nan")),
        "bot_vmrss_mb": memory.get("VmRSS", float("nan")),
        "bot_cpu_s": cpu,
        "burst": args.burst,
        "burst_noticed_s": max(ms(noticed[c], burst_at) for c in burst_codes) / 1000,
        "burst_first_s": min((seen[c] - burst_at).total_seconds() for c in burst_codes),
        "burst_s": burst_s,
        "burst_bound_s": bound_s,
        "burst_ratio": burst_s / bound_s if bound_s else float("nan"),
    }


# ------------------------------------------------------------------ the whole run


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"bench": "engine", "groups": args.groups}
    async with TelegramStandIn() as standin:
        with tempfile.TemporaryDirectory(prefix="intake-engine-bench-") as tmp:
            folder = Path(tmp)
            async with fresh_database(args.database_url, folder) as url:
                figures["database"] = make_url(url).get_backend_name()
                server = await install(folder, standin, url)
                async with open_database(url, migrate_to_head=False) as engine:
                    sessions = session_factory(engine)
                    started = time.perf_counter()
                    await populate(sessions, server, groups=args.groups, activists=args.activists)
                    figures["populate_s"] = time.perf_counter() - started
                    figures.update(
                        await idle_and_due(
                            sessions,
                            groups=args.groups,
                            passes=args.passes,
                            due_share=args.due_share,
                        )
                    )
                    figures.update(await live(folder, sessions, server, standin, args))
    return figures


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def describe(f: dict[str, Any]) -> str:
    due_per_pass = f["due_total_ms"] / f["due_passes"]
    return (
        f"{f['groups']:,} groups on {f['database']}: "
        f"a pass with none due {f['idle_pass_ms']:.2f} ms median, "
        f"p95 {f['idle_pass_p95_ms']:.2f} ms, "
        f"{f['idle_ratio']:.1f}x an empty SELECT 1 transaction ({f['floor_ms']:.2f} ms) "
        f"[{verdict(f['idle_pass_ms'] < AIM_IDLE_MS)} the {AIM_IDLE_MS:.0f} ms aim]; "
        f"{f['due_groups']:,} due at once flipped and alerted in {f['due_total_ms']:.0f} ms "
        f"over {f['due_passes']} passes ({due_per_pass:.0f} ms a pass); "
        f"deadline to alert at the stand-in, {f['delay_groups']} groups: "
        f"median {f['delay_median_ms']:.0f} ms, p99 {f['delay_p99_ms']:.0f} ms "
        f"[{verdict(f['delay_p99_ms'] < AIM_P99_MS)} the 1 s aim] "
        f"(until a pass noticed: median {f['delay_to_notice_median_ms']:.0f} ms; "
        f"then to the stand-in: median {f['delay_notice_to_alert_median_ms']:.0f} ms); "
        f"bot memory peak {f['bot_vmhwm_mb']:.0f} MB, now {f['bot_vmrss_mb']:.0f} MB "
        f"[{verdict(f['bot_vmhwm_mb'] < AIM_MEMORY_MB)} the {AIM_MEMORY_MB:.0f} MB aim]; "
        f"{f['burst']} alerts to {f['burst']} chats at once all delivered in "
        f"{f['burst_s']:.1f} s, {f['burst_ratio']:.2f}x Telegram's bound of "
        f"{f['burst_bound_s']:.1f} s; {f['alerts_twice']} alert(s) sent twice"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=100_000, help="monitored groups")
    parser.add_argument("--activists", type=int, default=300, help="their activists")
    parser.add_argument("--passes", type=int, default=50, help="idle passes timed")
    parser.add_argument("--due-share", type=float, default=0.01, help="share due at once")
    parser.add_argument("--delay-groups", type=int, default=200, help="groups timed live")
    parser.add_argument("--spread", type=float, default=20.0, help="their deadlines, seconds")
    parser.add_argument("--burst", type=int, default=300, help="alerts to distinct chats")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (a throwaway database is made there); default: SQLite",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    figures = asyncio.run(bench(args))
    figures["run_s"] = time.perf_counter() - started
    figures["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
    print(describe(figures))


if __name__ == "__main__":
    main()
