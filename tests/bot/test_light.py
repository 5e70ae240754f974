"""A light bot process: ``intake run`` loads none of the other commands' libraries,
a database already at the newest revision is opened without alembic, and nothing the bot
does rests on what ``python -OO`` (the service's PYTHONOPTIMIZE=2) leaves out."""

from __future__ import annotations

import ast
import gc
import subprocess
import sys
from pathlib import Path

import pytest

import bot
import storage
from bot.cli import main
from storage.db import head_revision
from storage.glance import head_from_files

# pydantic: typer needs it, the settings do not (bot/config.py), and it stays 7 MB.
HEAVY = ("typer", "rich", "matplotlib", "alembic", "aiohttp", "pydantic")
PROBE = """
import sys
sys.argv = ["intake", "run", "--config", sys.argv[1]]
from bot.cli import main
try:
    main()
except SystemExit as exc:
    print("exit", exc.code)
print(" ".join(m for m in {heavy!r} if m in sys.modules))
"""


def test_intake_run_loads_no_command_line_or_plotting_library(tmp_path: Path) -> None:
    # A config that does not exist: `intake run` stops at the settings, after its
    # imports, with one line on stderr.
    missing = tmp_path / "absent.toml"
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), str(missing)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "exit 78"  # a configuration to fix (bot.startup), as systemd expects
    assert lines[1:] in ([], [""]), f"`intake run` loaded {lines[1:]}"
    assert done.stderr.startswith("intake: error:")
    assert len(done.stderr.splitlines()) == 1


# What `intake run` imports before it polls (bot.startup.run_from_command_line), then
# the HTTP client's connection pool, which python-telegram-bot loads at its first request.
SERVING = """
import sys
from bot.startup import lighten
lighten()
import bot.app, bot.watch, bot.integrity.jobs
import httpcore._async.connection_pool
print(" ".join(m for m in {heavy!r} if sys.modules.get(m) is not None))
"""


def test_the_bot_as_it_serves_loads_none_of_them_nor_trio() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVING.format(heavy=(*HEAVY, "trio"))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "", f"the serving bot loaded {done.stdout.split()}"


def test_the_serving_bot_loads_phone_numbers_and_babel_only_when_a_text_needs_them() -> None:
    # About 2 MB between them (#19): phonenumbers for the first text with enough digits,
    # Babel's formatting for the first time or duration said; the catalogues are compiled.
    done = subprocess.run(
        [sys.executable, "-c", SERVING.format(heavy=("phonenumbers", "babel"))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "", f"the serving bot loaded {done.stdout.split()}"


def test_the_newest_revision_read_without_alembic_is_alembics() -> None:
    assert head_from_files() == head_revision()


def test_the_bot_on_sqlite_loads_no_postgresql_driver_nor_dialect() -> None:
    # 2.4 MB and about 35 ms of every start, for a database it does not use.
    unused = ("asyncpg", "sqlalchemy.dialects.postgresql")
    done = subprocess.run(
        [sys.executable, "-c", SERVING.format(heavy=unused)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "", f"the serving bot loaded {done.stdout.split()}"


def test_a_start_that_fails_leaves_the_cyclic_collector_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `intake run` turns the collector off for its imports (bot.cli.main); a start-up
    # that stops before serving must not leave it off in the process.
    monkeypatch.setattr(sys, "argv", ["intake", "run", "--config", str(tmp_path / "absent.toml")])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 78
    assert gc.isenabled()


def _narrows_a_type(test: ast.expr) -> bool:
    """``isinstance(x, T)`` or ``x is not None``: what the type checker cannot see."""
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Name):
        return test.func.id == "isinstance"
    return (
        isinstance(test, ast.Compare)
        and [type(op) for op in test.ops] == [ast.IsNot]
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


def test_no_assert_checks_anything_and_no_code_reads_a_docstring() -> None:
    # docs/deploy.md's unit runs the bot optimised, which drops asserts and docstrings
    # (about 7 MB at rest, #19): an assert that guarded a check would vanish in service.
    found = []
    for package in (bot, storage):
        for path in Path(package.__path__[0]).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Assert) and not _narrows_a_type(node.test):
                    found.append(f"{path}:{node.lineno}: assert {ast.unparse(node.test)}")
                if isinstance(node, ast.Attribute) and node.attr == "__doc__":
                    found.append(f"{path}:{node.lineno}: reads __doc__")
    assert found == []
