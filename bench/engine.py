"""The deadline engine at 100,000 monitored groups, and alerts through the stand-in.

    .venv/bin/python bench/engine.py [--groups 100000] [--delay-groups 200] [--burst 300]
        [--database-url postgresql://USER@HOST/DB]

Figures (one JSON line, then one line for people):

1. a pass with nothing due, over ``--groups`` groups: median and p95 in ms, beside an empty
   transaction with ``SELECT 1`` on the same database (the floor any pass pays), as a ratio;
2. 1% of them due at once (their grace ended at the same moment): the time until every one is
   flipped, and the number of passes that took;
3. deadline to alert: ``intake run`` as its own process on that database, with
   ``--delay-groups`` more groups (each with its own activist) whose grace ends at moments
   spread over 20 s; the stand-in (in this process) notes when each alert arrives; median and
   p99 of arrival minus deadline. Aim: p99 under one second;
4. the bot process's memory (VmHWM, VmRSS) at the end. Aim: under 150 MB;
5. a burst: ``--burst`` groups with their own activists, all due at one moment: the time until
   every alert arrived, beside Telegram's bound for that many chats (30 messages a second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake_throughput import child_env, fresh_database, install

from bot.config import load_settings
from bot.engine import AlertTiming, run_pass
from bot.standin import TelegramStandIn
from storage.crypto import KemName, ServerKeys
from storage.db import open_database, session_factory
from storage.models import Group, Person, Role, RoleGrant, ScheduleKind, Status
from storage.people import chat_binding, telegram_index
from storage.timeutil import utc_now

TIMING = AlertTiming(repeat_every=timedelta(hours=1), escalate_after=timedelta(hours=6))
FIRST_ACTIVIST = 8_000_000_001


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def group_row(codename: str, *, last: datetime, due_in: timedelta, interval_s: int) -> dict:
    return {
        "id": uuid.uuid4(),
        "codename": codename,
        "schedule_kind": ScheduleKind.INTERVAL,
        "interval_s": interval_s,
        "grace_s": 5,
        "detained_after_s": 7 * 86400,
        "status": Status.OK,
        "status_since": last,
        "last_checkin_at": last,
        "next_transition_at": last + due_in,
        "kem": KemName.X25519.value,
        "public_key": b"",
        "created_at": last,
    }


async def add_activists(session, server: ServerKeys, first: int, count: int) -> list[uuid.UUID]:
    people = []
    for n in range(count):
        person_id = uuid.uuid4()
        telegram_id = first + n
        people.append(
            {
                "id": person_id,
                "telegram_index": telegram_index(server, telegram_id),
                "chat_sealed": server.seal(str(telegram_id).encode(), chat_binding(person_id)),
                "language": "en",
                "created_at": utc_now(),
            }
        )
    await (await session.connection()).execute(sa.insert(Person), people)
    return [p["id"] for p in people]


async def populate(url: str, server: ServerKeys, groups: int) -> None:
    now = utc_now()
    async with open_database(url) as engine, session_factory(engine)() as session:
        async with session.begin():
            activists = await add_activists(session, server, FIRST_ACTIVIST + 900_000, 200)
        for start in range(0, groups, 10_000):
            rows = [
                group_row(
                    f"W-{n:06d}",
                    last=now,
                    due_in=timedelta(hours=1) + timedelta(seconds=(n * 7919) % 259_200),
                    interval_s=86400,
                )
                for n in range(start, min(groups, start + 10_000))
            ]
            async with session.begin():
                await (await session.connection()).execute(sa.insert(Group), rows)
                await (await session.connection()).execute(
                    sa.insert(RoleGrant),
                    [
                        {
                            "id": uuid.uuid4(),
                            "person_id": activists[i % len(activists)],
                            "role": Role.ACTIVIST,
                            "group_id": r["id"],
                            "granted_at": now,
                        }
                        for i, r in enumerate(rows)
                    ],
                )


async def timed(coro_factory, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await coro_factory()
        times.append(1000 * (time.perf_counter() - started))
    return times


async def passes(url: str, groups: int) -> dict[str, float]:
    async with open_database(url, migrate_to_head=False) as engine:
        sessions = session_factory(engine)

        async def floor() -> None:
            async with sessions() as session, session.begin():
                await (await session.connection()).execute(sa.text("SELECT 1"))

        async def idle_pass() -> None:
            result = await run_pass(sessions, now=utc_now(), timing=TIMING)
            assert result.looked_at == 0, result

        await timed(idle_pass, 5)  # warm the caches and the pool
        floor_ms = await timed(floor, 50)
        idle_ms = await timed(idle_pass, 50)
        due = groups // 100
        async with sessions() as session, session.begin():
            ids = (
                (
                    await (await session.connection()).execute(
                        sa.select(Group.id).order_by(Group.codename).limit(due)
                    )
                )
                .scalars()
                .all()
            )
            await (await session.connection()).execute(
                sa.update(Group)
                .where(Group.id.in_(ids))
                .values(status=Status.LATE, next_transition_at=utc_now() - timedelta(seconds=1))
            )
        started, rounds, flipped = time.perf_counter(), 0, 0
        while flipped < due:
            result = await run_pass(sessions, now=utc_now(), timing=TIMING)
            flipped += result.flips
            rounds += 1
        due_s = time.perf_counter() - started
        async with sessions() as session, session.begin():  # those alerts are not this bench's
            await (await session.connection()).execute(sa.text("UPDATE alerts SET state = 'sent'"))
            await (await session.connection()).execute(
                sa.text("UPDATE flips SET next_reminder_at = NULL")
            )
    return {
        "floor_ms": statistics.median(floor_ms),
        "idle_pass_ms": statistics.median(idle_ms),
        "idle_pass_p95_ms": pct(idle_ms, 95),
        "idle_ratio": statistics.median(idle_ms) / statistics.median(floor_ms),
        "due_groups": due,
        "due_seconds": due_s,
        "due_passes": rounds,
    }


async def enrol(url: str, server: ServerKeys, *, first: int, count: int) -> list[uuid.UUID]:
    """Activists, enrolled before the clock starts: each costs a blind index (Argon2id)."""
    async with (
        open_database(url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        return await add_activists(session, server, first, count)


async def watched(
    url: str, activists: list[uuid.UUID], *, prefix: str, deadlines: list[datetime]
) -> dict[str, datetime]:
    """Groups with their own activist, each silent at its deadline (grace ends then)."""
    async with (
        open_database(url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        rows = []
        for n, silent_at in enumerate(deadlines):
            last = silent_at - timedelta(seconds=30 + 5)
            rows.append(
                group_row(
                    f"{prefix}-{n:04d}", last=last, due_in=timedelta(seconds=30), interval_s=30
                )
            )
        await (await session.connection()).execute(sa.insert(Group), rows)
        await (await session.connection()).execute(
            sa.insert(RoleGrant),
            [
                {
                    "id": uuid.uuid4(),
                    "person_id": a,
                    "role": Role.ACTIVIST,
                    "group_id": r["id"],
                    "granted_at": utc_now(),
                }
                for a, r in zip(activists, rows, strict=True)
            ],
        )
    return {f"{prefix}-{n:04d}": d for n, d in enumerate(deadlines)}


def memory(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


async def live(
    config: Path, url: str, server: ServerKeys, standin: TelegramStandIn, args
) -> dict[str, float]:
    for_delays = await enrol(url, server, first=FIRST_ACTIVIST, count=args.delay_groups)
    for_burst = await enrol(url, server, first=FIRST_ACTIVIST + 100_000, count=args.burst)
    start = utc_now()
    spread = [
        start + timedelta(seconds=8 + 20 * n / args.delay_groups) for n in range(args.delay_groups)
    ]
    delays_for = await watched(url, for_delays, prefix="D", deadlines=spread)
    burst_at = start + timedelta(seconds=33)
    burst_for = await watched(url, for_burst, prefix="B", deadlines=[burst_at] * args.burst)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--config",
        str(config),
        env=child_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    seen: dict[str, datetime] = {}
    index = 0
    wanted = set(delays_for) | set(burst_for)
    deadline = time.monotonic() + 120
    try:
        while not wanted <= seen.keys() and time.monotonic() < deadline:
            for message in standin.sent[index:]:
                text = message.text or ""
                if "is SILENT" in text:
                    code = text.split(" is ")[0].removeprefix("⚠ ")
                    seen.setdefault(code, utc_now())
            index = len(standin.sent)
            await asyncio.sleep(0.01)
        mem = memory(proc.pid)
    finally:
        proc.terminate()
        _, stderr = await proc.communicate()
    missing = wanted - seen.keys()
    if missing:
        raise SystemExit(
            f"{len(missing)} alert(s) never arrived; bot said:\n{stderr.decode()[-2000:]}"
        )
    delays = [1000 * (seen[c] - d).total_seconds() for c, d in delays_for.items()]
    burst_s = max((seen[c] - burst_at).total_seconds() for c in burst_for)
    bound_s = args.burst / 30
    return {
        "delay_median_ms": statistics.median(delays),
        "delay_p99_ms": pct(delays, 99),
        "bot_vmhwm_mb": mem.get("VmHWM", float("nan")),
        "bot_vmrss_mb": mem.get("VmRSS", float("nan")),
        "burst": args.burst,
        "burst_seconds": burst_s,
        "burst_bound_seconds": bound_s,
        "burst_ratio": burst_s / bound_s,
    }


async def bench(args: argparse.Namespace) -> dict[str, object]:
    async with TelegramStandIn() as standin:
        with tempfile.TemporaryDirectory(prefix="intake-engine-bench-") as tmp:
            folder = Path(tmp)
            async with fresh_database(args.database_url, folder) as url:
                config = await install(folder, standin, url, KemName.X25519)
                server = ServerKeys(load_settings(config).server_secret_bytes())
                started = time.perf_counter()
                await populate(url, server, args.groups)
                populate_s = time.perf_counter() - started
                figures: dict[str, object] = {"backend": url.split(":")[0], "groups": args.groups}
                figures["populate_seconds"] = populate_s
                figures.update(await passes(url, args.groups))
                for n in range(args.delay_groups + args.burst):
                    standin.user(
                        FIRST_ACTIVIST + n
                        if n < args.delay_groups
                        else FIRST_ACTIVIST + 100_000 + n - args.delay_groups
                    )
                figures.update(await live(config, url, server, standin, args))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--delay-groups", type=int, default=200)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    f = asyncio.run(bench(args))
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()}))
    aims = (
        "p99 "
        + ("meets" if f["delay_p99_ms"] < 1000 else "MISSES")
        + " the 1 s aim; memory "
        + ("meets" if f["bot_vmhwm_mb"] < 150 else "MISSES")
        + " the 150 MB aim"
    )
    print(
        f"{f['groups']:,} groups on {f['backend']}: a pass with none due "
        f"{f['idle_pass_ms']:.1f} ms (p95 {f['idle_pass_p95_ms']:.1f}; "
        f"{f['idle_ratio']:.1f}x an empty SELECT 1 transaction); {f['due_groups']:,} due at once "
        f"flipped in {f['due_seconds']:.2f} s ({f['due_passes']} passes); "
        f"deadline to alert median {f['delay_median_ms']:.0f} ms, p99 {f['delay_p99_ms']:.0f} ms; "
        f"bot memory peak {f['bot_vmhwm_mb']:.0f} MB; {f['burst']} alerts to {f['burst']} chats in "
        f"{f['burst_seconds']:.1f} s, {f['burst_ratio']:.2f}x Telegram's bound of "
        f"{f['burst_bound_seconds']:.0f} s — {aims}"
    )


if __name__ == "__main__":
    main()
