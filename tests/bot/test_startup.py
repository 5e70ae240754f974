"""`intake run` as a service manager runs it: every start-up failure is one line on
stderr with exit status 78 (the configuration must change) or 69 (something needed is
unavailable), never a traceback and never the token; a second process is refused
without disturbing the first; SIGTERM stops it within seconds, the drain included,
losing nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from bot.app import serve
from bot.config import load_settings
from bot.standin import TelegramStandIn
from storage.codebook import add_phrase
from storage.crypto import KemName, PrivateKey, ServerKeys, SigningKey
from storage.db import open_database, session_factory
from storage.groups import create_group
from storage.models import Operator, Signal
from storage.timeutil import utc_now
from storage.trust import Trust, bind
from tests.bot.intake_harness import Installation, eventually, install, sign_operator
from tests.conftest import Database
from tests.storage.helpers import SCHEDULE

REPO = Path(__file__).resolve().parents[2]
EX_UNAVAILABLE = 69
EX_CONFIG = 78
OTHER_TOKEN = "7000000009:AA" + "Zq" * 17  # well formed, but not the stand-in's
SECRET = "wh-secret_0123456789abcdefABCDEF"


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}


@dataclass(frozen=True)
class Exited:
    status: int
    stderr: str
    stdout: str

    def __str__(self) -> str:
        return f"exit {self.status}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


async def start_intake(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        "--config",
        str(config),
        env=child_env(),
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_intake(config: Path, *args: str) -> Exited:
    proc = await start_intake(config, *args)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Exited(proc.returncode, err.decode(), out.decode())


def assert_one_line_failure(ran: Exited, status: int, token: str, *fragments: str) -> None:
    assert ran.status == status, str(ran)
    assert "Traceback" not in ran.stderr, str(ran)
    errors = [line for line in ran.stderr.splitlines() if "intake: error:" in line]
    assert len(errors) == 1, str(ran)
    assert ran.stderr.strip().splitlines()[-1] == errors[0], str(ran)
    for fragment in fragments:
        assert fragment in errors[0], str(ran)
    assert token not in ran.stderr + ran.stdout
    assert token.split(":")[1] not in ran.stderr + ran.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def installation(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> Installation:
    return await install(tmp_path / "server", standin=standin, database_url=database.url)


def config_of(installation: Installation) -> Path:
    return installation.path / "config.toml"


@contextlib.asynccontextmanager
async def live_bot(installation: Installation, standin: TelegramStandIn) -> AsyncIterator[None]:
    """A bot already running on the installation (in this process)."""
    stop = asyncio.Event()
    settings = load_settings(config_of(installation))
    task = asyncio.create_task(serve(settings, stop=stop))
    try:
        await eventually(lambda: "getUpdates" in standin.calls or task.done(), within=30)
        if task.done():
            task.result()
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


# --------------------------------------------------------------------------- configuration: 78


async def test_a_token_telegram_refuses_is_one_line_with_status_78(
    installation: Installation, standin: TelegramStandIn
) -> None:
    (installation.path / "token").write_text(OTHER_TOKEN)
    ran = await run_intake(config_of(installation), "run")
    assert_one_line_failure(ran, EX_CONFIG, OTHER_TOKEN, "refused the bot token")


@pytest.mark.parametrize("which", ["token", "server_secret"])
async def test_a_secret_others_may_read_is_refused_with_status_78(
    installation: Installation, standin: TelegramStandIn, which: str
) -> None:
    (installation.path / which).chmod(0o644)
    ran = await run_intake(config_of(installation), "run")
    assert_one_line_failure(ran, EX_CONFIG, standin.token, "chmod 600", which, "0644")
    assert "getMe" not in standin.calls  # refused before anything was sent with it


async def test_a_secret_that_cannot_be_read_is_one_line_with_status_78(
    installation: Installation, standin: TelegramStandIn
) -> None:
    (installation.path / "server_secret").unlink()
    (installation.path / "server_secret").mkdir()  # root reads any file; not a directory
    ran = await run_intake(config_of(installation), "run")
    assert_one_line_failure(ran, EX_CONFIG, standin.token, "[keys] server_secret", "cannot read")


async def test_a_database_path_with_a_typo_is_refused_not_created(
    installation: Installation, standin: TelegramStandIn
) -> None:
    config = config_of(installation)
    text = config.read_text()
    if "sqlite" not in text:
        pytest.skip("a SQLite path")
    typo = installation.path / "intak.db"
    config.write_text(_with_database(text, f"sqlite:///{typo}"))
    ran = await run_intake(config, "run")
    assert_one_line_failure(ran, EX_CONFIG, standin.token, "no database at", "intake init")
    status = await run_intake(config, "status")
    assert status.status == 1, str(status)
    assert "no database at" in status.stderr
    assert not typo.exists()


def _with_database(text: str, url: str) -> str:
    lines = [f'url = "{url}"' if line.startswith("url = ") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


async def test_commands_other_than_run_do_not_need_the_token(
    installation: Installation, standin: TelegramStandIn
) -> None:
    (installation.path / "token").unlink()
    ran = await run_intake(config_of(installation), "status", "--json")
    assert ran.status == 0, str(ran)
    refused = await run_intake(config_of(installation), "run")
    assert_one_line_failure(refused, EX_CONFIG, standin.token, "[telegram] token")


# --------------------------------------------------------------------------- unavailable: 69


async def test_telegram_out_of_reach_is_one_line_with_status_69(
    installation: Installation, standin: TelegramStandIn
) -> None:
    config = config_of(installation)
    closed = free_port()
    config.write_text(
        config.read_text().replace(standin.base_url, f"http://127.0.0.1:{closed}/bot")
    )
    ran = await run_intake(config, "run")
    assert_one_line_failure(ran, EX_UNAVAILABLE, standin.token, "cannot reach Telegram")
    assert f"127.0.0.1:{closed}" in ran.stderr


async def test_a_second_bot_on_one_database_is_refused_and_the_first_runs_on(
    installation: Installation, standin: TelegramStandIn
) -> None:
    async with live_bot(installation, standin):
        ran = await run_intake(config_of(installation), "run")
        assert_one_line_failure(ran, EX_UNAVAILABLE, standin.token, "already")
        person = standin.user(6_400_100_300, "Relative")
        standin.send_text(person, "still taken in")
        await eventually(lambda: any(m.chat_id == person.id for m in standin.sent), within=30)


def with_webhook_secret(folder: Path) -> Path:
    folder.mkdir()
    (folder / "webhook_secret").write_text(SECRET)
    (folder / "webhook_secret").chmod(0o600)
    return folder


async def webhook_installation(
    folder: Path, standin: TelegramStandIn, database: Database, *, public_url: str, port: int
) -> Installation:
    with_webhook_secret(folder)
    installation = await install(
        folder,
        standin=standin,
        database_url=database.url,
        extra=f"""
