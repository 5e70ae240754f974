"""The ``intake`` command line, run as a real process.

Every process costs about two seconds of imports, so the tests share what they can:
installations are made once per module as read-only templates and copied for each test
(a copy is a few hundred kilobytes: config.toml, server_secret and intake.db, with relative
paths), and commands that do not depend on each other run side by side in one batch.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage import keyfile
from storage.trust import OperatorIdentity

PASSPHRASE = "correct horse battery staple"
TIMEOUT_S = 120


# --------------------------------------------------------------------------- running intake


@dataclass(frozen=True)
class Call:
    args: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return (
            f"intake {' '.join(self.args)} -> {self.returncode}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without any INTAKE_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def intake_many(calls: Mapping[str, Call]) -> dict[str, Ran]:
    """Run every call at once (they must not depend on each other); wait for all."""
    started = {
        name: (
            call,
            subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *call.args],
                cwd=call.cwd,
                env=base_env(call.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ),
        )
        for name, call in calls.items()
    }
    done: dict[str, Ran] = {}
    for name, (call, process) in started.items():
        out, err = process.communicate(timeout=TIMEOUT_S)
        done[name] = Ran(call.args, process.returncode, out.decode(), err.decode())
    return done


def intake(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Ran:
    return intake_many({"one": Call(args, cwd, env or {})})["one"]


def assert_ok(ran: Ran) -> None:
    assert ran.returncode == 0, str(ran)
    assert "Traceback" not in ran.stderr, str(ran)


def assert_one_line_error(ran: Ran, *fragments: str) -> str:
    """Exit status not 0 and exactly one stderr line, ``intake: error: ...``; that line."""
    assert ran.returncode != 0, str(ran)
    assert "Traceback" not in ran.stderr, str(ran)
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, str(ran)
    assert lines[0].startswith("intake: error:"), str(ran)
    for fragment in fragments:
        assert fragment in lines[0], str(ran)
    return lines[0]


def status_json(ran: Ran) -> list[dict[str, object]]:
    assert_ok(ran)
    rows = json.loads(ran.stdout)
    assert isinstance(rows, list)
    return rows


def codenames(ran: Ran) -> list[str]:
    return [str(row["codename"]) for row in status_json(ran)]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def copy_of(template: Path, folder: Path) -> Path:
    """An independent installation: the template's files, modes kept."""
    shutil.copytree(template, folder)
    return folder


def database_bytes(installation: Path) -> bytes:
    """The SQLite file and anything beside it (journal, WAL), as a thief would copy them."""
    files = sorted(installation.glob("intake.db*"))
    assert files, f"no database in {installation}"
    return b"".join(p.read_bytes() for p in files)


def stored_codenames(installation: Path) -> list[str]:
    """The groups in an installation's database, read directly."""
    with contextlib.closing(sqlite3.connect(installation / "intake.db")) as db:
        return [row[0] for row in db.execute("SELECT codename FROM groups ORDER BY codename")]


def text_encodings(value: str) -> list[bytes]:
    return [value.encode("utf-8"), value.encode("utf-16-le"), value.encode("utf-16-be")]


# --------------------------------------------------------------------------- shared installations


@dataclass(frozen=True)
class Keygen:
    ran: Ran
    key_file: Path


@dataclass(frozen=True)
class Templates:
    """Installations that tests copy and never change."""

    with_operator: Path  # fresh, then `intake operator add`
    operator_add: Ran
    operator_name: str
    populated: Path  # with_operator, then PINE-7 and OAK-2 added
    add_pine: Ran
    add_oak: Ran


@pytest.fixture(scope="module")
def first_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keygen, Path, Ran]:
    """`intake keygen` on the operator's machine and `intake init` on the server, side by side."""
    operator_machine = tmp_path_factory.mktemp("operator-machine")
    fresh = tmp_path_factory.mktemp("templates") / "fresh"
    fresh.mkdir()
    ran = intake_many(
        {
            "keygen": Call(
                ("keygen", "--out", "operator.key"),
                operator_machine,
                {"INTAKE_PASSPHRASE": PASSPHRASE},
            ),
            "init": Call(("init",), fresh),
        }
    )
    return Keygen(ran["keygen"], operator_machine / "operator.key"), fresh, ran["init"]


@pytest.fixture(scope="module")
def keygen(first_runs: tuple[Keygen, Path, Ran]) -> Keygen:
    return first_runs[0]


@pytest.fixture(scope="module")
def fresh_install(first_runs: tuple[Keygen, Path, Ran]) -> tuple[Path, Ran]:
    """A folder right after `intake init`, and that run."""
    return first_runs[1], first_runs[2]


