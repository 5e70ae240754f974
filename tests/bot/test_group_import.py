"""Reading many groups at once from a CSV or TOML file (``intake group import``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.group_import import Defaults, GroupSpec, ImportFileError, read_groups
from storage.groups import Schedule

DEFAULTS = Defaults(
    interval=timedelta(hours=24), grace=timedelta(hours=6), detained_after=timedelta(days=3)
)


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def import_error(path: Path) -> str:
    with pytest.raises(ImportFileError) as raised:
        read_groups(path, defaults=DEFAULTS)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


# --------------------------------------------------------------------------- CSV


def test_csv_empty_cells_take_the_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "groups.csv",
        "codename,interval,cron,tz,grace,detained_after\n"
        "pine-7,,,,,\n"
        "OAK-2,12h,,,2h,1d\n"
        'ELM-3,,"0 8,20 * * *",Asia/Shanghai,,\n',
    )
    assert read_groups(path, defaults=DEFAULTS) == [
        GroupSpec(
            "PINE-7",
            Schedule(
                interval=timedelta(hours=24),
                grace=timedelta(hours=6),
                detained_after=timedelta(days=3),
            ),
        ),
        GroupSpec(
            "OAK-2",
            Schedule(
                interval=timedelta(hours=12),
                grace=timedelta(hours=2),
                detained_after=timedelta(days=1),
            ),
        ),
        GroupSpec(
            "ELM-3",
            Schedule(
                cron="0 8,20 * * *",
                tz="Asia/Shanghai",
                grace=timedelta(hours=6),
                detained_after=timedelta(days=3),
            ),
        ),
    ]


def test_csv_with_only_a_codename_column(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename\nPINE-7\nOAK-2\n")
    specs = read_groups(path, defaults=DEFAULTS)
    assert [s.codename for s in specs] == ["PINE-7", "OAK-2"]
    assert {s.schedule.interval for s in specs} == {timedelta(hours=24)}


def test_csv_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path, "GROUPS.CSV", "codename\nPINE-7\n")
    assert [s.codename for s in read_groups(path, defaults=DEFAULTS)] == ["PINE-7"]


def test_csv_unknown_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename,intervall\nPINE-7,12h\n")
    assert "unknown column 'intervall'" in import_error(path)


def test_csv_bad_duration_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename,interval\nPINE-7,12h\nOAK-2,2x\nELM-3,1h\n")
    message = import_error(path)
    assert "line 3" in message
    assert "interval" in message
    assert '"2x"' in message


def test_csv_bad_grace_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename,grace\nPINE-7,1.5h\n")
    message = import_error(path)
    assert "line 2" in message
    assert "grace" in message


def test_csv_bad_schedule_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", 'codename,cron\nPINE-7,\nOAK-2,"0 8 * * *"\n')
    message = import_error(path)
    assert "line 3" in message
    assert "--tz" in message


def test_csv_grace_longer_than_detained_after_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename,grace,detained_after\nPINE-7,2d,1d\n")
    message = import_error(path)
    assert "line 2" in message
    assert "grace" in message


def test_csv_duplicate_codename_in_any_case_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename\nPINE-7\nOAK-2\npine-7\n")
    message = import_error(path)
    assert "line 4" in message
    assert "PINE-7 appears twice" in message


def test_csv_missing_codename_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename,interval\nPINE-7,12h\n,12h\n")
    message = import_error(path)
    assert "line 3" in message
    assert "codename is missing" in message


def test_csv_without_codename_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "interval\n12h\n")
    assert "codename is missing" in import_error(path)


def test_csv_bad_codename_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename\nPINE-7\npine 8\n")
    message = import_error(path)
    assert "line 3" in message
    assert "'pine 8'" in message


@pytest.mark.parametrize("text", ["", "codename,interval\n"], ids=["empty", "header only"])
def test_csv_without_groups_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "groups.csv", text)
    assert "no groups in the file" in import_error(path)


def test_csv_not_utf8_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.csv", "codename\nPINE-7\n".encode("utf-16"))
    assert "not UTF-8" in import_error(path)


# --------------------------------------------------------------------------- TOML


def test_toml_group_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "groups.toml",
        """
