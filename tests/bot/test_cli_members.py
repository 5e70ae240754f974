"""``intake member add`` and ``intake codebook add|list``, run as real processes.

As in ``test_cli.py``, every process costs about two seconds of imports: the module
makes one installation (an operator and the group PINE-7) and runs its commands in
three batches, each batch side by side. The tests then read what the batches left:
the output of every run, and the database as a thief would copy it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from storage.codebook import phrase_binding
from storage.crypto import ServerKeys
from storage.legs import name_binding
from tests.bot.test_cli import (
    PASSPHRASE,
    TIMEOUT_S,
    Ran,
    assert_ok,
    assert_one_line_error,
    base_env,
    database_bytes,
    text_encodings,
)

TAG = uuid.uuid4().hex[:8].upper()
_rng = random.Random(TAG)  # noqa: S311 (canary digits, not a secret)
_digits = f"{_rng.randrange(10**7, 10**8)}"

# Everything that must never reach the database in clear, nor the screen.
PHONE_WRITTEN = f"+86 139 {_digits[:4]} {_digits[4:]}"
PHONE_E164 = f"+86139{_digits}"
PHONE_DASHED = f"+86-139-{_digits[:4]}-{_digits[4:]}"  # the same number, written otherwise
PHONE_LOCAL = f"139 {_digits[:4]} {_digits[4:]}"  # no country code: refused
SECOND_PHONE = f"+8562055{_digits[:6]}"  # a Lao mobile
TELEGRAM_ID = str(7_000_000_000 + _rng.randrange(10**8))
USERNAME_WRITTEN = f"@Canary_User_{TAG}"
USERNAME = USERNAME_WRITTEN[1:].casefold()
HIDDEN_NAME = f"Canary Hidden {TAG}"
MEMBER_NAME = f"CANARY-MEMBER-{TAG} 김철수"
MEMBER_NOTES = f"CANARY-NOTES-{TAG} 四岁的孩子"

DURESS = f"Canary {TAG} the tea is warm"
ORG_CHECKIN = f"canary {TAG} we walked all day"
STAGE = f"비가{TAG}온다"
STAGE_AGAIN = f"雨停了{TAG}"  # read from standard input, never on a command line
LEG = f"Kunming{TAG}"
CONTAINS_DURESS = f"{DURESS} and sweet"  # would read as duress every time: refused
PHRASES = [DURESS, ORG_CHECKIN, STAGE, STAGE_AGAIN, CONTAINS_DURESS]


def full_width(text: str) -> str:
    """ASCII as its full-width forms (U+FF01..U+FF5E), the space as the ideographic space."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


# Each differs from DURESS only in case, width, spacing or punctuation.
DURESS_VARIANTS = {
    "case": DURESS.upper(),
    "width": full_width(DURESS),
    "punctuation": DURESS.replace(" the ", ", the ").replace("warm", "  warm!!") + "...",
}
SECRETS = [
    PHONE_WRITTEN,
    PHONE_E164,
    PHONE_E164[1:],
    PHONE_DASHED,
    PHONE_LOCAL,
    PHONE_LOCAL.replace(" ", ""),
    SECOND_PHONE,
    TELEGRAM_ID,
    USERNAME_WRITTEN,
    USERNAME,
    HIDDEN_NAME,
    HIDDEN_NAME.casefold(),
    MEMBER_NAME,
    MEMBER_NAME.split()[0],
    MEMBER_NOTES,
    *PHRASES,
    *DURESS_VARIANTS.values(),
    LEG,
    LEG.casefold(),
    LEG.upper(),
]


# --------------------------------------------------------------------------- running intake


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    stdin: str | None = None
    cwd: Path | None = None  # else the batch's folder
    env: Mapping[str, str] = field(default_factory=dict)


