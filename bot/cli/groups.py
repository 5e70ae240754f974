"""Travel groups: `intake group add`, `list`, `edit` and `import`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import (
    ADMIN_ACTOR,
    ConfigOption,
    Format,
    FormatOption,
    SignKeyOption,
    codename_argument,
    duration_option,
    err,
    fail,
    group_app,
    iso,
    not_shredded,
    note_unsigned,
    out,
    print_json,
    run,
    signing_key_of,
    when,
    workspace,
)
from bot.config import KeysSection
from bot.durations import format_duration
from bot.group_import import Defaults, read_groups
from bot.schedules import describe, make_schedule, normalise_codename
from storage import audit
from storage.crypto import KemName
from storage.groups import create_group, get_group, list_groups, set_schedule
from storage.models import Group
from storage.timeutil import utc_now

# --------------------------------------------------------------------------- groups


def group_kem(keys: KeysSection) -> KemName:
    """The key type of a new group; a classical one (allowed by the config's
    ``[keys] allow_classical``, never by default) is warned about at every use."""
    kem = KemName(keys.kem)
    if kem is KemName.X25519:
        err.print(
            'warning: [keys] kem = "X25519": this group\'s key is classical only; what is '
            "sealed to it can be opened by whoever records it now and has a quantum computer later"
        )
    return kem


# The schedule's options, shared by `group add` and `group edit`.
IntervalOption = Annotated[str | None, typer.Option(help="A check-in is due every so long (24h).")]
CronOption = Annotated[
    str | None, typer.Option(help='Check-ins due at cron times ("0 8,20 * * *").')
]
TzOption = Annotated[str | None, typer.Option(help="Time zone of --cron (Asia/Shanghai).")]
GraceOption = Annotated[str | None, typer.Option(help="How late a check-in may be before SILENT.")]
DetainedAfterOption = Annotated[str | None, typer.Option(help="Silent this long means DETAINED.")]


@group_app.command("add")
def group_add(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    interval: IntervalOption = None,
    cron: CronOption = None,
    tz: TzOption = None,
    grace: GraceOption = None,
    detained_after: DetainedAfterOption = None,
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
                kem=group_kem(ws.settings.keys),
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
def group_list(output: FormatOption = Format.TABLE, config: ConfigOption = None) -> None:
    """List groups and their schedules."""

    async def go() -> list[Group]:
        async with workspace(config) as ws:
            return list(await list_groups(ws.session))

    groups = run(go())
    if output is Format.JSON:
        print_json(
            [
                {
                    "codename": g.codename,
                    "interval_s": g.interval_s,
                    "cron": g.cron,
                    "tz": g.tz,
                    "grace_s": g.grace_s,
                    "detained_after_s": g.detained_after_s,
                    "status": g.status.value,
                    "shredded": g.shredded_at is not None,
                    "created_at": iso(g.created_at),
                }
                for g in groups
            ]
        )
        return
    table = Table("codename", "schedule", "grace", "detained after", "status", "created")
    for g in groups:
        table.add_row(
            g.codename,
            describe(g),
            format_duration(timedelta(seconds=g.grace_s)),
            format_duration(timedelta(seconds=g.detained_after_s)),
            g.status.value + (" (shredded)" if g.shredded_at else ""),
            when(g.created_at),
        )
    out.print(table)


@group_app.command("edit")
def group_edit(
    codename: Annotated[str, typer.Argument(help="The group's codename, like PINE-7.")],
    interval: IntervalOption = None,
    cron: CronOption = None,
    tz: TzOption = None,
    grace: GraceOption = None,
    detained_after: DetainedAfterOption = None,
    config: ConfigOption = None,
) -> None:
    """Change a group's schedule; what is not given stays as it is. The deadline engine
    looks at the group again at its next pass."""
    name = codename_argument(codename)
    if not any((interval, cron, tz, grace, detained_after)):
        fail("give at least one of --interval, --cron, --tz, --grace, --detained-after")

    async def go() -> Group:
        async with workspace(config) as ws:
            group = not_shredded(await get_group(ws.session, codename=name))
            new_interval = duration_option(interval, "--interval")
            keep_cron = new_interval is None and cron is None and group.cron is not None
            schedule = make_schedule(
                interval=new_interval
                or (
                    timedelta(seconds=group.interval_s)
                    if cron is None and group.interval_s is not None
                    else None
                ),
                cron=cron or (group.cron if keep_cron else None),
                tz=tz or (group.tz if (cron or keep_cron) else None),
                grace=duration_option(grace, "--grace") or timedelta(seconds=group.grace_s),
                detained_after=duration_option(detained_after, "--detained-after")
                or timedelta(seconds=group.detained_after_s),
            )
            now = utc_now()
            set_schedule(group, schedule, now=now)
            changed = [
                option
                for option, value in (
                    ("interval", interval),
                    ("cron", cron),
                    ("tz", tz),
                    ("grace", grace),
                    ("detained_after", detained_after),
                )
                if value is not None
            ]
            await audit.append(
                ws.session,
                actor=ADMIN_ACTOR,
                action="group.edit",
                subject=group.codename,
                at=now,
                details={"changed": changed},
            )
            return group

    group = run(go())
    out.print(
        f"Group {group.codename}: {describe(group)}, "
        f"grace {format_duration(timedelta(seconds=group.grace_s))}, "
        f"detained after {format_duration(timedelta(seconds=group.detained_after_s))}."
    )


@group_app.command("import")
def group_import(
    file: Annotated[Path, typer.Argument(help="A .csv or .toml file of groups.", dir_okay=False)],
    key: SignKeyOption = None,
    config: ConfigOption = None,
) -> None:
    """Add many groups at once; nothing is added unless every group in the file is valid.

    CSV: a header row naming columns among codename, interval, cron, tz, grace,
    detained_after (only codename is needed); an empty cell takes the [defaults]
    setting. TOML: one [[group]] table per group, with the same keys. Durations are
    written like 24h, 90m or 3d; cron needs tz.
    """
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
            kem = group_kem(ws.settings.keys)
            for spec in specs:
                await create_group(
                    ws.session,
                    codename=spec.codename,
                    schedule=spec.schedule,
                    kem=kem,
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
