"""The everyday commands an admin expects: lists with --format json, `group edit`,
`codebook remove`, `--version`, `-h`, completion, one labelled time zone for output;
and the command line loads only what the command being run needs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer

from bot.cli import COMMANDS, load_all
from tests.bot.test_cli import PASSPHRASE, Call, Ran, assert_ok, copy_of, intake, intake_many

PHONE = "+8613912345678"
PHRASE = "CANARY pine cones are ripe"


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("everyday")
    env = {"INTAKE_PASSPHRASE": PASSPHRASE}
    assert_ok(intake("init", cwd=folder))
    keygen = intake(
        "keygen", "--out", "op.key", "--kem", "X25519", "--allow-classical", cwd=folder, env=env
    )
    assert_ok(keygen)
    public = keygen.stdout.strip()
    classical = "--allow-classical"  # the key is X25519 alone: fast to make
    assert_ok(intake("operator", "add", public, "--name", "Op One", classical, cwd=folder))
    ran = intake_many(
        {
            # Signed by the operator (#15), so that `audit verify` finds nothing untrusted.
            "pine": Call(
                ("group", "add", "PINE-7", "--interval", "12h", "--key", "op.key"), folder, env
            ),
            "oak": Call(
                ("group", "add", "OAK-2", "--cron", "0 8 * * *", "--tz", "UTC", "--key", "op.key"),
                folder,
                env,
            ),
        }
    )
    for one in ran.values():
        assert_ok(one)
    # Identifiers come from a file (or standard input), never from arguments (#15).
    (folder / "member.txt").write_text(f"phone: {PHONE}\nhidden-name: Kim\n", encoding="utf-8")
    assert_ok(intake("member", "add", "PINE-7", "--from", "member.txt", cwd=folder))
    return folder


def as_json(ran: Ran) -> Any:
    assert_ok(ran)
    return json.loads(ran.stdout)


def test_every_list_has_json(installation: Path) -> None:
    ran = intake_many(
        {
            "groups": Call(("group", "list", "--format", "json"), installation),
            "operators": Call(("operator", "list", "--format", "json"), installation),
            "members": Call(("member", "list", "PINE-7", "--format", "json"), installation),
            "codebook": Call(("codebook", "list", "--all", "--format", "json"), installation),
            "status": Call(("status", "--format", "json"), installation),
        }
    )
    groups = as_json(ran["groups"])
    assert [g["codename"] for g in groups] == ["OAK-2", "PINE-7"]
    operators = as_json(ran["operators"])
    assert isinstance(operators, list)
    assert operators[0]["name"] == "Op One"
    assert operators[0]["groups_readable"] == 2
    members = as_json(ran["members"])
    assert members == [
        {
            "member": 1,
            "added_at": members[0]["added_at"],
            "identifiers": {"hidden name": 1, "phone number": 1},
        }
    ]
    assert as_json(ran["codebook"]) == []
    assert len(as_json(ran["status"])) == 2
    for one in ran.values():
        assert PHONE.removeprefix("+") not in one.stdout
        assert "Kim" not in one.stdout


def test_member_list_shows_counts_and_never_an_identifier(installation: Path) -> None:
    ran = intake("member", "list", "PINE-7", cwd=installation)
    assert_ok(ran)
    assert "1 hidden name, 1 phone number" in ran.stdout
    assert "1 member in PINE-7" in ran.stdout
    assert "13912345678" not in ran.stdout
    assert "Kim" not in ran.stdout


def test_codebook_remove_takes_the_phrase_out_without_printing_it(
    installation: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(installation), str(folder)], check=True)
    added = subprocess.run(
        [sys.executable, "-m", "bot.cli", "codebook", "add", "PINE-7", "-", "--means", "duress"],
        cwd=folder,
        input=PHRASE + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    listed = as_json(intake("codebook", "list", "PINE-7", "--format", "json", cwd=folder))
    assert listed == [{"means": "duress", "group": 1, "organisation_wide": 0}]
    wrong = intake("codebook", "remove", "PINE-7", "not a phrase there", cwd=folder)
    assert wrong.returncode == 1
    assert "no such phrase" in wrong.stderr
    # Matched as messages are matched: case and spacing do not matter.
    removed = intake("codebook", "remove", "PINE-7", PHRASE.upper().replace(" ", "  "), cwd=folder)
    assert_ok(removed)
    assert "removed" in removed.stdout
    assert as_json(intake("codebook", "list", "PINE-7", "--format", "json", cwd=folder)) == []
    for ran in (added, removed, wrong):
        output = ran.stdout + ran.stderr
        assert "CANARY" not in output.upper()


def test_group_edit_changes_only_what_is_given(installation: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(installation), str(folder)], check=True)
    assert_ok(intake("group", "edit", "PINE-7", "--grace", "1h", cwd=folder))
    assert_ok(intake("group", "edit", "OAK-2", "--cron", "0 9 * * *", cwd=folder))
    groups = {
        g["codename"]: g for g in as_json(intake("group", "list", "--format", "json", cwd=folder))
    }
    assert (groups["PINE-7"]["interval_s"], groups["PINE-7"]["grace_s"]) == (43200, 3600)
    assert (groups["OAK-2"]["cron"], groups["OAK-2"]["tz"]) == ("0 9 * * *", "UTC")
    nothing = intake("group", "edit", "PINE-7", cwd=folder)
    assert nothing.returncode == 2
    assert "give at least one" in nothing.stderr
    both = intake("group", "edit", "PINE-7", "--interval", "1h", "--cron", "0 8 * * *", cwd=folder)
    assert both.returncode == 1
    assert "not both" in both.stderr
    audit = intake("audit", "verify", cwd=folder)
    assert_ok(audit)


def test_times_are_labelled_in_the_display_zone_or_tz(installation: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(installation), str(folder)], check=True)
    ran = intake_many(
        {
            "default": Call(("status",), folder),
            "tz": Call(("--tz", "Asia/Seoul", "status"), folder),
            "bad tz": Call(("--tz", "Mars/Olympus", "status"), folder),
        }
    )
    assert " UTC" in ran["default"].stdout
    assert " KST" in ran["tz"].stdout
    assert " UTC" not in ran["tz"].stdout
    assert ran["bad tz"].returncode == 2
    assert "--tz: unknown time zone" in ran["bad tz"].stderr
    config = folder / "config.toml"
    text = config.read_text()
    assert 'timezone = "UTC"' in text  # written by `intake init` from the example
    config.write_text(text.replace('timezone = "UTC"', 'timezone = "Asia/Bangkok"'))
    bangkok = intake("status", cwd=folder)
    assert_ok(bangkok)
    assert "Asia/Bangkok" in bangkok.stdout  # its abbreviation is "+07": the name is shown


def test_version_short_help_and_completion() -> None:
    ran = intake_many(
        {
            "version": Call(("--version",), Path.cwd()),
            "h": Call(("-h",), Path.cwd()),
            "group h": Call(("group", "-h"), Path.cwd()),
            # What `intake --install-completion` puts in the shell's rc file runs this; the
            # shell is named outright (`--show-completion` guesses it from the parent
            # processes, which a test runner's are not).
            "completion": Call((), Path.cwd(), {"_INTAKE_COMPLETE": "source_bash"}),
            "import help": Call(("group", "import", "--help"), Path.cwd()),
        }
    )
    assert ran["version"].stdout.startswith("intake ")
    for name in COMMANDS:
        assert f"  {name} " in ran["h"].stdout, name
    assert "edit" in ran["group h"].stdout
    assert "_INTAKE_COMPLETE" in ran["completion"].stdout
    assert "codename, interval, cron, tz, grace," in " ".join(ran["import help"].stdout.split())


def test_an_unknown_import_column_lists_the_valid_ones(installation: Path, tmp_path: Path) -> None:
    groups = tmp_path / "groups.csv"
    groups.write_text("codename,every\nELM-1,12h\n")
    ran = intake("group", "import", str(groups), cwd=installation)
    assert ran.returncode == 1
    assert "codename, interval, cron, tz, grace, detained_after" in ran.stderr


def test_the_help_table_matches_the_commands_it_stands_for() -> None:
    load_all()
    from bot.cli.common import app

    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    assert set(root.commands) == set(COMMANDS)
    for name, (_, line) in COMMANDS.items():
        help_text = " ".join((root.commands[name].help or "").split())
        assert help_text.startswith(line), name


@pytest.mark.parametrize(
    ("word", "absent"),
    [
        (None, ("sqlalchemy", "pydantic", "cryptography", "telegram", "matplotlib", "rich")),
        (
            "status",
            ("telegram", "matplotlib", "aiohttp", "bot.cli.inbox", "sqlalchemy", "apscheduler"),
        ),
        ("group", ("telegram", "matplotlib", "bot.cli.inbox")),
        ("doctor", ("matplotlib", "bot.cli.inbox")),
    ],
)
def test_a_command_loads_only_its_own_modules(word: str | None, absent: tuple[str, ...]) -> None:
    code = (
        "import sys\n"
        "from bot.cli import load, COMMANDS\n"
        f"load({word!r})\n"
        "import bot.cli.common\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    for module in absent:
        assert module not in loaded, f"intake {word or '--help'} imported {module}"
    if word is not None:
        for module in COMMANDS[word][0]:
            assert f"bot.cli.{module}" in loaded


STATUS_PROBE = """
import sys
sys.argv = ["intake", *sys.argv[2:]]
if sys.argv[1] == "full":  # what status printed before the glance: the models' read
    import bot.cli.status
    bot.cli.status.glance_groups = lambda url: None
    del sys.argv[1]
