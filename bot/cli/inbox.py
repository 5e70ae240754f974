"""``intake inbox``: the operator reads the sealed inbox on their own machine and acts
on it. Each command asks for the passphrase once (before its transaction opens),
and every read, listing, export, link and note is an audit event whose actor is
the operator's key fingerprint and whose details carry no content."""

from __future__ import annotations

import base64
import enum
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from bot.cli.common import (
    ConfigOption,
    KeyOption,
    OperatorWorkspace,
    Refused,
    app,
    audit_read,
    err,
    fail,
    operator_workspace,
    out,
    run,
    short_when,
    unlock_operator_key,
    when,
    zone_name,
)
from bot.durations import parse_duration
from bot.inbox_meaning import codebook_meaning
from bot.schedules import normalise_codename
from bot.visible import json_visible, visible
from storage import audit
from storage.age_export import encrypt_for
from storage.db import open_database, reclaim_deleted
from storage.groups import get_group
from storage.inbox import (
    MESSAGE_TABLES,
    InboxItem,
    InboxRefused,
    NoSuchMessage,
    OpenedFile,
    OpenedNote,
    OpenedVersion,
    Place,
    add_note,
    find_message,
    find_sender,
    iso,
    list_inbox,
    mark,
    messages_from,
    notes_of,
    open_files,
    open_message,
    record_meaning,
    relink,
    shred_messages,
    text_of,
)
from storage.models import Message, Operator, Signal
from storage.operators import operator_name
from storage.sealing import Keyring
from storage.timeutil import utc_now

inbox_app = typer.Typer(
    help="The sealed inbox, opened with the operator's key (on the operator's machine).",
    no_args_is_help=True,
)
app.add_typer(inbox_app, name="inbox")
SHORT = 60
WIDE = 180
# The table's columns before the text, and the widths they keep in a narrow terminal.
COLUMNS = (
    ("id", 8),
    ("", 4),
    ("group", 6),
    ("linked by", 9),
    ("signal", 8),
    ("danger", 6),
    ("sent", 11),
    ("received", 11),
    ("from", 8),
    ("kind", 5),
)
# The columns of times, shown in the display zone and headed with its name.
TIMES = ("sent", "received")
# Left out, in this order, when the terminal is too narrow for every column.
DROPPED_FIRST = ("linked by", "received", "kind", "from", "sent", "signal")
TEXT_MIN = 20
# What a file is called when the relative's file name gives no usable extension.
SUFFIX = {
    "photo": ".jpg",
    "voice": ".ogg",
    "audio": ".mp3",
    "video": ".mp4",
    "video_note": ".mp4",
    "sticker": ".webp",
}
SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


def actor(keyring: Keyring) -> str:
    """Who did it, in the audit log: the operator's key fingerprint, never a name."""
    return keyring.operator.fingerprint[:16]


