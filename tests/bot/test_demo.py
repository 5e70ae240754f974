"""`intake demo` plays the seed article's story end to end, as a new user runs it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage import keyfile
from storage.age_export import decrypt_with

DEMO_PASSPHRASE = "pine seven crosses the river"


def intake(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = call(*args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def call(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# What the demo tells, in this order.
STEPS = [
    "Group PINE-7: ten adults and a child, route Ryanggang → Qingdao → Kunming → Laos border",
    "The sister in Seoul (relative of PINE-7) redeems an invite",
    "Ji-woo (activist for PINE-7) redeems an invite",
    "Tae-min (activist for another group, OAK-2) redeems an invite",
    "The organisation's desk (an admin) redeems an invite",
    "The sister forwards Mi-rae's check-in from Qingdao",
    "PINE-7 is OK.",
    "The sister forwards a stage phrase from Kunming",
    "The sister forwards a pasted SMS from the minibus",
    "PINE-7 is LATE",
    "SILENT: Ji-woo is alerted",
    "⚠ Alert: PINE-7 is SILENT (no check-in by the end of the grace period)",
    "Leg: Kunming.",
    "Tae-min gets it",
    "Ji-woo presses Acknowledge",
    'The sister forwards a message in Korean: "we were caught"',
    "⚠ Alert: PINE-7 is DETAINED (reported by a relative)",
    # A forced "all is well" leaves it DETAINED; only two people clear it (issue 13).
    'forced by the captors ("all is well")',
    "PINE-7 stays DETAINED; no all-clear",
    "a check-in arrived after the detention report",
    "Ji-woo presses Clear under the alert",
    "until a second person",
    "The desk is told at once: 'PINE-7: Ji-woo (P-",
    "The desk, a second person, presses Clear",
    "PINE-7 is cleared",
    "Two people agreed: PINE-7 is OK again",
    "The operator opens the sealed inbox",
    "The audit chain verifies",
    "PINE-7 is OK (cleared).",
]


def assert_tells_the_story(story: str) -> None:
    positions = [story.find(step) for step in STEPS]
    assert -1 not in positions, [s for s, p in zip(STEPS, positions, strict=True) if p == -1]
    assert positions == sorted(positions), "the steps were told out of order"
    assert "Traceback" not in story
    # Every reply to the relative was the same neutral receipt, in her language.
    receipts = [line for line in story.splitlines() if "the bot replies" in line]
    assert len(receipts) == 5
    assert all("잘 받았어요" in line for line in receipts)
    # The operator opened three check-ins among the five messages.
    assert story.count(" checkin ") == 3


def test_the_demo_tells_the_whole_story_and_leaves_a_working_installation(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    story = intake("demo", "--dir", str(folder), cwd=tmp_path)
    assert_tells_the_story(story)
    # Among the five messages the operator opened, a stage phrase and a detention report.
    assert " stage " in story
    assert " detained " in story
    # It ends by saying how to open the console on the installation it leaves behind.
    hint = story.rstrip().splitlines()[-2:]
    assert (
        hint[0]
        == "Or open the operator's console in your browser (the passphrase is the one above):"
    )
    assert hint[1].endswith(
        f" console --config {folder / 'config.toml'} --key {folder / 'operator.key'}"
    )

    status = intake("status", "--json", "--config", str(folder / "config.toml"), cwd=tmp_path)
    assert '"codename": "PINE-7"' in status
    assert '"status": "OK"' in status

    # The operator reads what the demo's relative sent, on the same folder.
    config = str(folder / "config.toml")
    key = str(folder / "operator.key")
    unlocked = {"INTAKE_PASSPHRASE": DEMO_PASSPHRASE}
    lines = intake(
        "inbox",
        "list",
        "--format",
        "json",
        "--config",
        config,
        "--key",
        key,
        cwd=tmp_path,
        env=unlocked,
    ).splitlines()
    messages = [json.loads(line) for line in lines]
    assert [m["text"] for m in messages][::-1] == [
        "the tea is warm",
        "the persimmons are ripe",
        "[SMS +86 138 0013 8000] 버스 안이에요. 다 괜찮아요",
        "엄마, 우리 잡혔어요. 국경에서",
        "the tea is warm",
    ]
    assert {m["group"] for m in messages} == {"PINE-7"}
    assert messages[-1]["link_reason"] == "member_origin"
    assert all(m["forwarder"].startswith("P-") for m in messages)
    wrong = call(
        "inbox",
        "list",
        "--config",
        config,
        "--key",
        key,
        cwd=tmp_path,
        env={"INTAKE_PASSPHRASE": "not the passphrase"},
    )
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("intake: error:")
    assert "엄마" not in wrong.stdout + wrong.stderr

    # Acting on one message: read (which marks it seen), note, star, unlink, link.
    def op(*args: str) -> str:
        return intake("inbox", *args, "--config", config, "--key", key, cwd=tmp_path, env=unlocked)

    # The newest is the forced "all is well"; the one before it, the report of the capture.
    assert messages[0]["signal"] == "checkin (after a report)"
    caught_id = messages[1]["id"]
    caught = caught_id[:8]
    assert "엄마, 우리 잡혔어요" in op("read", caught)
    assert op("note", caught, "called the sister back") == "Note added.\n"
    assert op("star", caught) == "Starred.\n"
    assert [
        json.loads(x)["id"] for x in op("list", "--starred", "--format", "json").splitlines()
    ] == [caught_id]
    assert len(op("list", "--unread", "--format", "json").splitlines()) == 4
    assert "note: called the sister back" in op("read", caught)
    op("unlink", caught)
    [waiting] = [json.loads(x) for x in op("list", "--unlinked", "--format", "json").splitlines()]
    assert (waiting["id"], waiting["group"]) == (caught_id, None)
    op("link", caught, "PINE-7")
    [relinked] = [
        m
        for m in map(json.loads, op("list", "--format", "json").splitlines())
        if m["id"] == caught_id
    ]
    assert (relinked["group"], relinked["link_reason"]) == ("PINE-7", "operator")
    assert "called the sister back" not in (folder / "intake.db").read_bytes().decode("latin-1")

    # The same messages, exported sealed to the operator's own age identity.
    intake(
        "inbox",
        "export",
        "--out",
        "export.age",
        "--config",
        config,
        "--key",
        key,
        cwd=tmp_path,
        env=unlocked,
    )
    identity = intake("keygen", "--age", key, cwd=tmp_path, env=unlocked)
    exported = decrypt_with(
        keyfile.unlock(keyfile.read(Path(key)), DEMO_PASSPHRASE),
        (tmp_path / "export.age").read_bytes(),
    )
    assert len(exported.decode().splitlines()) == len(lines) == 5
    assert identity.startswith("AGE-SECRET-KEY-1")

    assert intake("audit", "verify", "--config", config, cwd=tmp_path).startswith("OK: ")

    # The journey as a picture: times and statuses, nothing anyone wrote.
    for name in ("pine-7.png", "pine-7.svg"):
        intake("timeline", "PINE-7", "--config", config, "--out", name, cwd=tmp_path)
    assert (tmp_path / "pine-7.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = (tmp_path / "pine-7.svg").read_text()
    assert svg.lstrip().startswith("<?xml")
    assert "leg 3" in svg
    for secret in ("tea is warm", "persimmons", "잡혔", "Kunming", "Mi-rae", "138 0013"):
        assert secret not in svg
    # In the installation's zone (the demo's is Seoul), or the one `intake --tz` names.
    assert "time (KST)" in svg
    intake(
        "--tz", "UTC", "timeline", "PINE-7", "--config", config, "--out", "utc.svg", cwd=tmp_path
    )
    assert "time (UTC)" in (tmp_path / "utc.svg").read_text()


def test_the_whole_story_holds_with_python_optimised_as_the_service_runs(
    tmp_path: Path,
) -> None:
    # docs/deploy.md's unit runs the bot as `python -OO` (PYTHONOPTIMIZE=2), which drops
    # docstrings and asserts: nothing the bot does may rest on either. The demo is the
    # real bot through every kind of signal, alert, acknowledgement, the two-person
    # clear, the sealed inbox and the audit chain.
    story = intake(
        "demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path, env={"PYTHONOPTIMIZE": "2"}
    )
    assert_tells_the_story(story)


def test_shredding_then_audit_verify_names_a_changed_entry_and_a_checkpoint_a_cut_tail(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "demo"
    intake("demo", "--dir", str(folder), cwd=tmp_path)
    config = str(folder / "config.toml")
    refused = call(
        "group", "shred", "PINE-7", "--yes-i-mean", "OAK-2", "--config", config, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "nothing was shredded" in refused.stderr
    assert intake(
        "group", "shred", "PINE-7", "--yes-i-mean", "pine-7", "--config", config, cwd=tmp_path
    ).startswith("PINE-7 is shredded")
    left = intake(
        "inbox",
        "list",
        "--format",
        "json",
        "--config",
        config,
        "--key",
        str(folder / "operator.key"),
        cwd=tmp_path,
        env={"INTAKE_PASSPHRASE": DEMO_PASSPHRASE},
    )
    assert left == ""
    assert intake("retention", "run", "--config", config, cwd=tmp_path).startswith("Nothing is due")
    kept = intake("audit", "checkpoint", "--config", config, cwd=tmp_path).strip()
    seq = int(kept.split(":")[0])
    assert seq >= 3
    with sqlite3.connect(folder / "intake.db") as db:
        # What an attacker holding the database file can do: the triggers go first.
        db.execute("DROP TRIGGER audit_events_no_update")
        db.execute("DROP TRIGGER audit_events_no_delete")
        db.execute(f"DELETE FROM audit_events WHERE seq = {seq}")
    # `audit checkpoint` recorded the head beside the config too: a plain verify sees the cut.
    recorded = call("audit", "verify", "--config", config, cwd=tmp_path)
    assert recorded.returncode == 1
    assert recorded.stdout.startswith(f"BROKEN: the log ends at {seq - 1}, before the checkpoint")
    (folder / "audit_checkpoints").unlink()  # the attacker holds the server's files too
    cut = intake("audit", "verify", "--config", config, cwd=tmp_path)
    assert cut.startswith("OK: ")  # without a checkpoint, a cut tail looks whole
    caught = call("audit", "verify", "--checkpoint", kept, "--config", config, cwd=tmp_path)
    assert caught.returncode == 1
    assert caught.stdout.startswith("BROKEN:")
    with sqlite3.connect(folder / "intake.db") as db:
        db.execute("UPDATE audit_events SET actor = 'someone else' WHERE seq = 2")
    changed = call("audit", "verify", "--config", config, cwd=tmp_path)
    assert changed.returncode == 1
    assert changed.stdout.strip() == "BROKEN: entry 2 was altered"


def _venv(root: Path) -> Path:
    """A virtualenv's bin folder with a python and an intake in it (empty files)."""
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "intake"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_the_demo_names_the_virtualenvs_intake_when_the_shell_would_not_find_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.demo import _how_to_call_intake

    bin_dir = _venv(tmp_path)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # not activated
    assert _how_to_call_intake() == ".venv/bin/intake"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _how_to_call_intake() == str(bin_dir / "intake")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # activated
    assert _how_to_call_intake() == "intake"
