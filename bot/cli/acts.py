"""`intake group pause|resume|safe|clear CODENAME`: the same acts as the
activists' commands in Telegram, by the same rules (``bot.acts``).

An admin on the command line counts as one person. On a group that is SILENT
or DETAINED, pausing, marking SAFE or clearing waits for a second person: an
activist of the group or an admin who sends the same command in Telegram. The
command line can confirm a request made in Telegram, but not one made on the
command line (it cannot tell two admins at the same server apart). Every act
is told at once to everyone alerted about the group.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.acts.rules import Outcome
from bot.acts.service import COMMAND_LINE, Result, Rules, request, resume
from bot.cli.common import (
    ConfigOption,
    Refused,
    codename_argument,
    duration_option,
    group_app,
    not_shredded,
    out,
    run,
    when,
    workspace,
)
from storage.groups import get_group
from storage.models import ActKind
from storage.timeutil import utc_now

CodenameArgument = Annotated[str, typer.Argument(metavar="CODENAME")]


def _act(config: ConfigOption, codename: str, act: ActKind, length: str | None = None) -> None:
    now = utc_now()

    async def go() -> tuple[str, Result]:
        async with workspace(config) as ws:
            group = not_shredded(await get_group(ws.session, codename=codename_argument(codename)))
            alerts = ws.settings.alerts
            result = await request(
                ws.session,
                server=ws.server,
                group=group,
                act=act,
                actor=COMMAND_LINE,
                rules=Rules(confirm_within=alerts.confirm_within, max_pause=alerts.max_pause),
                now=now,
                length=duration_option(length, "--for"),
            )
            return group.codename, result

    name, result = run(go())
    if result.outcome is Outcome.ARRIVED:
        raise Refused(f"{name} is SAFE: it has arrived, so there is no schedule to pause")
    out.print(_said(name, act, result))


def _said(codename: str, act: ActKind, result: Result) -> str:
    if result.outcome is Outcome.NOTHING:
        return f"{codename} is {result.status.value}: there is nothing to clear."
    if result.outcome is Outcome.WAITING:
        return (
            f"Asked already on the command line: {codename} waits for a second person "
            f"(in Telegram) until {when(result.waits_until)}."
        )
    if result.outcome is Outcome.ASK:
        return (
            f"{codename} stays {result.status.value} until a second person (an activist of the "
            f"group or an admin) confirms with /{act.value} {codename} in Telegram before "
            f"{when(result.waits_until)}. Everyone alerted about it was told."
        )
    done = {
        ActKind.PAUSE: f"{codename} is paused until {when(result.paused_until)}.",
        ActKind.SAFE: f"{codename} is marked SAFE.",
        ActKind.CLEAR: f"{codename} is cleared: it follows its schedule again from now.",
    }[act]
    if result.capped:
        done += " (A pause lasts at most [alerts] max_pause.)"
    return done + " Everyone alerted about it was told."


@group_app.command("pause")
def group_pause(
    codename: CodenameArgument,
    length: Annotated[
        str, typer.Option("--for", help="How long, like 12h (at most [alerts] max_pause).")
    ],
    config: ConfigOption = None,
) -> None:
    """Pause a group's schedule (a SILENT or DETAINED one only with a second person)."""
    _act(config, codename, ActKind.PAUSE, length)


@group_app.command("safe")
def group_safe(codename: CodenameArgument, config: ConfigOption = None) -> None:
    """Mark a group SAFE (a SILENT or DETAINED one only with a second person)."""
    _act(config, codename, ActKind.SAFE)


@group_app.command("clear")
def group_clear(codename: CodenameArgument, config: ConfigOption = None) -> None:
    """Clear a SILENT or DETAINED group (a second person confirms in Telegram)."""
    _act(config, codename, ActKind.CLEAR)


@group_app.command("resume")
def group_resume(codename: CodenameArgument, config: ConfigOption = None) -> None:
    """End a pause now: the schedule starts again from now."""
    now = utc_now()

    async def go() -> tuple[str, bool]:
        async with workspace(config) as ws:
            group = not_shredded(await get_group(ws.session, codename=codename_argument(codename)))
            done = await resume(
                ws.session, server=ws.server, group=group, actor=COMMAND_LINE, now=now
            )
            return group.codename, done

    name, done = run(go())
    if not done:
        raise Refused(f"{name} is not paused")
    out.print(f"{name} follows its schedule again. Everyone alerted about it was told.")