def parse_since(value: str, *, now: datetime) -> datetime:
    """``--since``: a duration back from now (24h, 7d) or a date or time (2026-08-10,
    2026-08-10T06:00, UTC unless it says otherwise)."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since: {value!r} is neither a duration (24h, 7d) nor a date (2026-08-10)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- list


@inbox_app.command("list")
def inbox_list(
    group: Annotated[str | None, typer.Option("--group", help="Only this group.")] = None,
    unlinked: Annotated[
        bool, typer.Option("--unlinked", help="Only messages no group claims yet.")
    ] = False,
    unconfirmed: Annotated[
        bool,
        typer.Option(
            "--unconfirmed",
            help="Only relatives' messages with no signal about a group that was LATE, "
            "SILENT or DETAINED (its activists were told news arrived): read these first.",
        ),
    ] = False,
    unread: Annotated[bool, typer.Option("--unread", help="Only those you have not seen.")] = False,
    starred: Annotated[bool, typer.Option("--starred", help="Only those you starred.")] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only those received since: 24h, 7d, or a date (2026-08-10)."),
    ] = None,
    output: Annotated[
        Format, typer.Option("--format", help="A table, or JSON lines (whole texts).")
    ] = Format.TABLE,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Messages, a relative's unconfirmed news about a group in trouble first (signal
    "unconfirmed"), then newest first: group, why it was linked, signal, times, forwarder,
    text."""
    now = utc_now()
    after = parse_since(since, now=now) if since else None
    private_key = unlock_operator_key(key)  # before the transaction: the prompt may wait

    async def go() -> list[InboxItem]:
        async with operator_workspace(config, private_key) as ow:
            session = ow.ws.session
            target = await get_group(session, codename=normalise_codename(group)) if group else None
            items = await list_inbox(
                session,
                ow.keyring,
                group=target,
                unlinked=unlinked,
                unconfirmed=unconfirmed,
                since=after,
                unread=unread,
                starred=starred,
            )
            await audit_read(
                session,
                ow.keyring,
                key,
                action="inbox.list",
                subject=target.codename if target else None,
                details={"messages": len(items), "unlinked": unlinked},
            )
            return items

    items = run(go())
    _warn_unreadable(items)
    if output is Format.JSON:
        for item in items:
            line = json_visible(json.dumps(item.as_json(), ensure_ascii=False))
            out.print(line, soft_wrap=True, emoji=False)
        return
    if not items:
        out.print("No messages.")
        return
    # Into a pipe or a file, rows keep SHORT characters of text instead of 80 columns
    # (unless $COLUMNS says how wide); a terminal's table fits the terminal.
    console = (
        out.rich
        if out.is_terminal or os.environ.get("COLUMNS")
        else Console(width=WIDE, highlight=False, markup=False, soft_wrap=False)
    )
    columns = fitted_columns(console.width)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for heading, width in columns:
        table.add_column(shown_heading(heading), no_wrap=True, min_width=width)
    table.add_column("text", no_wrap=True, overflow="ellipsis", min_width=TEXT_MIN)
    for item in items:
        text = item.text if item.readable else "(not readable with your key)"
        cells = {
            "id": item.id.hex[:8],
            "": ("*" if item.starred else "") + ("" if item.seen else "new"),
            "group": item.group or "—",
            "linked by": item.link_reason or "—",
            "signal": item.signal or ("unconfirmed" if item.unconfirmed else "—"),
            "danger": "yes" if item.danger else "",
            "sent": short_when(item.origin_at),
            "received": short_when(item.received_at),
            "from": item.forwarder or "—",
            "kind": item.kind,
        }
        # As written, with its control and bidi characters as marks; and no ":name:"
        # in a message becomes an emoji.
        row = [Text(cells[heading]) for heading, _ in columns]
        table.add_row(*row, Text(shorten(visible(text))))
    console.print(table, soft_wrap=False)  # cropped to the width, never wrapped


def shown_heading(heading: str) -> str:
    """A column's heading; the times' columns name the zone they are shown in."""
    return f"{heading} ({zone_name()})" if heading in TIMES else heading


def fitted_columns(width: int) -> list[tuple[str, int]]:
    """The columns that fit ``width`` with TEXT_MIN characters of text left (each
    column also takes two of padding), the least needed left out first."""
    columns = [(name, max(w, len(shown_heading(name)))) for name, w in COLUMNS]
    for name in DROPPED_FIRST:
        if sum(w + 2 for _, w in columns) + TEXT_MIN <= width:
            break
        columns = [c for c in columns if c[0] != name]
    return columns


