"""Travel groups: `intake group add`, `list` and `import`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    SignKeyOption,
    duration_option,
    group_app,
    note_unsigned,
    out,
    run,
    signing_key_of,
    when,
    workspace,
)
from bot.durations import format_duration
from bot.group_import import Defaults, read_groups
from bot.schedules import describe, make_schedule, normalise_codename
from storage import audit
from storage.crypto import KemName
from storage.groups import create_group, list_groups
from storage.models import Group
from storage.timeutil import utc_now

# --------------------------------------------------------------------------- groups


@group_app.command("add")
def group_add(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    interval: Annotated[
        str | None, typer.Option(help="A check-in is due every so long (24h).")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help='Check-ins due at cron times ("0 8,20 * * *").')
    ] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone of --cron (Asia/Shanghai).")] = None,
    grace: Annotated[
        str | None, typer.Option(help="How late a check-in may be before SILENT.")
    ] = None,
    detained_after: Annotated[
        str | None, typer.Option(help="Silent this long means DETAINED.")
    ] = None,
    key: SignKeyOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a travel group, with its own key pair sealed to every operator."""
    name = normalise_codename(codename)
    signing = signing_key_of(key)

    async def go() -> Group:
        async with workspace(config) as ws:
            d = ws.settings.defaults
            schedule = make_schedule(
                interval=duration_option(interval, "--interval") or (None if cron else d.interval),
                cron=cron,
                tz=tz,
                grace=duration_option(grace, "--grace") or d.grace,
                detained_after=duration_option(detained_after, "--detained-after")
                or d.detained_after,
            )
            group = await create_group(
                ws.session,
                codename=name,
                schedule=schedule,
                kem=KemName(ws.settings.keys.kem),
                now=utc_now(),
                signing=signing,
            )
            await audit.append(
                ws.session, actor=ADMIN_ACTOR, action="group.add", subject=name, at=utc_now()
            )
            return group

    group = run(go())
    grace_text = format_duration(timedelta(seconds=group.grace_s))
    detained_text = format_duration(timedelta(seconds=group.detained_after_s))
    out.print(
        f"Group {group.codename} added: {describe(group)}, grace {grace_text}, "
        f"detained after {detained_text}."
    )
    note_unsigned(f"group {group.codename}'s key", signing)


@group_app.command("list")
def group_list(config: ConfigOption = None) -> None:
    """List groups and their schedules."""

    async def go() -> list[Group]:
        async with workspace(config) as ws:
            return list(await list_groups(ws.session))

    table = Table("codename", "schedule", "grace", "detained after", "status", "created")
    for g in run(go()):
        table.add_row(
            g.codename,
            describe(g),
            format_duration(timedelta(seconds=g.grace_s)),
            format_duration(timedelta(seconds=g.detained_after_s)),
            g.status.value + (" (shredded)" if g.shredded_at else ""),
            when(g.created_at),
        )
    out.print(table)


@group_app.command("import")
def group_import(
    file: Annotated[Path, typer.Argument(help="A .csv or .toml file of groups.", dir_okay=False)],
    key: SignKeyOption = None,
    config: ConfigOption = None,
) -> None:
    """Add many groups at once; nothing is added unless every group in the file is valid."""
    signing = signing_key_of(key)

    async def go() -> int:
        async with workspace(config) as ws:
            d = ws.settings.defaults
            specs = read_groups(
                file,
                defaults=Defaults(
                    interval=d.interval, grace=d.grace, detained_after=d.detained_after
                ),
            )
            now = utc_now()
            for spec in specs:
                await create_group(
                    ws.session,
                    codename=spec.codename,
                    schedule=spec.schedule,
                    kem=KemName(ws.settings.keys.kem),
                    now=now,
                    signing=signing,
                )
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="group.import",
                at=now,
                details={"groups": [s.codename for s in specs]},
            )
            return len(specs)

    out.print(f"Imported {run(go())} group(s).")
    note_unsigned("the imported groups' keys", signing)