@pytest.fixture(scope="module")
def public_key(keygen: Keygen) -> str:
    assert_ok(keygen.ran)
    return keygen.ran.stdout.strip()


@pytest.fixture(scope="module")
def templates(fresh_install: tuple[Path, Ran], public_key: str) -> Templates:
    fresh, init = fresh_install
    assert_ok(init)
    root = fresh.parent

    with_operator = copy_of(fresh, root / "with-operator")
    name = f"CANARY-OPNAME-{uuid.uuid4()}"
    operator_add = intake("operator", "add", public_key, "--name", name, cwd=with_operator)
    assert_ok(operator_add)

    populated = copy_of(with_operator, root / "populated")
    add_pine = intake("group", "add", "PINE-7", "--interval", "12h", cwd=populated)
    add_oak = intake(
        "group", "add", "OAK-2", "--cron", "0 8,20 * * *", "--tz", "Asia/Shanghai", cwd=populated
    )
    return Templates(with_operator, operator_add, name, populated, add_pine, add_oak)


# --------------------------------------------------------------------------- init


def test_init_creates_private_config_secret_and_database(
    fresh_install: tuple[Path, Ran],
) -> None:
    folder, init = fresh_install
    assert_ok(init)
    for name in ("config.toml", "server_secret", "intake.db"):
        assert (folder / name).is_file(), name
        assert mode(folder / name) == 0o600, name
    secret = (folder / "server_secret").read_text().strip()
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) == 32
    assert "Database ready" in init.stdout
    assert secret not in init.stdout + init.stderr


@pytest.fixture(scope="module")
def after_init(
    fresh_install: tuple[Path, Ran], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Ran], dict[str, Path]]:
    """Commands on a fresh installation (no operator yet), and `init --dir` elsewhere."""
    root = tmp_path_factory.mktemp("after-init")
    folder = copy_of(fresh_install[0], root / "installation")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    ran = intake_many(
        {
            "status": Call(("status",), folder),
            "status --json": Call(("status", "--json"), folder),
            "init again": Call(("init",), folder),
            "group add": Call(("group", "add", "PINE-7"), folder),
            "init --dir": Call(("init", "--dir", "sub"), elsewhere),
        }
    )
    return ran, {"installation": folder, "elsewhere": elsewhere}


def test_status_right_after_init_has_no_groups(
    after_init: tuple[dict[str, Ran], dict[str, Path]],
) -> None:
    ran, _ = after_init
    assert_ok(ran["status"])
    assert ran["status"].stdout.splitlines() == [
        "No groups yet. Add one with `intake group add CODENAME`."
    ]
    assert status_json(ran["status --json"]) == []


def test_second_init_refuses_and_overwrites_nothing(
    fresh_install: tuple[Path, Ran], after_init: tuple[dict[str, Ran], dict[str, Path]]
) -> None:
    ran, paths = after_init
    assert_one_line_error(ran["init again"], "already exists")
    for name in ("server_secret", "config.toml"):
        assert (paths["installation"] / name).read_bytes() == (
            fresh_install[0] / name
        ).read_bytes(), name


def test_group_add_before_any_operator_says_to_add_one(
    after_init: tuple[dict[str, Ran], dict[str, Path]],
) -> None:
    ran, _ = after_init
    assert_one_line_error(ran["group add"], "intake operator add")


def test_init_dir_from_another_folder(
    after_init: tuple[dict[str, Ran], dict[str, Path]],
) -> None:
    ran, paths = after_init
    assert_ok(ran["init --dir"])
    elsewhere = paths["elsewhere"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["sub"]
    for name in ("config.toml", "server_secret", "intake.db"):
        assert mode(elsewhere / "sub" / name) == 0o600, name


# --------------------------------------------------------------------------- keygen


def test_keygen_prints_the_signed_public_key_and_writes_a_private_key_file(
    keygen: Keygen,
) -> None:
    assert_ok(keygen.ran)
    lines = keygen.ran.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ckop1:")
    identity = OperatorIdentity.from_text(lines[0])  # its signature verifies
    public = identity.public_key
    assert f"fingerprint {public.fingerprint()}" in keygen.ran.stderr
    assert public.fingerprint() not in keygen.ran.stdout
    assert mode(keygen.key_file) == 0o600
    data = keygen.key_file.read_bytes()
    assert keyfile.public_key_of(data) == public
    assert keyfile.verify_key_of(data) == identity.verify_key
    keys = keyfile.unlock_keys(data, PASSPHRASE)
    assert keys.signing is not None
    assert keys.signing.verify_key() == identity.verify_key
    assert PASSPHRASE.encode() not in data


@pytest.fixture(scope="module")
def keygen_failures(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Ran], Path]:
    folder = tmp_path_factory.mktemp("keygen-failures")
    (folder / "taken.key").write_bytes(b"an earlier key\n")
    ran = intake_many(
        {
            "exists": Call(
                ("keygen", "--out", "taken.key"), folder, {"INTAKE_PASSPHRASE": PASSPHRASE}
            ),
            "no passphrase": Call(("keygen", "--out", "new.key"), folder),
            "short passphrase in the environment": Call(
                ("keygen", "--out", "short.key"), folder, {"INTAKE_PASSPHRASE": "a"}
            ),
            "classical without consent": Call(
                ("keygen", "--out", "x25519.key", "--kem", "X25519"),
                folder,
                {"INTAKE_PASSPHRASE": PASSPHRASE},
            ),
        }
    )
    return ran, folder


