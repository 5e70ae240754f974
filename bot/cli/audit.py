"""``intake audit``: check the keyed hash chain of the audit trail, and the operator
signatures on what the bot trusts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from bot.cli.common import (
    ConfigOption,
    KeyOption,
    Workspace,
    app,
    err,
    fail,
    local_audit_path,
    out,
    run,
    workspace,
)
from storage import audit
from storage.audit import AuditChainBroken, ChainHead, Checkpoint
from storage.timeutil import utc_now
from storage.trust import Rejected, trust_of, unverified

audit_app = typer.Typer(help="The audit trail: a hash chain the database keeps append-only.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify(
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="SEQ:HASH from a checkpoint the bot sent to Telegram (or from `intake audit "
            "checkpoint`), kept off the server: checked as well as those the server recorded.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check every entry's keyed hash and its link to the one before, and every
    operator signature; print the head, and each row the bot refuses to use. Every
    checkpoint the bot recorded beside the config (audit_checkpoints) must be in the
    log at its place with the same hash: that catches a cut tail, and a chain
    rewritten even by someone who holds the server secret."""
    kept = _parse(checkpoint) if checkpoint else None
    try:
        head, recorded, refused, enforced = run(_verify_all(config, kept))
    except AuditChainBroken as exc:
        out.print(f"BROKEN: {exc}")
        raise typer.Exit(1) from None
    matched = f"; it matches all {recorded} recorded checkpoint(s)" if recorded else ""
    out.print(f"OK: {head.seq} entries, head {head.text()}{matched}")
    if head.legacy:
        err.print(f"note: the first {head.legacy} entries predate the keyed chain")
    if not enforced:
        err.print(
            "note: no operator_signers file: signatures are not checked yet; an operator runs "
            "`intake operator sign --key FILE` once"
        )
    for rejected in refused:
        out.print(f"NOT TRUSTED: {rejected.text()}")
    if refused:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def checkpoint(config: ConfigOption = None) -> None:
    """Print SEQ:HASH of the verified head, to keep off the server; it is also recorded
    beside the config (audit_checkpoints), as the bot records its own, so that `intake
    audit verify` checks it from now on."""
    try:
        head, kept = run(_checkpoint(config))
    except AuditChainBroken as exc:
        out.print(f"BROKEN: {exc}")
        raise typer.Exit(1) from None
    try:
        audit.record_checkpoint(kept, head, at=utc_now())
    except OSError as exc:
        # Still worth printing: the copy that counts is the one kept off the server.
        err.print(f"warning: not recorded in {kept} ({exc.strerror})")
    out.print(head.text())


@audit_app.command("merge")
def merge(config: ConfigOption = None, key: KeyOption = None) -> None:
    """Bring the operator's local audit file (beside the key file) into this log: reads
    done on a copy of the database are recorded where the admins look. Entries already
    here are skipped, so merging twice adds nothing."""
    path = local_audit_path(key)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        fail(f"{path}: no local audit file (no read was made with this key here)")
    try:
        entries = [json.loads(line) for line in lines if line.strip()]
        for entry in entries:
            datetime.fromisoformat(entry["at"])
            str(entry["id"]), str(entry["actor"]), str(entry["action"])
    except (ValueError, KeyError, TypeError):
        fail(f"{path}: not a local audit file")

    async def go() -> int:
        async with workspace(config) as ws:
            known = await audit.local_ids(ws.session)
            added = 0
            for entry in entries:
                if entry["id"] in known:
                    continue
                details = dict(entry.get("details") or {})
                await audit.append(
                    ws.session,
                    actor=str(entry["actor"])[:80],
                    action=str(entry["action"])[:48],
                    subject=entry.get("subject"),
                    at=datetime.fromisoformat(entry["at"]),
                    details={**details, "local_id": entry["id"], "merged": True},
                )
                added += 1
            return added

    added = run(go())
    out.print(f"Merged {added} entr{'y' if added == 1 else 'ies'} from {path}.")


async def _verify_all(
    config: Path | None, checkpoint: ChainHead | None
) -> tuple[ChainHead, int, list[Rejected], bool]:
    """The verified head, how many recorded checkpoints it matched, the rows the bot
    refuses, and whether signatures are enforced at all."""
    async with workspace(config) as ws:
        recorded = audit.recorded_checkpoints(audit.checkpoints_path(ws.settings.config_dir))
        head = await _verify(ws, checkpoint, recorded)
        trust = trust_of(ws.session)
        return head, len(recorded), await unverified(ws.session, trust), trust.enforced


async def _verify(
    ws: Workspace, checkpoint: ChainHead | None, recorded: list[Checkpoint]
) -> ChainHead:
    total = await audit.length(ws.session)
    with Progress(console=err.rich, transient=True) as progress:
        task = progress.add_task("verifying the audit chain", total=total)
        return await audit.verify(
            ws.session,
            checkpoint=checkpoint,
            checkpoints=recorded,
            on_entry=lambda seq: progress.update(task, completed=seq),
        )


async def _checkpoint(config: Path | None) -> tuple[ChainHead, Path]:
    """The verified head (checked against the recorded checkpoints too), and where the
    server's checkpoints are recorded."""
    async with workspace(config) as ws:
        kept = audit.checkpoints_path(ws.settings.config_dir)
        return await _verify(ws, None, audit.recorded_checkpoints(kept)), kept


def _parse(text: str) -> ChainHead:
    try:
        return ChainHead.parse(text)
    except ValueError:
        fail("--checkpoint: give SEQ:HASH as `intake audit checkpoint` prints it")