[webhook]
listen = "127.0.0.1"
port = {port}
public_url = "{public_url}"
secret_token = "file:webhook_secret"
""",
    )
    config = config_of(installation)
    config.write_text(config.read_text().replace("[telegram]\n", '[telegram]\nmode = "webhook"\n'))
    return installation


async def test_a_busy_webhook_port_is_refused_before_the_live_webhook_is_touched(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    port = free_port()
    installation = await webhook_installation(
        tmp_path / "server",
        standin,
        database,
        public_url=f"https://127.0.0.1:{port}/hook",
        port=port,
    )
    config = config_of(installation)
    if database.backend == "sqlite":
        pytest.skip("on SQLite the database lock refuses the second process first")
    stop = asyncio.Event()
    live = asyncio.create_task(serve(load_settings(config), stop=stop))
    try:
        await eventually(lambda: standin.webhook_url.endswith("/hook") or live.done(), within=30)
        calls_before = list(standin.calls)
        ran = await run_intake(config, "run")
        assert_one_line_failure(ran, EX_UNAVAILABLE, standin.token, f"127.0.0.1:{port}")
        assert standin.webhook_url == f"https://127.0.0.1:{port}/hook"
        made = standin.calls[len(calls_before) :]
        assert "deleteWebhook" not in made
        assert "setWebhook" not in made
        assert not live.done()
    finally:
        stop.set()
        await asyncio.wait_for(live, timeout=30)


# --------------------------------------------------------------------------- start and stop


async def test_start_and_stop_are_one_line_each_and_sigterm_in_the_drain_loses_nothing(
    installation: Installation, standin: TelegramStandIn
) -> None:
    people = [standin.user(6_400_200_000 + n, f"Relative {n}") for n in range(10)]
    config = config_of(installation)
    config.write_text(config.read_text() + "rate_limit_per_hour = 1000000\n")
    queued = 400
    for n in range(queued):
        standin.send_text(people[n % len(people)], f"queued text {n}")
    standin.delay_next("getUpdates", 0.3, count=1_000)  # a slow Telegram: the drain lasts
    proc = await start_intake(config, "run")
    try:
        await eventually(lambda: standin.calls.count("getUpdates") >= 2, within=60)
        proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        began = loop.time()
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        took = loop.time() - began
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = err.decode()
    assert proc.returncode == 0, log
    assert took < 10, f"SIGTERM took {took:.1f}s\n{log}"
    started = [line for line in log.splitlines() if "started:" in line]
    assert len(started) == 1, log
    assert "polling as @" in started[0]
    assert "database SQLite" in started[0] or "database PostgreSQL" in started[0]
    assert "watching 0 groups" in started[0]
    assert len([line for line in log.splitlines() if "stopped (SIGTERM)" in line]) == 1, log
    assert standin.token not in log
    # What was not confirmed is given again: a second run takes in every text once.
    stored_first = await processed(installation)
    assert stored_first < queued, "the drain was not interrupted; slow the stand-in more"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(load_settings(config), stop=stop))
    try:
        for _ in range(600):
            if await processed(installation) >= queued or task.done():
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert await processed(installation) == queued


async def processed(installation: Installation) -> int:
    url = installation.settings.database.url
    async with open_database(url, migrate_to_head=False) as engine, engine.connect() as conn:
        count = (await conn.execute(sa.text("SELECT count(*) FROM processed_updates"))).scalar()
        return int(count or 0)


# --------------------------------------------------------------------------- intake doctor


async def doctor(installation: Installation) -> tuple[Exited, dict[str, dict[str, object]]]:
    ran = await run_intake(config_of(installation), "doctor", "--format", "json")
    report = json.loads(ran.stdout)
    assert report["ok"] is (ran.status == 0), str(ran)
    return ran, {check["name"]: check for check in report["checks"]}


def owner_only(installation: Installation) -> None:
    config_of(installation).chmod(0o600)
    path = installation.settings.database.url.removeprefix("sqlite+aiosqlite:///")
    if installation.settings.database.url.startswith("sqlite"):
        Path(path).chmod(0o600)


async def healthy(installation: Installation) -> SigningKey:
    """Files readable by their owner alone, and the operator's key signed and pinned;
    the operator's signing key."""
    owner_only(installation)
    return await sign_operator(installation)


