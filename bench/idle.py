"""The bot at rest: CPU and memory of `intake run` with 100,000 groups and nothing due.

    .venv/bin/python bench/idle.py [--groups 100000] [--seconds 60] [--plain]
        [--database-url postgresql://USER@HOST/DB]

A fresh installation (as bench/engine.py makes it: SQLite in a temporary folder, or a
throwaway PostgreSQL database) is filled with ``--groups`` groups whose next deadlines
are hours away. The real bot (``python -m bot.cli run``) starts against a Telegram
stand-in in this process, as docs/deploy.md's systemd unit runs it: Python optimised
(``PYTHONOPTIMIZE=2``), its bytecode read from a cache as at every start after the
service's first (``--plain``: as ``intake run`` typed in a shell, with the bytecode
``pip install`` leaves). Once it polls (the start-up figure: launch until its first long
poll), it is left alone for ``--seconds`` (a quiet minute by default), and its CPU time
(user + system, /proc/PID/stat) and memory (VmHWM, VmRSS, /proc/PID/status) are read.
Aims (issue #19): ≤ 1.5 ms of CPU a second, VmHWM ≤ 80 MB, start-up ≤ 0.8 s.

Prints one JSON line and one line for people, with MISSES beside any figure that misses
its aim. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import PLAIN_HELP, install, memory_mb, populate, start_bot, verdict
from intake_throughput import child_env, cpu_seconds, fresh_database

from bot.standin import TelegramStandIn
from storage.db import open_database, session_factory

AIM_CPU_MS_PER_S = 1.5
AIM_VMHWM_MB = 80.0
AIM_STARTUP_S = 0.8
SETTLE_S = 3.0  # after the first long poll: the first looks, the first heartbeats


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "bench": "idle",
        "groups": args.groups,
        "seconds": args.seconds,
        "run_as": "typed" if args.plain else "service",
    }
    async with TelegramStandIn() as standin:
        with tempfile.TemporaryDirectory(prefix="intake-idle-bench-") as tmp:
            folder = Path(tmp)
            async with fresh_database(args.database_url, folder) as url:
                figures["database"] = make_url(url).get_backend_name()
                server = await install(folder, standin, url)
                async with open_database(url, migrate_to_head=False) as engine:
                    await populate(
                        session_factory(engine), server, groups=args.groups, activists=300
                    )
                child_env(plain=args.plain)  # its bytecode made before the clock starts
                launched = time.perf_counter()
                proc = await start_bot(folder, plain=args.plain)
                try:
                    await standin.wait_for(
                        lambda: (
                            standin.calls.count("getUpdates") >= 2 or proc.returncode is not None
                        ),
                        within=120,
                    )
                    if proc.returncode is not None:
                        raise SystemExit("the bot exited early")
                    figures["bot_startup_s"] = time.perf_counter() - launched
                    await asyncio.sleep(SETTLE_S)
                    before = cpu_seconds(proc.pid) or 0.0
                    started = time.perf_counter()
                    await asyncio.sleep(args.seconds)
                    after = cpu_seconds(proc.pid) or 0.0
                    elapsed = time.perf_counter() - started
                    memory = memory_mb(proc.pid)
                finally:
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                        await proc.wait()
    figures["cpu_ms_per_s"] = 1000 * (after - before) / elapsed
    figures["vmhwm_mb"] = memory.get("VmHWM", float("nan"))
    figures["vmrss_mb"] = memory.get("VmRSS", float("nan"))
    return figures


def describe(f: dict[str, Any]) -> str:
    return (
        f"`intake run` at rest ({'as typed' if f['run_as'] == 'typed' else 'as the service'}), "
        f"{f['groups']:,} groups on {f['database']}, "
        f"{f['seconds']:.0f} s: CPU {f['cpu_ms_per_s']:.2f} ms/s "
        f"[{verdict(f['cpu_ms_per_s'] <= AIM_CPU_MS_PER_S)} {AIM_CPU_MS_PER_S} ms/s]; "
        f"VmHWM {f['vmhwm_mb']:.0f} MB [{verdict(f['vmhwm_mb'] <= AIM_VMHWM_MB)} "
        f"{AIM_VMHWM_MB:.0f} MB], VmRSS {f['vmrss_mb']:.0f} MB; start-up until polling "
        f"{f['bot_startup_s']:.2f} s [{verdict(f['bot_startup_s'] <= AIM_STARTUP_S)} "
        f"{AIM_STARTUP_S} s]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=100_000, help="monitored groups")
    parser.add_argument("--seconds", type=float, default=60.0, help="the quiet time measured")
    parser.add_argument("--plain", action="store_true", help=PLAIN_HELP)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (a throwaway database is made there); default: SQLite",
    )
    args = parser.parse_args()
    figures = asyncio.run(bench(args))
    figures["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
    print(describe(figures))


if __name__ == "__main__":
    main()