def intake_batch(folder: Path, runs: Mapping[str, Run]) -> dict[str, Ran]:
    """``test_cli.intake_many``, where a run may also be given standard input."""
    started = {
        name: (
            run,
            subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *run.args],
                cwd=run.cwd or folder,
                env=base_env(run.env),
                stdin=subprocess.DEVNULL if run.stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ),
        )
        for name, run in runs.items()
    }
    done: dict[str, Ran] = {}
    for name, (run, process) in started.items():
        given = None if run.stdin is None else run.stdin.encode()
        out, err = process.communicate(given, timeout=TIMEOUT_S)
        done[name] = Ran(run.args, process.returncode, out.decode(), err.decode())
    return done


@dataclass(frozen=True)
class Installation:
    folder: Path
    ran: dict[str, Ran]  # every run after the setup, by name

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.folder / "intake.db")) as db:
            return list(db.execute(query))

    def server(self) -> ServerKeys:
        secret = (self.folder / "server_secret").read_text().strip()
        return ServerKeys(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    root = tmp_path_factory.mktemp("members")
    folder = root / "installation"
    folder.mkdir()
    operator_machine = root / "operator-machine"
    operator_machine.mkdir()
    setup = intake_batch(
        folder,
        {
            "init": Run(("init",)),
            "keygen": Run(
                ("keygen", "--out", "operator.key"),
                cwd=operator_machine,
                env={"INTAKE_PASSPHRASE": PASSPHRASE},
            ),
        },
    )
    assert_ok(setup["keygen"])
    assert_ok(setup["init"])
    public_key = setup["keygen"].stdout.strip()
    setup |= intake_batch(
        folder, {"operator": Run(("operator", "add", public_key, "--name", "Operator One"))}
    )
    setup |= intake_batch(folder, {"group": Run(("group", "add", "PINE-7"))})
    for each in setup.values():
        assert_ok(each)

    # Independent of each other, side by side.
    ran = intake_batch(
        folder,
        {
            "member": Run(
                ("member", "add", "pine-7", "--from", "-"),
                stdin=(
                    f"phone: {PHONE_WRITTEN}\nphone: {SECOND_PHONE}\n"
                    f"telegram-id: {TELEGRAM_ID}\nusername: {USERNAME_WRITTEN}\n"
                    f"hidden-name: {HIDDEN_NAME}\nname: {MEMBER_NAME}\nnotes: {MEMBER_NOTES}\n"
                ),
            ),
            "bad phone": Run(
                ("member", "add", "PINE-7", "--from", "-"), stdin=f"phone: {PHONE_LOCAL}\n"
            ),
            "unknown group": Run(
                ("member", "add", "NOPE-1", "--from", "-"), stdin=f"phone: {PHONE_WRITTEN}\n"
            ),
            "from arguments": Run(("member", "add", "PINE-7", "--phone", PHONE_WRITTEN)),
            "no terminal": Run(("member", "add", "PINE-7")),
            "duress": Run(("codebook", "add", "PINE-7", DURESS, "--means", "duress")),
            "org-wide": Run(("codebook", "add", "--all", ORG_CHECKIN, "--means", "checkin")),
            "stage": Run(("codebook", "add", "PINE-7", STAGE, "--means", f"stage:{LEG}")),
        },
    )
    # After the first batch: repeats and refusals, and a second phrase for the same leg.
    ran |= intake_batch(
        folder,
        {
            "same phone": Run(
                ("member", "add", "PINE-7", "--from", "-"), stdin=f"phone: {PHONE_DASHED}\n"
            ),
            **{
                f"duress again ({case})": Run(
                    ("codebook", "add", "PINE-7", variant, "--means", "checkin")
                )
                for case, variant in DURESS_VARIANTS.items()
            },
            "org-wide again": Run(("codebook", "add", "PINE-7", ORG_CHECKIN, "--means", "safe")),
            "contains duress": Run(
                ("codebook", "add", "PINE-7", CONTAINS_DURESS, "--means", "checkin")
            ),
            "stage for all": Run(("codebook", "add", "--all", STAGE_AGAIN, "--means", "stage:X")),
            "same leg": Run(
                ("codebook", "add", "PINE-7", "-", "--means", f"stage: {LEG.upper()} "),
                stdin=STAGE_AGAIN + "\n",
            ),
        },
    )
    ran |= intake_batch(
        folder,
        {
            "list": Run(("codebook", "list", "PINE-7")),
            "list --all": Run(("codebook", "list", "--all")),
        },
    )
    return Installation(folder, ran)


# --------------------------------------------------------------------------- members


def test_member_add_with_several_identifiers(installation: Installation) -> None:
    ran = installation.ran["member"]
    assert_ok(ran)
    assert ran.stdout.splitlines() == ["Member added to PINE-7 (5 identifiers)."]
    assert ran.stderr == ""
    kinds = installation.rows("SELECT kind FROM member_identifiers ORDER BY kind")
    assert [k for (k,) in kinds] == ["hidden_name", "phone", "phone", "telegram_id", "username"]


def test_identifiers_are_normalised_blind_indexes(installation: Installation) -> None:
    server = installation.server()
    stored = {
        (kind, bytes(index))
        for kind, index in installation.rows("SELECT kind, blind_index FROM member_identifiers")
    }
    assert stored == {
        ("phone", server.blind_index("phone", PHONE_E164)),
        ("phone", server.blind_index("phone", SECOND_PHONE)),
        ("telegram_id", server.blind_index("telegram_id", TELEGRAM_ID)),
        ("username", server.blind_index("username", USERNAME)),
        ("hidden_name", server.blind_index("hidden_name", HIDDEN_NAME.casefold())),
    }


def test_member_add_is_audited_with_counts_only(installation: Installation) -> None:
    events = installation.rows(
        "SELECT subject, details FROM audit_events WHERE action = 'member.add'"
    )
    assert events == [("PINE-7", json.dumps({"identifiers": 5}, separators=(",", ":")))]


def test_phone_without_country_code_is_refused(installation: Installation) -> None:
    ran = installation.ran["bad phone"]
    assert_one_line_error(ran, "phone", "country code", "+")
    assert ran.stdout == ""


def test_member_details_are_never_taken_from_arguments(installation: Installation) -> None:
    # Arguments show in /proc/PID/cmdline and shell history: there is no option for them.
    ran = installation.ran["from arguments"]
    assert ran.returncode != 0
    assert "No such option: --phone" in ran.stderr
    assert_one_line_error(installation.ran["no terminal"], "--from FILE")


def test_unknown_group_is_one_line(installation: Installation) -> None:
    ran = installation.ran["unknown group"]
    assert_one_line_error(ran, "no group NOPE-1")
    assert ran.stdout == ""


def test_same_number_written_otherwise_is_refused(installation: Installation) -> None:
    assert_one_line_error(
        installation.ran["same phone"], "PINE-7 already has a member with that phone number"
    )
    assert installation.rows("SELECT count(*) FROM members") == [(1,)]


# --------------------------------------------------------------------------- codebooks


def test_codebook_add_for_a_group_and_for_all(installation: Installation) -> None:
    assert_ok(installation.ran["duress"])
    assert installation.ran["duress"].stdout.splitlines() == [
        "Phrase added to PINE-7's codebook: it means duress."
    ]
    assert_ok(installation.ran["org-wide"])
    assert installation.ran["org-wide"].stdout.splitlines() == [
        "Phrase added to the organisation-wide codebook: it means checkin."
    ]
    server = installation.server()
    entries = {
        server.open(bytes(sealed), phrase_binding(uuid.UUID(hex=str(entry_id)))).decode(): (
            means,
            group is None,
        )
        for entry_id, sealed, means, group in installation.rows(
            "SELECT id, phrase_sealed, means, group_id FROM codebook_entries"
        )
    }
    assert entries == {
        DURESS: ("duress", False),
        ORG_CHECKIN: ("checkin", True),
        STAGE: ("stage", False),
        STAGE_AGAIN: ("stage", False),
    }
    audited = installation.rows(
        "SELECT subject, details FROM audit_events WHERE action = 'codebook.add' ORDER BY seq"
    )
    assert ("PINE-7", '{"means":"duress"}') in audited
    assert ("*", '{"means":"checkin"}') in audited
    assert len(audited) == 4


def test_stage_phrase_adds_its_leg_once(installation: Installation) -> None:
    assert_ok(installation.ran["stage"])
    assert installation.ran["stage"].stdout.splitlines() == [
        "Phrase added to PINE-7's codebook: it means stage (leg 1, new)."
    ]
    # The same leg, named in another case and read from standard input.
    assert_ok(installation.ran["same leg"])
    assert installation.ran["same leg"].stdout.splitlines() == [
        "Phrase added to PINE-7's codebook: it means stage (leg 1)."
    ]
    legs = installation.rows("SELECT id, position, name_sealed FROM legs")
    assert len(legs) == 1
    leg_id, position, sealed = legs[0]
    assert position == 1
    server = installation.server()
    binding = name_binding(uuid.UUID(hex=str(leg_id)))
    assert server.open(bytes(sealed), binding).decode() == LEG
    assert installation.rows(
        "SELECT count(*) FROM codebook_entries WHERE means = 'stage' AND leg_id = "
        "(SELECT id FROM legs)"
    ) == [(2,)]
    assert installation.rows("SELECT details FROM audit_events WHERE action = 'leg.add'") == [
        ('{"position":1}',)
    ]


@pytest.mark.parametrize("case", list(DURESS_VARIANTS))
def test_duplicate_phrase_is_refused(installation: Installation, case: str) -> None:
    ran = installation.ran[f"duress again ({case})"]
    assert_one_line_error(ran, "already in PINE-7's codebook")
    assert ran.stdout == ""


def test_organisation_wide_phrase_is_not_added_to_a_group(installation: Installation) -> None:
    assert_one_line_error(
        installation.ran["org-wide again"], "already in the organisation-wide codebook"
    )


def test_phrase_containing_a_stronger_one_is_refused(installation: Installation) -> None:
    assert_one_line_error(
        installation.ran["contains duress"], "contains a duress phrase of PINE-7's codebook"
    )


def test_stage_needs_a_group(installation: Installation) -> None:
    assert_one_line_error(installation.ran["stage for all"], "CODENAME", "--all")


def test_codebook_list_shows_counts_only(installation: Installation) -> None:
    ran = installation.ran["list"]
    assert_ok(ran)
    rows = {
        cells[0]: cells[1:]
        for line in ran.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│┃ ").split("│")]) == 3
    }
    assert rows["stage (leg 1)"] == ["2", "0"]
    assert rows["duress"] == ["1", "0"]
    assert rows["checkin"] == ["0", "1"]
    assert "safe" not in rows
    everyone = installation.ran["list --all"]
    assert_ok(everyone)
    assert "checkin" in everyone.stdout
    assert "duress" not in everyone.stdout


# --------------------------------------------------------------------------- promise 1


def test_nothing_secret_in_the_database(installation: Installation) -> None:
    stored = database_bytes(installation.folder)
    assert b"PINE-7" in stored  # the scan reads the right file: codenames are in clear
    assert TAG.encode() not in stored
    for secret in SECRETS:
        for form in text_encodings(secret):
            assert form not in stored, secret


def test_nothing_secret_on_the_screen(installation: Installation) -> None:
    for name, ran in installation.ran.items():
        shown = ran.stdout + ran.stderr
        assert TAG not in shown, name
        assert TAG.casefold() not in shown.casefold(), name
        for secret in SECRETS:
            assert secret not in shown, (name, secret)