async def test_doctor_passes_a_healthy_installation_and_names_the_bot(
    installation: Installation, standin: TelegramStandIn
) -> None:
    await healthy(installation)
    ran, checks = await doctor(installation)
    assert ran.status == 0, str(ran)
    assert set(checks) >= {
        "config",
        "secrets",
        "file modes",
        "database",
        "migration",
        "operators",
        "signatures",
        "token",
        "webhook",
        "clock",
        "disk",
    }
    assert str(checks["token"]["detail"]).startswith("the bot is @")
    assert standin.token not in ran.stdout + ran.stderr
    text = await run_intake(config_of(installation), "doctor")
    assert text.status == 0, str(text)
    assert all(line.startswith("ok") for line in text.stdout.splitlines()), str(text)


@pytest.mark.parametrize(
    "breakage",
    [
        "world-readable token",
        "world-readable server_secret",
        "unreadable server_secret",
        "database typo",
        "token refused",
        "telegram unreachable",
        "webhook set while polling",
        "token unset",
    ],
)
async def test_doctor_fails_each_broken_installation_on_the_right_check(
    installation: Installation, standin: TelegramStandIn, breakage: str
) -> None:
    await healthy(installation)
    config = config_of(installation)
    failing = {
        "world-readable token": "file modes",
        "world-readable server_secret": "file modes",
        "unreadable server_secret": "secrets",
        "database typo": "database",
        "token refused": "token",
        "telegram unreachable": "telegram",
        "webhook set while polling": "webhook",
        "token unset": "secrets",
    }[breakage]
    if breakage == "world-readable token":
        (installation.path / "token").chmod(0o644)
    elif breakage == "world-readable server_secret":
        (installation.path / "server_secret").chmod(0o644)
    elif breakage == "unreadable server_secret":
        (installation.path / "server_secret").unlink()
        (installation.path / "server_secret").mkdir()  # root reads any file; not a directory
    elif breakage == "database typo":
        config.write_text(_with_database(config.read_text(), "sqlite:///intak.db"))
    elif breakage == "token refused":
        (installation.path / "token").write_text(OTHER_TOKEN)
    elif breakage == "telegram unreachable":
        config.write_text(
            config.read_text().replace(standin.base_url, f"http://127.0.0.1:{free_port()}/bot")
        )
    elif breakage == "webhook set while polling":
        async with aiohttp.ClientSession() as session:
            url = f"{standin.base_url}{standin.token}/setWebhook"
            async with session.post(url, json={"url": "http://127.0.0.1:9/x"}) as resp:
                assert resp.status == 200
    elif breakage == "token unset":
        (installation.path / "token").unlink()
    ran, checks = await doctor(installation)
    assert ran.status == 1, str(ran)
    assert checks[failing]["ok"] is False, str(ran)
    others = [name for name, check in checks.items() if not check["ok"] and name != failing]
    assert others == [], str(ran)
    assert standin.token not in ran.stdout + ran.stderr
    assert OTHER_TOKEN.split(":")[1] not in ran.stdout + ran.stderr
    assert not (installation.path / "intak.db").exists()
    if breakage.endswith("server_secret"):
        detail = str(checks[failing]["detail"])
        assert "server_secret" in detail, detail
        if breakage.startswith("unreadable"):
            assert "cannot read" in detail, detail
            assert checks["config"]["ok"] is True, str(ran)
        else:
            assert "0644" in detail, detail
            assert "chmod 600" in detail, detail


