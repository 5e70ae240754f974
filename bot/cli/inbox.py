"""``intake inbox``: the operator reads the sealed inbox on their own machine."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import (
    ConfigOption,
    KeyOption,
    app,
    duration_option,
    err,
    fail,
    operator_workspace,
    out,
    run,
    unlock_operator_key,
    when,
)
from bot.schedules import normalise_codename
from storage import audit
from storage.age_export import encrypt_for
from storage.groups import get_group
from storage.inbox import InboxItem, list_inbox
from storage.timeutil import utc_now

inbox_app = typer.Typer(
    help="The sealed inbox, opened with the operator's key (on the operator's machine).",
    no_args_is_help=True,
)
app.add_typer(inbox_app, name="inbox")
SHORT = 60


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


@inbox_app.command("list")
def inbox_list(
    group: Annotated[str | None, typer.Option("--group", help="Only this group.")] = None,
    unlinked: Annotated[
        bool, typer.Option("--unlinked", help="Only messages no group claims yet.")
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Only the last so long, like 24h or 7d.")
    ] = None,
    output: Annotated[
        Format, typer.Option("--format", help="A table, or JSON lines.")
    ] = Format.TABLE,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Messages, newest first: group, why it was linked, signal, times, forwarder, text."""
    window = duration_option(since, "--since")
    private_key = unlock_operator_key(key)  # before the transaction: the prompt may wait

    async def go() -> list[InboxItem]:
        async with operator_workspace(config, private_key) as ow:
            now = utc_now()
            target = (
                await get_group(ow.ws.session, codename=normalise_codename(group))
                if group
                else None
            )
            items = await list_inbox(
                ow.ws.session,
                ow.keyring,
                group=target,
                unlinked=unlinked,
                since=now - window if window else None,
            )
            await audit.append(
                ow.ws.session,
                actor=ow.keyring.operator.fingerprint[:16],
                action="inbox.list",
                subject=target.codename if target else None,
                at=now,
                details={"messages": len(items), "unlinked": unlinked},
            )
            return items

    items = run(go())
    if output is Format.JSON:
        for item in items:
            out.print(json.dumps(item.as_json(), ensure_ascii=False), soft_wrap=True)
        return
    if not items:
        out.print("No messages.")
        return
    table = Table("id", "group", "linked by", "signal", "sent", "received", "from", "kind", "text")
    for item in items:
        text = item.text if len(item.text) <= SHORT else item.text[: SHORT - 1] + "…"
        table.add_row(
            item.id.hex[:8],
            item.group or "—",
            item.link_reason or "—",
            item.signal or "—",
            _short(item.origin_at),
            _short(item.received_at),
            item.forwarder or "—",
            item.kind,
            text,
        )
    out.print(table)


def _short(moment: datetime | None) -> str:
    return when(moment).removesuffix(" UTC")


@inbox_app.command("export")
def inbox_export(
    output: Annotated[
        Path, typer.Option("--out", help="The file to write (an age file).", dir_okay=False)
    ],
    group: Annotated[str | None, typer.Option("--group", help="Only this group.")] = None,
    plaintext: Annotated[
        bool,
        typer.Option("--plaintext", help="Write JSON lines in clear instead (think twice)."),
    ] = False,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Every message as JSON lines, sealed to your own age identity (`intake keygen --age`
    prints it; `age -d -i IDENTITY FILE` opens it)."""
    if output.exists():
        fail(f"{output} already exists; choose another --out")
    private_key = unlock_operator_key(key)

    async def go() -> list[InboxItem]:
        async with operator_workspace(config, private_key) as ow:
            session = ow.ws.session
            target = await get_group(session, codename=normalise_codename(group)) if group else None
            items = await list_inbox(session, ow.keyring, group=target)
            await audit.append(
                session,
                actor=ow.keyring.operator.fingerprint[:16],
                action="inbox.export",
                subject=target.codename if target else None,
                at=utc_now(),
                details={"messages": len(items), "plaintext": plaintext},
            )
            return items

    items = run(go())
    lines = "".join(json.dumps(i.as_json(), ensure_ascii=False) + "\n" for i in items).encode()
    output.write_bytes(lines if plaintext else encrypt_for(private_key, lines))
    output.chmod(0o600)
    if plaintext:
        err.print("warning: the export is NOT encrypted; anyone who copies the file reads it")
    out.print(f"Exported {len(items)} message(s) to {output}.")