def shorten(text: str, width: int = SHORT) -> str:
    """One line of at most ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _warn_unreadable(items: list[InboxItem]) -> None:
    unreadable = sum(not i.readable for i in items)
    if unreadable:
        err.print(
            f"note: {unreadable} message(s) are sealed to groups whose key you were not given; "
            "another operator gives them with `intake operator share`"
        )


# --------------------------------------------------------------------------- export


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
    """Every message as JSON lines (the fields of `list --format json`), sealed to your
    own age identity (`intake keygen --age` prints it; `age -d -i IDENTITY FILE` opens it)."""
    if output.exists():
        fail(f"{output} already exists; choose another --out")
    if not output.parent.is_dir():
        fail(f"--out: there is no folder {output.parent}")  # before anything is opened
    private_key = unlock_operator_key(key)

    async def go() -> tuple[list[InboxItem], list[dict[str, object]]]:
        async with operator_workspace(config, private_key) as ow:
            session = ow.ws.session
            target = await get_group(session, codename=normalise_codename(group)) if group else None
            with Progress(console=err.rich, transient=True) as progress:
                task = progress.add_task("opening messages", total=None)
                items = await list_inbox(
                    session,
                    ow.keyring,
                    group=target,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
                task = progress.add_task("opening notes and attachments", total=len(items))
                records = []
                for item in items:
                    records.append(await _exported(ow, item))
                    progress.advance(task)
            await audit_read(
                session,
                ow.keyring,
                key,
                action="inbox.export",
                subject=target.codename if target else None,
                details={"messages": len(items), "plaintext": plaintext},
            )
            return items, records

    items, records = run(go())
    _warn_unreadable(items)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    _write_new(output, lines if plaintext else encrypt_for(private_key, lines))
    if plaintext:
        err.print("warning: the export is NOT encrypted; anyone who copies the file reads it")
    out.print(f"Exported {len(items)} message(s) to {output}.")


async def _exported(ow: OperatorWorkspace, item: InboxItem) -> dict[str, object]:
    """One export line: the fields of `list --format json`, the notes (with their
    authors' names), and ``files``: each attachment with its bytes (base64)."""
    record = item.as_json()
    message = await ow.ws.session.get(Message, item.id)
    if message is None or not item.readable:
        return record | {"notes": [], "files": []}
    session, keyring = ow.ws.session, ow.keyring
    notes = await notes_of(session, keyring, message=message)
    names = await _names(ow, {n.author_id for n in notes if n.author_id})
    files = await open_files(session, keyring, message=message)
    return record | {
        "notes": [
            {"at": iso(n.at), "author": names.get(n.author_id), "text": n.text} for n in notes
        ],
        "files": [
            {
                "kind": f.attachment.kind.value,
                "meta": f.meta,
                "content_base64": base64.b64encode(f.content).decode()
                if f.content is not None
                else None,
            }
            for f in files
        ],
    }


def _write_new(path: Path, data: bytes) -> None:
    """Write a file that did not exist, readable by this user alone from its first byte."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise Refused(f"{path} already exists; nothing was overwritten") from None
    except OSError as exc:
        raise Refused(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)


# --------------------------------------------------------------------------- one message

MessageRef = Annotated[
    str, typer.Argument(help="The message id (its first 6+ characters do, if unique).")
]
Act = Callable[[OperatorWorkspace, Message], Awaitable["Done"]]


@dataclass(frozen=True, slots=True)
class Done:
    said: str
    details: dict[str, object] | None = None  # for the audit entry: counts and codenames only
    audited: bool = True


def _act(config: Path | None, key: Path | None, ref: str, action: str, act: Act) -> str:
    """Unlock the key, then in one transaction find the message, do ``act`` and
    audit it; what to print."""
    private_key = unlock_operator_key(key)

    async def go() -> str:
        async with operator_workspace(config, private_key) as ow:
            try:
                message = await find_message(ow.ws.session, ref=ref)
                done = await act(ow, message)
            except (NoSuchMessage, InboxRefused) as exc:
                raise Refused(str(exc)) from None
            if done.audited:
                await audit_read(
                    ow.ws.session,
                    ow.keyring,
                    key,
                    action=f"inbox.{action}",
                    subject=str(message.id),
                    details=dict(done.details or {}),
                )
            return done.said

    return run(go())


@inbox_app.command("read")
def inbox_read(
    ref: MessageRef,
    attachments: Annotated[
        Path | None,
        typer.Option(
            "--attachments",
            help="A folder of yours to write the attachments to (made if missing; files 0600).",
            file_okay=False,
        ),
    ] = None,
    around: Annotated[
        int, typer.Option("--around", min=0, help="Timeline entries shown before and after.")
    ] = 3,
    output: Annotated[Format, typer.Option("--format", help="Text, or one JSON object.")] = (
        Format.TABLE
    ),
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """The whole message: every version, its attachments (written only to --attachments
    DIR), your colleagues' notes, and its place in the group's timeline. Marks it seen."""
    if attachments is not None and attachments.exists() and not attachments.is_dir():
        fail(f"--attachments: {attachments} is not a folder")

    async def act(ow: OperatorWorkspace, message: Message) -> Done:
        # As the console opens it: a handful of queries, and marked seen.
        whole = await open_message(
            ow.ws.session, ow.keyring, message_id=message.id, around=around, seen_at=utc_now()
        )
        if whole is None:
            raise NoSuchMessage("that message is gone (shredded?)")
        versions, notes, place = whole.versions, whole.notes, whole.place
        of_version = {v.message.id: v for v in versions}
        files = [(of_version[f.attachment.message_id], f) for f in whole.files]
        names = await _names(ow, {n.author_id for n in notes if n.author_id})
        written = _write_attachments(attachments, files) if attachments is not None else {}
        said = (
            json_visible(
                json.dumps(
                    _read_json(message, versions, files, written, notes, place, names),
                    ensure_ascii=False,
                    indent=2,
                )
            )
            if output is Format.JSON
            else _read_text(message, versions, files, written, notes, place, names)
        )
        return Done(
            said,
            {"versions": len(versions), "attachments": len(files), "written": len(written)},
        )

    # As written: no ":name:" in a message becomes an emoji, no "[x]" a style.
    out.print(_act(config, key, ref, "read", act), soft_wrap=True, emoji=False)


def file_name(version: OpenedVersion, n: int, opened: OpenedFile) -> str:
    """A name made here, never the relative's own (which could hold a path): the
    message, the version, the number, and a plain extension."""
    given = str(opened.meta.get("file_name") or "")
    suffix = Path(given).suffix if SAFE_SUFFIX.fullmatch(Path(given).suffix) else ""
    suffix = suffix or SUFFIX.get(opened.attachment.kind.value, ".bin")
    return f"{version.message.id.hex[:8]}-v{version.message.version}-{n}{suffix.lower()}"


def _write_attachments(
    folder: Path, files: list[tuple[OpenedVersion, OpenedFile]]
) -> dict[int, Path]:
    """Write each fetched attachment as a new 0600 file in ``folder`` (made 0700 if
    missing); nothing is overwritten, and nothing is written if anything would be."""
    targets = {
        n: folder / file_name(version, n, opened)
        for n, (version, opened) in enumerate(files, 1)
        if opened.content is not None
    }
    clash = [t for t in targets.values() if t.exists() or t.is_symlink()]
    if clash:
        raise InboxRefused(f"{clash[0]} already exists; nothing was overwritten")
    if targets:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for n, target in targets.items():
        content = files[n - 1][1].content
        assert content is not None  # noqa: S101 (only fetched files have a target)
        _write_new(target, content)
    return targets


def _extra(body: dict[str, Any]) -> dict[str, Any]:
    """What a body holds beyond its text: the forward's origin, a place, a contact."""
    return {k: v for k, v in body.items() if k not in ("text", "caption") and v is not None}


def described(fields: dict[str, Any], prefix: str = "") -> list[str]:
    """Fields as lines a person reads ("origin date: 2026-08-10T06:00:00Z"), nested
    ones under their parent's name, every value with its control characters marked."""
    lines = []
    for key, value in fields.items():
        name = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict):
            lines += described(value, prefix=f"{prefix}{key} ")
        elif isinstance(value, list):
            lines.append(
                f"{name}: " + ", ".join(visible(str(v), keep_newlines=False) for v in value)
            )
        elif value is not None:
            lines.append(f"{name}: {visible(str(value), keep_newlines=False)}")
    return lines