async def test_doctor_in_webhook_mode_says_whether_the_listener_can_start(
    tmp_path: Path, database: Database, standin: TelegramStandIn
) -> None:
    """Free, or served by this installation's own running bot: fine. Held by another
    program: `intake run` would stop at start, so doctor fails it, with the fix."""
    port = free_port()
    public = f"https://127.0.0.1:{port}/hook"
    installation = await webhook_installation(
        tmp_path / "server", standin, database, public_url=public, port=port
    )
    config = config_of(installation)
    await healthy(installation)
    async with aiohttp.ClientSession() as session:
        url = f"{standin.base_url}{standin.token}/setWebhook"
        async with session.post(url, json={"url": public}) as resp:
            assert resp.status == 200

    ran, checks = await doctor(installation)
    assert ran.status == 0, str(ran)
    assert checks["listener"]["detail"] == f"127.0.0.1:{port} is free for the webhook listener"

    with socket.create_server(("127.0.0.1", port)):
        ran, checks = await doctor(installation)
        assert ran.status == 1, str(ran)
        assert checks["listener"]["ok"] is False
        assert "another program listens on 127.0.0.1:" in str(checks["listener"]["detail"])
        assert "change [webhook] port" in str(checks["listener"]["detail"])
        assert [name for name, check in checks.items() if not check["ok"]] == ["listener"]

    stop = asyncio.Event()
    live = asyncio.create_task(serve(load_settings(config), stop=stop))
    try:
        await eventually(lambda: standin.webhook_url == public or live.done(), within=30)
        ran, checks = await doctor(installation)
        assert ran.status == 0, str(ran)
        assert checks["listener"]["detail"] == f"127.0.0.1:{port} is served by a running intake"
    finally:
        stop.set()
        await asyncio.wait_for(live, timeout=30)


