"""`intake operator share` and `intake operator remove`, as an admin and two operators
run them: the newcomer reads every group; the leaver's key opens nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bot.test_cli import assert_ok, assert_one_line_error, intake

PASSPHRASE = {"INTAKE_PASSPHRASE": "correct horse battery staple"}
# The keys here are X25519 alone (fast to make): the server takes them only with consent.
CLASSICAL = ("--allow-classical",)


def keygen(tmp_path: Path, name: str) -> tuple[str, str]:
    """A key file; its public key line and its fingerprint."""
    ran = intake(
        "keygen",
        "--out",
        name,
        "--kem",
        "X25519",
        "--allow-classical",
        cwd=tmp_path,
        env=PASSPHRASE,
    )
    assert_ok(ran)
    public = ran.stdout.strip()
    assert "warning: a classical-only key" in ran.stderr
    fingerprint = ran.stderr.split("fingerprint ")[1].split()[0]
    return public, fingerprint


def test_a_new_operator_is_given_every_group_and_a_removed_one_opens_nothing(
    tmp_path: Path,
) -> None:
    assert_ok(intake("init", cwd=tmp_path))
    first_public, first = keygen(tmp_path, "first.key")
    second_public, second = keygen(tmp_path, "second.key")
    assert_ok(intake("operator", "add", first_public, "--name", "First", *CLASSICAL, cwd=tmp_path))
    assert_ok(intake("group", "add", "PINE-7", cwd=tmp_path))
    assert_ok(intake("group", "add", "OAK-2", cwd=tmp_path))
    added = intake("operator", "add", second_public, "--name", "Second", *CLASSICAL, cwd=tmp_path)
    assert_ok(added)
    assert f"intake operator share {second}" in added.stderr
    # The groups were added without --key: their keys are not signed, so not used yet.
    unsigned = intake("audit", "verify", cwd=tmp_path)
    assert unsigned.returncode == 1
    assert unsigned.stdout.count("NOT TRUSTED: groups row") == 2

    shared = intake(
        "operator", "share", second[:12], "--key", "first.key", cwd=tmp_path, env=PASSPHRASE
    )
    assert_ok(shared)
    assert "Shared 2 group key(s)" in shared.stdout
    # Safe to run again; and the fingerprint is taken without its colons, in capitals too.
    bare = second.replace(":", "").upper()[:16]
    again = intake("operator", "share", bare, "--key", "first.key", cwd=tmp_path, env=PASSPHRASE)
    assert_ok(again)
    assert "Shared 0 group key(s)" in again.stdout

    assert_one_line_error(
        intake(
            "operator", "remove", second[:12], "--key", "second.key", cwd=tmp_path, env=PASSPHRASE
        ),
        "another operator's key",
    )
    removed = intake(
        "operator", "remove", first[:12], "--key", "second.key", cwd=tmp_path, env=PASSPHRASE
    )
    assert_ok(removed)
    assert "2 group key(s) rotated" in removed.stdout
    # The rotated keys are signed by the remover, and the leaver's signing key is retired.
    verified = intake("audit", "verify", cwd=tmp_path)
    assert_ok(verified)
    assert "NOT TRUSTED" not in verified.stdout
    assert '"removed": true' in (tmp_path / "operator_signers").read_text()
    assert_ok(intake("inbox", "list", "--key", "second.key", cwd=tmp_path, env=PASSPHRASE))
    assert_one_line_error(
        intake("inbox", "list", "--key", "first.key", cwd=tmp_path, env=PASSPHRASE),
        "not a registered operator",
    )
    assert_one_line_error(
        intake(
            "operator", "remove", second[:12], "--key", "second.key", cwd=tmp_path, env=PASSPHRASE
        ),
    )


def test_operator_add_with_a_key_shares_at_once_and_removal_waits_for_what_only_the_leaver_opens(
    tmp_path: Path,
) -> None:
    assert_ok(intake("init", cwd=tmp_path))
    first_public, first = keygen(tmp_path, "first.key")
    second_public, second = keygen(tmp_path, "second.key")
    third_public, _ = keygen(tmp_path, "third.key")
    assert_ok(intake("operator", "add", first_public, "--name", "First", *CLASSICAL, cwd=tmp_path))
    assert_ok(intake("group", "add", "PINE-7", cwd=tmp_path))
    added = intake(
        "operator",
        "add",
        second_public,
        "--name",
        "Second",
        "--key",
        "first.key",
        *CLASSICAL,
        cwd=tmp_path,
        env=PASSPHRASE,
    )
    assert_ok(added)
    assert f"Shared 1 group key(s) with {second}" in added.stdout
    assert_ok(intake("operator", "add", third_public, "--name", "Third", *CLASSICAL, cwd=tmp_path))

    # The third was never given PINE-7: removing the first with the third's key would
    # skip it, so it is refused before anything changes.
    assert_one_line_error(
        intake(
            "operator", "remove", first[:12], "--key", "third.key", cwd=tmp_path, env=PASSPHRASE
        ),
        "alone opens PINE-7",
    )
    removed = intake(
        "operator", "remove", first[:12], "--key", "second.key", cwd=tmp_path, env=PASSPHRASE
    )
    assert_ok(removed)
    assert "1 group key(s) rotated" in removed.stdout
    again = intake(
        "operator", "remove", first[:12], "--key", "second.key", cwd=tmp_path, env=PASSPHRASE
    )
    assert_ok(again)
    assert "0 group key(s) rotated" in again.stdout  # resumable: nothing is done twice
    assert_one_line_error(
        intake("operator", "share", first[:12], "--key", "third.key", cwd=tmp_path, env=PASSPHRASE),
        "was removed",
    )
    verified = intake("audit", "verify", cwd=tmp_path)
    assert_ok(verified)
    assert verified.stdout.startswith("OK: ")


def test_a_classical_only_key_is_refused_by_the_server_without_allow_classical(
    tmp_path: Path,
) -> None:
    assert_ok(intake("init", cwd=tmp_path))
    public, fingerprint = keygen(tmp_path, "x25519.key")
    assert_one_line_error(
        intake("operator", "add", public, "--name", "Op", cwd=tmp_path), "--allow-classical"
    )
    assert json.loads(intake("operator", "list", "--format", "json", cwd=tmp_path).stdout) == []
    assert fingerprint not in (tmp_path / "operator_signers").read_text()
    added = intake("operator", "add", public, "--name", "Op", *CLASSICAL, cwd=tmp_path)
    assert_ok(added)
    assert "warning: a classical-only operator key" in added.stderr
    [row] = json.loads(intake("operator", "list", "--format", "json", cwd=tmp_path).stdout)
    assert (row["fingerprint"], row["kem"]) == (fingerprint, "X25519")
    assert fingerprint in (tmp_path / "operator_signers").read_text()


def test_classical_group_keys_from_the_config_need_allow_classical_and_are_warned_about(
    tmp_path: Path,
) -> None:
    assert_ok(intake("init", cwd=tmp_path))
    public, _ = keygen(tmp_path, "op.key")
    assert_ok(intake("operator", "add", public, "--name", "Op", *CLASSICAL, cwd=tmp_path))
    config = tmp_path / "config.toml"
    hybrid = 'kem = "MLKEM768_X25519"\n'
    assert hybrid in config.read_text()
    config.write_text(config.read_text().replace(hybrid, 'kem = "X25519"\n'))
    assert_one_line_error(intake("group", "add", "PINE-7", cwd=tmp_path), "allow_classical")
    config.write_text(
        config.read_text().replace('kem = "X25519"\n', 'kem = "X25519"\nallow_classical = true\n')
    )
    added = intake("group", "add", "PINE-7", cwd=tmp_path)
    assert_ok(added)
    assert "warning: [keys] kem" in added.stderr
    assert "classical only" in added.stderr


def test_operator_sign_signs_what_an_older_installation_left_unsigned(tmp_path: Path) -> None:
    """The one-command migration: groups added before signatures (here without --key)
    are not trusted until an operator signs them, once; the pinned signers stay 0600."""
    assert_ok(intake("init", cwd=tmp_path))
    public, fingerprint = keygen(tmp_path, "first.key")
    assert_ok(intake("operator", "add", public, "--name", "First", *CLASSICAL, cwd=tmp_path))
    assert_ok(intake("group", "add", "PINE-7", cwd=tmp_path))
    assert_ok(intake("group", "add", "OAK-2", cwd=tmp_path))
    assert intake("audit", "verify", cwd=tmp_path).stdout.count("NOT TRUSTED: groups row") == 2

    signed = intake("operator", "sign", "--key", "first.key", cwd=tmp_path, env=PASSPHRASE)
    assert_ok(signed)
    verified = intake("audit", "verify", cwd=tmp_path)
    assert_ok(verified)
    assert "NOT TRUSTED" not in verified.stdout
    pins = tmp_path / "operator_signers"
    assert fingerprint.replace(":", "")[:16] in pins.read_text().replace(":", "")
    assert pins.stat().st_mode & 0o777 == 0o600
    # Nothing is left to sign: a second run changes nothing and still succeeds.
    assert_ok(intake("operator", "sign", "--key", "first.key", cwd=tmp_path, env=PASSPHRASE))
    assert_ok(intake("audit", "verify", cwd=tmp_path))
