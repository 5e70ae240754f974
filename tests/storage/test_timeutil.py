"""The zones people name: a zone, or None, never an exception."""

from __future__ import annotations

import pytest

from storage.timeutil import zone_named


@pytest.mark.parametrize("name", ["Asia/Seoul", "UTC", "America/Argentina/Buenos_Aires"])
def test_a_zone_is_found_by_its_name(name: str) -> None:
    zone = zone_named(name)
    assert zone is not None
    assert zone.key == name


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus",  # unknown
        "Asia",  # a region: a folder of zones (IsADirectoryError on Python 3.11)
        "../etc/passwd",  # malformed
        "/etc/localtime",
        "",
        "Asia/Seoul\x00",
        "A" * 300,  # longer than a file name may be (OSError on Python 3.11)
    ],
)
def test_anything_else_is_none(name: str) -> None:
    assert zone_named(name) is None