PHRASE = "the persimmons are ripe early"


async def test_doctor_names_a_tampered_codebook_entry_and_an_unsigned_group(
    installation: Installation, standin: TelegramStandIn
) -> None:
    signing = await healthy(installation)
    settings = installation.settings
    now = utc_now()
    async with open_database(settings.database.url, migrate_to_head=False) as engine:
        server = ServerKeys(settings.server_secret_bytes())
        bind(engine, server=server, trust=Trust(None))
        async with session_factory(engine)() as session, session.begin():
            pine = await create_group(
                session,
                codename="PINE-7",
                schedule=SCHEDULE,
                kem=KemName.X25519,
                now=now,
                signing=signing,
            )
            for phrase, means in ((PHRASE, Signal.DURESS), ("the river is low", Signal.CHECKIN)):
                await add_phrase(
                    session,
                    server=server,
                    group=pine,
                    phrase=phrase,
                    means=means,
                    now=now,
                    signing=signing,
                )
            # Made without --key: nobody signed it.
            await create_group(
                session, codename="OAK-2", schedule=SCHEDULE, kem=KemName.X25519, now=now
            )
        ran, checks = await doctor(installation)
        assert ran.status == 1, str(ran)
        assert [n for n, c in checks.items() if not c["ok"]] == ["signatures"], str(ran)
        detail = str(checks["signatures"]["detail"])
        assert detail.startswith("the bot does not use unsigned: group OAK-2:"), detail
        assert "intake operator sign --key" in detail
        assert "PINE-7" not in detail

        # An intruder with the database turns the duress phrase into a check-in.
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE codebook_entries SET means = 'checkin' WHERE means = 'duress'")
            )
    ran, checks = await doctor(installation)
    assert ran.status == 1, str(ran)
    assert [n for n, c in checks.items() if not c["ok"]] == ["signatures"], str(ran)
    detail = str(checks["signatures"]["detail"])
    assert "unsigned: group OAK-2; signature fails: 1 codebook entry of PINE-7:" in detail
    assert "intake operator sign --key" in detail
    assert "restore it from a backup" in detail
    assert "\n" not in detail
    text = await run_intake(config_of(installation), "doctor")
    assert text.status == 1
    [line] = [x for x in text.stdout.splitlines() if x.startswith("FAIL")]
    assert "signatures" in line
    assert "1 codebook entry of PINE-7" in line
    for said in (ran.stdout + ran.stderr, text.stdout + text.stderr):
        assert "persimmon" not in said
        assert "river" not in said


async def test_doctor_fails_an_installation_whose_signatures_are_not_set_up(
    installation: Installation, standin: TelegramStandIn
) -> None:
    await healthy(installation)
    (installation.settings.config_dir / "operator_signers").unlink()
    ran, checks = await doctor(installation)
    assert ran.status == 1, str(ran)
    assert [n for n, c in checks.items() if not c["ok"]] == ["signatures"], str(ran)
    assert str(checks["signatures"]["detail"]) == (
        "no operator_signers file: nothing the bot trusts is checked; an operator runs "
        "`intake operator sign --key FILE` once"
    )


async def test_doctor_names_an_operator_nobody_pinned(
    installation: Installation, standin: TelegramStandIn
) -> None:
    await healthy(installation)
    intruder = PrivateKey.generate(KemName.X25519).public_key()
    async with (
        open_database(installation.settings.database.url, migrate_to_head=False) as engine,
        session_factory(engine)() as session,
        session.begin(),
    ):
        session.add(
            Operator(
                name_sealed=b"x",
                kem=intruder.kem.value,
                public_key=intruder.raw,
                fingerprint=intruder.fingerprint(),
                created_at=utc_now(),
            )
        )
    ran, checks = await doctor(installation)
    assert ran.status == 1, str(ran)
    assert [n for n, c in checks.items() if not c["ok"]] == ["signatures"], str(ran)
    assert str(checks["signatures"]["detail"]).startswith(
        f"the bot does not use unsigned: operator {intruder.fingerprint()}: "
    )