async def _names(ow: OperatorWorkspace, ids: set[Any]) -> dict[Any, str]:
    """Operators' names (opened with the server secret this workspace holds), by id."""
    names = {}
    for operator_id in ids:
        operator = await ow.ws.session.get(Operator, operator_id)
        if operator is not None:
            names[operator_id] = operator_name(ow.ws.server, operator)
    return names


def _author(note: OpenedNote, names: dict[Any, str]) -> str:
    if note.author_id in names:
        return f"{names[note.author_id]} ({note.author})"
    return note.author or "a former operator"


def _read_text(
    message: Message,
    versions: list[OpenedVersion],
    files: list[tuple[OpenedVersion, OpenedFile]],
    written: dict[int, Path],
    notes: list[OpenedNote],
    place: Place | None,
    names: dict[Any, str],
) -> str:
    latest = versions[-1].message
    lines = [f"message {message.id}"]
    lines.append(f"version {message.version} of {len(versions)}; {latest.kind.value}")
    for version in versions:
        row = version.message
        sent, signal = when(row.origin_at or row.sent_at), row.signal.value if row.signal else "—"
        lines.append(
            f"--- version {row.version} ({row.id.hex[:8]}): sent {sent}, "
            f"received {when(row.received_at)}, signal {signal}"
        )
        lines.append(visible(text_of(version.body)) or "(no text)")
        lines += [f"  {line}" for line in described(_extra(version.body))]
    for n, (version, opened) in enumerate(files, 1):
        size = len(opened.content) if opened.content is not None else None
        lines.append(
            f"attachment {n} (version {version.message.version}): {opened.attachment.kind.value}, "
            + (f"{size} bytes" if size is not None else "too large to fetch, details only")
        )
        lines += [f"  {line}" for line in described(opened.meta)]
        if n in written:
            lines.append(f"  written to {written[n]}")
        elif opened.content is not None:
            lines.append("  (give --attachments DIR to write it)")
    for note in notes:
        lines.append(f"note: {visible(note.text)}  ({when(note.at)}, {_author(note, names)})")
    if place is None:
        lines.append("timeline: not linked to a group")
    else:
        lines.append("timeline:")
        for entry in place.before:
            mine = "  <- this message" if entry.this_message else ""
            lines.append(f"  {when(entry.at)}  {entry.what}{mine}")
        lines.append(f"> {when(place.moment)}  this message")
        for entry in place.after:
            lines.append(f"  {when(entry.at)}  {entry.what}")
    return "\n".join(lines)