def test_keygen_never_overwrites_a_key_file(keygen_failures: tuple[dict[str, Ran], Path]) -> None:
    ran, folder = keygen_failures
    assert_one_line_error(ran["exists"], "already exists")
    assert ran["exists"].stdout == ""
    assert (folder / "taken.key").read_bytes() == b"an earlier key\n"


def test_keygen_without_terminal_or_passphrase_names_the_variable(
    keygen_failures: tuple[dict[str, Ran], Path],
) -> None:
    ran, folder = keygen_failures
    assert_one_line_error(ran["no passphrase"], "INTAKE_PASSPHRASE")
    assert not (folder / "new.key").exists()


def test_keygen_holds_a_scripts_passphrase_to_the_same_rule_and_refuses_classical_alone(
    keygen_failures: tuple[dict[str, Ran], Path],
) -> None:
    ran, folder = keygen_failures
    assert_one_line_error(ran["short passphrase in the environment"], "at least 12 characters")
    assert not (folder / "short.key").exists()
    assert_one_line_error(ran["classical without consent"], "--allow-classical")
    assert not (folder / "x25519.key").exists()


# --------------------------------------------------------------------------- the happy path


def test_groups_added_are_listed_and_pending(templates: Templates, tmp_path: Path) -> None:
    assert_ok(templates.add_pine)
    assert templates.add_pine.stdout.startswith("Group PINE-7 added: every 12h")
    assert_ok(templates.add_oak)
    assert "Group OAK-2 added: cron 0 8,20 * * * (Asia/Shanghai)" in templates.add_oak.stdout

    folder = copy_of(templates.populated, tmp_path / "installation")
    ran = intake_many(
        {
            "list": Call(("group", "list"), folder),
            "status --json": Call(("status", "--json"), folder),
        }
    )
    assert_ok(ran["list"])
    assert "PINE-7" in ran["list"].stdout
    assert "OAK-2" in ran["list"].stdout
    rows = status_json(ran["status --json"])
    assert [row["codename"] for row in rows] == ["OAK-2", "PINE-7"]
    for row in rows:
        assert {"codename", "status", "last_checkin", "next_due"} <= row.keys()
        assert row["status"] == "PENDING"
        assert row["last_checkin"] is None


# --------------------------------------------------------------------------- codenames


@pytest.fixture(scope="module")
def codename_runs(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    root = tmp_path_factory.mktemp("codenames")
    adds = copy_of(templates.populated, root / "adds")
    refusals = copy_of(templates.populated, root / "refusals")
    return intake_many(
        {
            "lower case": Call(("group", "add", "pine-9"), adds),
            "duplicate": Call(("group", "add", "PINE-7"), refusals),
            "space": Call(("group", "add", "a b"), refusals),
        }
    )


def test_codename_is_upper_cased(codename_runs: dict[str, Ran]) -> None:
    assert_ok(codename_runs["lower case"])
    assert codename_runs["lower case"].stdout.startswith("Group PINE-9 added")


def test_duplicate_codename_is_refused(codename_runs: dict[str, Ran]) -> None:
    assert_one_line_error(codename_runs["duplicate"], "group PINE-7 already exists")


def test_bad_codename_is_refused(codename_runs: dict[str, Ran]) -> None:
    assert_one_line_error(codename_runs["space"], "'a b'")


# --------------------------------------------------------------------------- bad schedules

BAD_SCHEDULES = {
    "interval 2x": (("--interval", "2x"), '"2x"'),
    "hour 25": (("--cron", "0 25 * * *", "--tz", "UTC"), "'0 25 * * *'"),
    "cron without tz": (("--cron", "0 8 * * *"), "--tz"),
    "unknown tz": (("--cron", "0 8 * * *", "--tz", "Mars/Olympus"), "Mars/Olympus"),
    "interval and cron": (("--interval", "12h", "--cron", "0 8 * * *", "--tz", "UTC"), "not both"),
    "grace over detained-after": (("--grace", "4d", "--detained-after", "3d"), "grace"),
}


@pytest.fixture(scope="module")
def bad_schedule_runs(
    templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Ran], Path]:
    folder = copy_of(templates.populated, tmp_path_factory.mktemp("bad-schedules") / "inst")
    ran = intake_many(
        {
            case: Call(("group", "add", "BAD-1", *options), folder)
            for case, (options, _) in BAD_SCHEDULES.items()
        }
    )
    return ran, folder