else:
    del sys.argv[1]
from bot.cli import main
try:
    main()
finally:
    heavy = ("sqlalchemy", "alembic", "aiosqlite", "apscheduler", "asyncio")
    print("LOADED", *[m for m in heavy if m in sys.modules], file=sys.stderr)
"""


def _status(installation: Path, path: str, *args: str) -> tuple[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", STATUS_PROBE, "-", path, *args],
        cwd=installation,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = [line for line in done.stderr.splitlines() if line.startswith("LOADED")]
    assert len(loaded) == 1, done.stderr
    return done.stdout, loaded[0].split()[1:]


@pytest.fixture(scope="module")
def with_a_pause(installation: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = copy_of(installation, tmp_path_factory.mktemp("paused") / "installation")
    assert_ok(intake("group", "pause", "OAK-2", "--for", "2h", cwd=folder))
    return folder


@pytest.mark.parametrize(
    "args", [("status",), ("status", "--format", "json"), ("--tz", "Asia/Seoul", "status")]
)
def test_status_on_sqlite_shows_the_same_without_sqlalchemy(
    with_a_pause: Path, args: tuple[str, ...]
) -> None:
    # A paused group (counted from its end), a cron one and an interval one.
    glanced, glanced_loaded = _status(with_a_pause, "glance", *args)
    full, full_loaded = _status(with_a_pause, "full", *args)
    assert glanced == full
    assert "PINE-7" in glanced
    assert glanced_loaded == []  # no SQLAlchemy, alembic, nor an event loop
    assert {"sqlalchemy", "aiosqlite"} <= set(full_loaded)


def test_status_still_migrates_a_database_an_upgrade_left_behind(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from storage.db import head_revision
    from storage.glance import MIGRATIONS

    assert_ok(intake("init", cwd=tmp_path))
    database = tmp_path / "intake.db"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{database}")
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "-1")
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    assert before != head_revision()
    ran = intake("status", "--format", "json", cwd=tmp_path)
    assert as_json(ran) == []
    with engine.connect() as conn:
        after = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    assert after == head_revision()


def test_the_polling_bot_loads_no_second_http_stack_nor_the_command_line() -> None:
    # What `intake run` imports before its first alert can go out: each of these cost
    # a start after a crash time (aiohttp alone about half a second); the bot's HTTP
    # is httpx, which python-telegram-bot loads (the webhook loads aiohttp when used).
    code = (
        "import sys\n"
        "import bot.startup, bot.app, bot.watch, bot.integrity.jobs\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    for module in ("aiohttp", "typer", "rich", "matplotlib", "bot.cli.common"):
        assert module not in loaded, f"intake run imported {module}"
    assert "httpx" in loaded


# --------------------------------------------------------------------------- PostgreSQL


def test_init_with_a_postgresql_url_creates_the_schema(tmp_path: Path) -> None:
    admin_url = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not admin_url:
        pytest.skip("INTAKE_TEST_DATABASE_URL names no PostgreSQL server")
    name = f"intake_init_{uuid.uuid4().hex[:12]}"

    async def sql(statement: str) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(
            sa.engine.make_url(admin_url).set(drivername="postgresql+asyncpg"),
            isolation_level="AUTOCOMMIT",
        )
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    asyncio.run(sql(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        ran = intake("init", "--dir", "pg", "--database-url", url, cwd=tmp_path)
        assert_ok(ran)
        assert not (tmp_path / "pg" / "intake.db").exists()
        status = intake("status", "--format", "json", cwd=tmp_path / "pg")
        assert as_json(status) == []
        doctor = intake("doctor", "--format", "json", cwd=tmp_path / "pg")
        checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["database"]["ok"], doctor
        assert checks["migration"]["ok"], doctor
    finally:
        asyncio.run(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_init_keeps_a_database_password_out_of_the_config_and_leaves_nothing_if_it_fails(
    tmp_path: Path,
) -> None:
    password = "CANARY-pw-" + uuid.uuid4().hex[:8]
    url = f"postgresql://intake:{password}@127.0.0.1:9/intake"  # nothing listens on port 9
    ran = intake("init", "--dir", "pg", "--database-url", url, cwd=tmp_path)
    assert ran.returncode == 1, str(ran)
    assert password not in ran.stdout + ran.stderr
    assert sorted(p.name for p in (tmp_path / "pg").iterdir()) == []


def test_every_command_module_is_in_the_table_so_that_it_loads() -> None:
    # A module missing from COMMANDS would never be imported, and its commands would be
    # silently absent.
    folder = Path(__file__).resolve().parents[2] / "bot" / "cli"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "__main__", "common"}
    listed = {m for ms, _ in COMMANDS.values() for m in ms}
    assert modules == listed