def _read_json(
    message: Message,
    versions: list[OpenedVersion],
    files: list[tuple[OpenedVersion, OpenedFile]],
    written: dict[int, Path],
    notes: list[OpenedNote],
    place: Place | None,
    names: dict[Any, str],
) -> dict[str, object]:
    def entry(e: Any) -> dict[str, object]:
        return {"at": iso(e.at), "what": e.what, "this_message": e.this_message}

    return {
        "id": str(message.id),
        "versions": [
            {
                "id": str(v.message.id),
                "version": v.message.version,
                "signal": v.message.signal.value if v.message.signal else None,
                "origin_at": iso(v.message.origin_at),
                "sent_at": iso(v.message.sent_at),
                "received_at": iso(v.message.received_at),
                "body": v.body,
            }
            for v in versions
        ],
        "attachments": [
            {
                "version": v.message.version,
                "kind": f.attachment.kind.value,
                "meta": f.meta,
                "size": len(f.content) if f.content is not None else None,
                "written_to": str(written[n]) if n in written else None,
            }
            for n, (v, f) in enumerate(files, 1)
        ],
        "notes": [
            {
                "at": iso(n.at),
                "author": names.get(n.author_id),
                "author_fingerprint": n.author,
                "text": n.text,
            }
            for n in notes
        ],
        "timeline": None
        if place is None
        else {
            "moment": iso(place.moment),
            "before": [entry(e) for e in place.before],
            "after": [entry(e) for e in place.after],
        },
    }


# --------------------------------------------------------------------------- acting on it