@pytest.mark.parametrize("case", list(BAD_SCHEDULES))
def test_bad_schedule_is_one_line_error(
    bad_schedule_runs: tuple[dict[str, Ran], Path], case: str
) -> None:
    ran, _ = bad_schedule_runs
    _, fragment = BAD_SCHEDULES[case]
    assert_one_line_error(ran[case], fragment)
    assert ran[case].stdout == ""


def test_bad_schedules_add_no_group(bad_schedule_runs: tuple[dict[str, Ran], Path]) -> None:
    _, folder = bad_schedule_runs
    assert stored_codenames(folder) == ["OAK-2", "PINE-7"]


# --------------------------------------------------------------------------- invites


@pytest.fixture(scope="module")
def invite_runs(
    templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Ran], Path]:
    folder = copy_of(templates.populated, tmp_path_factory.mktemp("invites") / "inst")
    ran = intake_many(
        {
            "first": Call(("invite", "--role", "relative", "--group", "PINE-7"), folder),
            "second": Call(("invite", "--role", "relative", "--group", "PINE-7"), folder),
            "no group": Call(("invite", "--role", "relative"), folder),
            "admin for a group": Call(("invite", "--role", "admin", "--group", "PINE-7"), folder),
            "unknown group": Call(("invite", "--role", "relative", "--group", "NOPE-1"), folder),
            "labelled": Call(
                ("invite", "--role", "relative", "--group", "PINE-7", "--chat-label", "A"), folder
            ),
            "label too long": Call(
                ("invite", "--role", "relative", "--group", "PINE-7", "--chat-label", "x" * 17),
                folder,
            ),
            "activist with a label": Call(
                ("invite", "--role", "activist", "--group", "PINE-7", "--chat-label", "1"), folder
            ),
            "its codename as a label": Call(
                ("invite", "--role", "relative", "--group", "PINE-7", "--chat-label", "pine-7"),
                folder,
            ),
            "another codename as a label": Call(
                ("invite", "--role", "relative", "--group", "PINE-7", "--chat-label", "Oak 2"),
                folder,
            ),
        }
    )
    return ran, folder


def invite_code(ran: Ran) -> str:
    assert_ok(ran)
    lines = ran.stdout.splitlines()
    code = lines[0]
    assert len(code) >= 20
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert any("t.me/" in line and f"start={code}" in line for line in lines[1:]), str(ran)
    return code


def test_invite_prints_a_code_and_a_link(invite_runs: tuple[dict[str, Ran], Path]) -> None:
    ran, _ = invite_runs
    invite_code(ran["first"])
    assert "one use" in ran["first"].stderr


def test_a_relatives_invite_takes_a_chat_label(invite_runs: tuple[dict[str, Ran], Path]) -> None:
    ran, folder = invite_runs
    invite_code(ran["labelled"])
    with sqlite3.connect(folder / "intake.db") as db:
        labels = [row[0] for row in db.execute("SELECT chat_label FROM invites")]
    assert "A" in labels


def test_two_invites_have_different_codes(invite_runs: tuple[dict[str, Ran], Path]) -> None:
    ran, _ = invite_runs
    assert invite_code(ran["first"]) != invite_code(ran["second"])


def test_invite_code_is_not_in_the_database(invite_runs: tuple[dict[str, Ran], Path]) -> None:
    ran, folder = invite_runs
    stored = database_bytes(folder)
    assert b"PINE-7" in stored  # the scan reads the right file: codenames are in clear
    for name in ("first", "second"):
        code = invite_code(ran[name])
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
        for form in [*text_encodings(code), raw]:
            assert form not in stored, name


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("no group", "--group"),
        ("admin for a group", "--group"),
        ("unknown group", "no group NOPE-1"),
        ("label too long", "1 to 16 characters"),
        ("activist with a label", "only a relative's invite"),
        ("its codename as a label", "a group's codename"),
        ("another codename as a label", "a group's codename"),
    ],
)
def test_invite_refusals(
    invite_runs: tuple[dict[str, Ran], Path], case: str, fragment: str
) -> None:
    ran, _ = invite_runs
    assert_one_line_error(ran[case], fragment)
    assert ran[case].stdout == ""


