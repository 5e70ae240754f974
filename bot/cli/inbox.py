"""``intake inbox``: the operator reads the sealed inbox on their own machine."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import (
    ConfigOption,
    KeyOption,
    OperatorWorkspace,
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
from storage.inbox import (
    InboxItem,
    add_note,
    find_message,
    list_inbox,
    mark,
    notes_of,
    relink,
    versions_of,
)
from storage.messages import attachments_of, open_attachment, open_message
from storage.models import Message
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
    unread: Annotated[bool, typer.Option("--unread", help="Only those you have not seen.")] = False,
    starred: Annotated[bool, typer.Option("--starred", help="Only those you starred.")] = False,
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
                unread=unread,
                starred=starred,
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


MessageRef = Annotated[str, typer.Argument(help="The message id (its first 6+ characters do).")]


def _act(config: Path | None, key: Path | None, ref: str, action: str, act: Act) -> str:
    """Open the inbox, find the message, do ``act``, audit it; what to print."""
    private_key = unlock_operator_key(key)

    async def go() -> str:
        async with operator_workspace(config, private_key) as ow:
            message = await find_message(ow.ws.session, ref=ref)
            said = await act(ow, message)
            await audit.append(
                ow.ws.session,
                actor=ow.keyring.operator.fingerprint[:16],
                action=f"inbox.{action}",
                subject=str(message.id),
                at=utc_now(),
            )
            return said

    return run(go())


Act = Callable[[OperatorWorkspace, Message], Awaitable[str]]


@inbox_app.command("read")
def inbox_read(
    ref: MessageRef,
    attachments: Annotated[
        Path | None,
        typer.Option(
            "--attachments", help="A folder to write the attachments to.", file_okay=False
        ),
    ] = None,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """The whole message: every version, its notes, and its attachments (to --attachments DIR)."""

    async def act(ow: OperatorWorkspace, message: Message) -> str:
        session, keyring = ow.ws.session, ow.keyring
        lines = [f"message {message.id}"]
        for version in await versions_of(session, message=message):
            body = await open_message(session, keyring, version)
            lines.append(
                f"--- version {version.version}, received {when(version.received_at)}, "
                f"signal {version.signal.value if version.signal else '—'}"
            )
            lines.append(json.dumps(body, ensure_ascii=False, indent=2))
        for note in await notes_of(session, keyring, message=message):
            lines.append(f"note: {note}")
        files = await attachments_of(session, message=message)
        for n, attachment in enumerate(files, 1):
            opened = await open_attachment(session, keyring, attachment)
            lines.append(f"attachment {n}: {attachment.kind.value} {json.dumps(opened.meta)}")
            if attachments is not None and opened.content is not None:
                attachments.mkdir(parents=True, exist_ok=True, mode=0o700)
                target = attachments / f"{message.id.hex[:8]}-{n}"
                target.write_bytes(opened.content)
                target.chmod(0o600)
                lines.append(f"  written to {target}")
        await mark(
            session, operator_id=keyring.operator.id, message=message, now=utc_now(), seen=True
        )
        return "\n".join(lines)

    out.print(_act(config, key, ref, "read", act), soft_wrap=True)


@inbox_app.command("link")
def inbox_link(
    ref: MessageRef,
    codename: Annotated[str, typer.Argument(help="The group it belongs to.")],
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Link a message to a group: only that group's key opens it from now on."""

    async def act(ow: OperatorWorkspace, message: Message) -> str:
        group = await get_group(ow.ws.session, codename=normalise_codename(codename))
        await relink(ow.ws.session, ow.keyring, message=message, group=group)
        return f"Linked to {group.codename}."

    out.print(_act(config, key, ref, "link", act))


@inbox_app.command("unlink")
def inbox_unlink(ref: MessageRef, config: ConfigOption = None, key: KeyOption = None) -> None:
    """Unlink a message: it waits for operators again, sealed to each of them."""

    async def act(ow: OperatorWorkspace, message: Message) -> str:
        await relink(ow.ws.session, ow.keyring, message=message, group=None)
        return "Unlinked."

    out.print(_act(config, key, ref, "unlink", act))


def _marker(action: str, said: str, **change: bool) -> Callable[..., None]:
    def command(ref: MessageRef, config: ConfigOption = None, key: KeyOption = None) -> None:
        async def act(ow: OperatorWorkspace, message: Message) -> str:
            op = ow.keyring.operator.id
            await mark(ow.ws.session, operator_id=op, message=message, now=utc_now(), **change)
            return said

        out.print(_act(config, key, ref, action, act))

    return command


inbox_app.command("star", help="Star a message (for you alone).")(
    _marker("star", "Starred.", starred=True)
)
inbox_app.command("unstar", help="Remove your star.")(
    _marker("unstar", "Unstarred.", starred=False)
)
inbox_app.command("seen", help="Mark a message seen (for you alone).")(
    _marker("seen", "Seen.", seen=True)
)


@inbox_app.command("note")
def inbox_note(
    ref: MessageRef,
    text: Annotated[str, typer.Argument(help='The note; "-" reads it from standard input.')],
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Add a note to a message, sealed to every operator ("-" keeps it out of shell history)."""
    body = sys.stdin.read().strip() if text == "-" else text.strip()
    if not body:
        fail("the note is empty")

    async def act(ow: OperatorWorkspace, message: Message) -> str:
        op = ow.keyring.operator.id
        await add_note(ow.ws.session, operator_id=op, message=message, text=body, now=utc_now())
        return "Note added."

    out.print(_act(config, key, ref, "note", act))