@inbox_app.command("link")
def inbox_link(
    ref: MessageRef,
    codename: Annotated[str, typer.Argument(help="The group it belongs to.")],
    meaning: Annotated[
        Signal | None,
        typer.Option(
            "--as",
            help="What it means for the group, whatever its codebook says "
            "(checkin, stage, duress, detained, safe).",
        ),
    ] = None,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Link a message (all its versions) to a group: from now on only that group's key
    opens it. A signal it carries is recorded for the group; else the group's codebook
    is applied to its text (or --as says what it means)."""

    async def act(ow: OperatorWorkspace, message: Message) -> Done:
        session = ow.ws.session
        group = await get_group(session, codename=normalise_codename(codename))
        now = utc_now()
        already = message.group_id == group.id
        if already and meaning is None:
            # Linked already (in a console without the server secret, say): the codebook
            # is still applied, once, where nothing was recorded from the message yet.
            signal, leg_id = await codebook_meaning(
                session, ow.keyring, server=ow.ws.server, message=message, group=group
            )
            if signal is None or not await record_meaning(
                session, message=message, group=group, signal=signal, leg_id=leg_id, now=now
            ):
                return Done(f"Already linked to {group.codename}.", audited=False)
            return Done(
                f"Already linked to {group.codename}. Its signal ({signal}) was recorded "
                f"for {group.codename}.",
                {"group": group.codename, "records": 0, "signal_recorded": True, "as": None},
            )
        done = await relink(session, ow.keyring, message=message, group=group, now=now)
        said = f"Linked to {group.codename}."
        recorded: Signal | None = message.signal if done.signal_recorded else None
        if not done.signal_recorded:
            signal, leg_id = meaning, None
            if signal is None:
                signal, leg_id = await codebook_meaning(
                    session, ow.keyring, server=ow.ws.server, message=message, group=group
                )
            if signal is not None and await record_meaning(
                session, message=message, group=group, signal=signal, leg_id=leg_id, now=now
            ):
                recorded = signal
        if recorded is not None:
            said += f" Its signal ({recorded}) was recorded for {group.codename}."
        return Done(
            said,
            {
                "group": group.codename,
                "records": done.records,
                "signal_recorded": recorded is not None,
                "as": meaning.value if meaning else None,
            },
        )

    out.print(_act(config, key, ref, "link", act))


@inbox_app.command("unlink")
def inbox_unlink(ref: MessageRef, config: ConfigOption = None, key: KeyOption = None) -> None:
    """Unlink a message: it waits in the unlinked queue again, sealed to every operator
    (and to the forwarder's own groups, as when it arrived), no longer to its group."""

    async def act(ow: OperatorWorkspace, message: Message) -> Done:
        done = await relink(ow.ws.session, ow.keyring, message=message, group=None, now=utc_now())
        return Done("Unlinked.", {"records": done.records})

    out.print(_act(config, key, ref, "unlink", act))


def _marker(action: str, said: str, **change: bool) -> Callable[..., None]:
    def command(ref: MessageRef, config: ConfigOption = None, key: KeyOption = None) -> None:
        async def act(ow: OperatorWorkspace, message: Message) -> Done:
            op = ow.keyring.operator.id
            await mark(ow.ws.session, operator_id=op, message=message, now=utc_now(), **change)
            # Your own reading marks are not reads of the content: not audited.
            return Done(said, audited=False)

        out.print(_act(config, key, ref, action, act))

    return command


inbox_app.command("star", help="Star a message (for you alone).")(
    _marker("star", "Starred.", starred=True)
)
inbox_app.command("unstar", help="Remove your star.")(
    _marker("unstar", "Unstarred.", starred=False)
)
inbox_app.command("seen", help="Mark a message seen (for you alone; `read` does it too).")(
    _marker("seen", "Seen.", seen=True)
)
inbox_app.command("unseen", help="Mark a message unread again (for you alone).")(
    _marker("unseen", "Marked unread.", seen=False)
)


@inbox_app.command("note")
def inbox_note(
    ref: MessageRef,
    text: Annotated[
        str, typer.Argument(help='The note; "-" reads it from standard input (no shell history).')
    ],
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Add a note to a message, sealed to every operator."""
    if text == "-":
        if sys.stdin.isatty():
            err.print("Type the note, then Ctrl-D:")
        text = sys.stdin.read()
    body = text.strip()
    if not body:
        fail("the note is empty")

    async def act(ow: OperatorWorkspace, message: Message) -> Done:
        op = ow.keyring.operator.id
        note = await add_note(
            ow.ws.session, operator_id=op, message=message, text=body, now=utc_now()
        )
        return Done("Note added.", {"note": str(note.id)})

    out.print(_act(config, key, ref, "note", act))


# --------------------------------------------------------------------------- shredding


@inbox_app.command("shred")
def inbox_shred(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Message ids (their first 6+ characters do, if unique).", show_default=False
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            "--from", help="Every message from this pseudonym (P-1A2B3C): a stranger's spam."
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask again (for scripts).")] = False,
    config: ConfigOption = None,
    key: KeyOption = None,
) -> None:
    """Delete messages outright, for every operator: every version, attachment, note and
    mark. A check-in recorded from one stays in its group's timeline. Audited."""
    wanted = list(refs or [])
    if bool(wanted) == bool(sender):
        fail("give message ids, or --from PSEUDONYM (not both)")
    what = f"every message from {sender.strip().upper()}" if sender else plural_messages(wanted)
    if not yes:
        again = typer.prompt(f"This destroys {what} for every operator. Type shred to go on")
        if again.strip().lower() != "shred":
            fail("not confirmed: nothing was shredded")
    private_key = unlock_operator_key(key)

    async def go() -> int:
        async with operator_workspace(config, private_key) as ow:
            session = ow.ws.session
            try:
                if sender:
                    person = await find_sender(session, label=sender)
                    messages = await messages_from(session, person=person)
                else:
                    messages = [await find_message(session, ref=ref) for ref in wanted]
            except NoSuchMessage as exc:
                raise Refused(str(exc)) from None
            subjects = [str(m.id) for m in messages]
            count = await shred_messages(session, messages=messages)
            now = utc_now()
            for subject in subjects:
                await audit.append(
                    session, actor=actor(ow.keyring), action="inbox.shred", subject=subject, at=now
                )
            url = ow.ws.settings.database.url
        async with open_database(url, migrate_to_head=False) as engine:
            await reclaim_deleted(engine, tables=MESSAGE_TABLES)
        return count

    count = run(go())
    out.print(f"Shredded {count} message row(s), with their attachments and notes.")


def plural_messages(refs: list[str]) -> str:
    return "1 message" if len(refs) == 1 else f"{len(refs)} messages"