[[group]]
codename = "pine-7"
interval = "12h"

[[group]]
codename = "OAK-2"
cron = "0 8,20 * * *"
tz = "Asia/Shanghai"
grace = "2h"
detained_after = "2d"

[[group]]
codename = "ELM-3"
""",
    )
    assert read_groups(path, defaults=DEFAULTS) == [
        GroupSpec(
            "PINE-7",
            Schedule(
                interval=timedelta(hours=12),
                grace=timedelta(hours=6),
                detained_after=timedelta(days=3),
            ),
        ),
        GroupSpec(
            "OAK-2",
            Schedule(
                cron="0 8,20 * * *",
                tz="Asia/Shanghai",
                grace=timedelta(hours=2),
                detained_after=timedelta(days=2),
            ),
        ),
        GroupSpec(
            "ELM-3",
            Schedule(
                interval=timedelta(hours=24),
                grace=timedelta(hours=6),
                detained_after=timedelta(days=3),
            ),
        ),
    ]


def test_toml_unknown_key_is_named_with_its_group_number(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "groups.toml",
        '[[group]]\ncodename = "PINE-7"\n\n[[group]]\ncodename = "OAK-2"\nintrval = "12h"\n',
    )
    message = import_error(path)
    assert "group 2" in message
    assert "unknown key 'intrval'" in message


def test_toml_bad_duration_names_its_group_number(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "groups.toml",
        '[[group]]\ncodename = "PINE-7"\n\n[[group]]\ncodename = "OAK-2"\ngrace = "6 hours"\n',
    )
    message = import_error(path)
    assert "group 2" in message
    assert "grace" in message


def test_toml_duration_as_a_number_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.toml", '[[group]]\ncodename = "PINE-7"\ninterval = 12\n')
    message = import_error(path)
    assert "group 1" in message
    assert "like 24h" in message


def test_toml_duplicate_codename_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "groups.toml",
        '[[group]]\ncodename = "PINE-7"\n\n[[group]]\ncodename = "pine-7"\n',
    )
    message = import_error(path)
    assert "group 2" in message
    assert "PINE-7 appears twice" in message


def test_toml_missing_codename_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.toml", '[[group]]\ninterval = "12h"\n')
    message = import_error(path)
    assert "group 1" in message
    assert "codename is missing" in message


def test_toml_cron_as_a_number_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.toml", '[[group]]\ncodename = "PINE-7"\ncron = 8\ntz = "UTC"\n')
    assert "cron and tz must be text" in import_error(path)


@pytest.mark.parametrize(
    "text",
    [
        "",
        '[group]\ncodename = "PINE-7"\n',
        'codename = "PINE-7"\n',
        '[[group]]\ncodename = "PINE-7"\n\n[[groups]]\ncodename = "OAK-2"\n',
    ],
    ids=["empty", "one table not an array", "top-level key", "second array"],
)
def test_toml_other_than_group_tables_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "groups.toml", text)
    assert "expected [[group]] tables" in import_error(path)


@pytest.mark.parametrize(
    "text",
    ["group = [1, 2]\n", "group = [[]]\n", 'group = ["PINE-7"]\n'],
    ids=["numbers", "a list", "a string"],
)
def test_toml_group_entries_that_are_not_tables_are_refused(tmp_path: Path, text: str) -> None:
    # A mistake in the file is an ImportFileError (one line from the CLI), never a crash.
    path = write(tmp_path, "groups.toml", text)
    message = import_error(path)
    assert "group 1" in message


def test_toml_syntax_error_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.toml", '[[group]]\ncodename = "PINE-7\n')
    assert "not valid TOML" in import_error(path)


# --------------------------------------------------------------------------- the file itself


@pytest.mark.parametrize("name", ["groups.txt", "groups.json", "groups", "groups.csv.bak"])
def test_other_suffixes_are_refused(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, "codename\nPINE-7\n")
    assert "name a .csv or .toml file" in import_error(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    assert "No such file" in import_error(tmp_path / "absent.csv")
