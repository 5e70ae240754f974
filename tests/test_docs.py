"""The documentation cannot drift from the code: every `intake` command, option, bot
command and setting that README.md and docs/ mention exists."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

import pytest
import typer
from telegram.ext import ApplicationBuilder, CommandHandler

from bot import handlers
from bot.cli import app
from bot.config import SECTIONS

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# `intake WORD ...` up to the end of the line or of an inline code span; WORD is what a
# command name looks like (prose such as "intake run's code" does not match).
# Not the user named intake in `sudo -u intake CMD` or `createdb -O intake NAME`.
COMMAND = re.compile(
    r"(?:^|[`\s]|bin/)(?<!-[uoOg] )intake ([a-z][a-z-]*(?=[\s`]|$)[^`\n#|]*)", re.MULTILINE
)
SETTING = re.compile(r"\[(\w+)\] `?(\w+)`?")
# In code: `/help`, or a line of its own that starts with /start.
BOT_COMMAND = re.compile(r"(?:`|^\s*)/([a-z]+)\b", re.MULTILINE)


def mentions() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for match in COMMAND.finditer(page.read_text()):
            found.append((page.name, match.group(1).strip()))
    return found


def walk(words: list[str]) -> Any:
    # bot.cli hands out `app` through a module __getattr__ typed `object`.
    command: Any = typer.main.get_command(cast(typer.Typer, app))
    for word in words:
        subcommands = getattr(command, "commands", None)
        if subcommands is None or word.startswith("-"):
            break
        sub = subcommands.get(word)
        if sub is None:
            if word.isupper() or not word.isalpha():
                break  # an argument, like PINE-7 or CODE
            raise AssertionError(f"intake has no command {word!r}")
        command = sub
    return command


@pytest.mark.parametrize(("page", "line"), mentions())
def test_every_intake_command_in_the_docs_exists_with_its_options(page: str, line: str) -> None:
    try:
        words = shlex.split(line)
    except ValueError:  # an unbalanced quote in prose
        words = line.split()
    command = walk(words)
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in words:
        option = word.split("=")[0]
        if option.startswith("--"):
            assert option in known, f"{page}: intake {line!r} uses {option}, which is not an option"


def test_every_setting_in_the_docs_exists() -> None:
    for page in PAGES:
        for section, key in SETTING.findall(page.read_text()):
            if section not in SECTIONS:
                continue
            names = {f.name for f in fields(SECTIONS[section])}
            assert key in names, f"{page.name}: [{section}] {key} is not a setting"


def test_every_bot_command_in_the_guides_is_handled() -> None:
    application = ApplicationBuilder().token("1:not-a-token").updater(None).build()
    handlers.register(application)
    handled = {
        name
        for group in application.handlers.values()
        for handler in group
        if isinstance(handler, CommandHandler)
        for name in handler.commands
    }
    for page in sorted((ROOT / "docs" / "guides").glob("*.md")):
        for name in BOT_COMMAND.findall(page.read_text()):
            assert name in handled, f"{page.name} mentions /{name}, which the bot does not handle"