# --------------------------------------------------------------------------- group import

GROUPS_CSV = """codename,interval,cron,tz,grace,detained_after
ELM-3,6h,,,,
birch-4,,"0 9 * * *",Europe/Berlin,2h,
"""
GROUPS_TOML = """
[[group]]
codename = "CEDAR-5"
interval = "8h"

[[group]]
codename = "MAPLE-6"
cron = "30 7 * * *"
tz = "Asia/Bangkok"
"""
BAD_ROW_CSV = "codename,interval\nWILLOW-8,12h\nASH-9,2x\n"
EXISTING_GROUP_CSV = "codename\nWILLOW-8\nPINE-7\n"


def test_group_import_adds_all_or_nothing(templates: Templates, tmp_path: Path) -> None:
    folder = copy_of(templates.populated, tmp_path / "installation")
    for name, text in [
        ("groups.csv", GROUPS_CSV),
        ("groups.toml", GROUPS_TOML),
        ("bad-row.csv", BAD_ROW_CSV),
        ("existing.csv", EXISTING_GROUP_CSV),
    ]:
        (tmp_path / name).write_text(text)

    # Independent imports, side by side: each one commits all its groups or none.
    ran = intake_many(
        {
            name: Call(("group", "import", str(tmp_path / file)), folder)
            for name, file in [
                ("csv", "groups.csv"),
                ("toml", "groups.toml"),
                ("bad row", "bad-row.csv"),
                ("existing", "existing.csv"),
            ]
        }
    )
    for name in ("csv", "toml"):
        assert_ok(ran[name])
        assert "Imported 2 group(s)." in ran[name].stdout
    assert_one_line_error(ran["bad row"], "line 3", '"2x"')
    assert_one_line_error(ran["existing"], "PINE-7 already exists")

    after = intake("status", "--json", cwd=folder)
    assert codenames(after) == ["BIRCH-4", "CEDAR-5", "ELM-3", "MAPLE-6", "OAK-2", "PINE-7"]


# --------------------------------------------------------------------------- choosing the config


@pytest.fixture(scope="module")
def config_runs(
    templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Ran], Path]:
    root = tmp_path_factory.mktemp("config")
    good = copy_of(templates.populated, root / "good") / "config.toml"
    broken = copy_of(templates.populated, root / "broken") / "config.toml"
    text = broken.read_text()
    assert "\n[telegram]\n" in text
    broken.write_text(text.replace("\n[telegram]\n", '\n[telegram]\ntokn = "env:X"\n', 1))
    missing = root / "nowhere" / "config.toml"
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    ran = intake_many(
        {
            "--config": Call(("status", "--json", "--config", str(good)), elsewhere),
            "INTAKE_CONFIG": Call(("status", "--json"), elsewhere, {"INTAKE_CONFIG": str(good)}),
            "unknown key": Call(("status", "--config", str(broken)), elsewhere),
            "missing": Call(("group", "list", "--config", str(missing)), elsewhere),
        }
    )
    return ran, elsewhere


@pytest.mark.parametrize("case", ["--config", "INTAKE_CONFIG"])
def test_config_chosen_from_another_folder(
    config_runs: tuple[dict[str, Ran], Path], case: str
) -> None:
    ran, elsewhere = config_runs
    assert codenames(ran[case]) == ["OAK-2", "PINE-7"]
    assert list(elsewhere.iterdir()) == []  # the database is beside the config, not here


def test_config_with_unknown_key_is_one_line(config_runs: tuple[dict[str, Ran], Path]) -> None:
    ran, _ = config_runs
    assert_one_line_error(ran["unknown key"], "[telegram] tokn")


def test_missing_config_says_to_run_init(config_runs: tuple[dict[str, Ran], Path]) -> None:
    ran, _ = config_runs
    assert_one_line_error(ran["missing"], "intake init")


# --------------------------------------------------------------------------- promise 1


def test_operator_name_is_not_in_the_database(templates: Templates, public_key: str) -> None:
    assert_ok(templates.operator_add)
    stored = database_bytes(templates.with_operator)
    fingerprint = OperatorIdentity.from_text(public_key).public_key.fingerprint()
    assert fingerprint.encode() in stored  # the scan reads the right file: stored in clear
    assert b"CANARY-OPNAME-" not in stored
    for form in text_encodings(templates.operator_name):
        assert form not in stored
    for path in templates.with_operator.iterdir():
        assert templates.operator_name.encode() not in path.read_bytes(), path.name
