"""The console's small decisions: where an action sends the browser back to, and
which attachments it shows as pictures."""

from __future__ import annotations

from multidict import MultiDict, MultiDictProxy

from bot.console.views import _back, picture_type


def test_the_console_sends_back_only_to_its_own_pages() -> None:
    def back(value: str) -> str:
        return _back(MultiDictProxy(MultiDict({"back": value})))

    assert back("/inbox?unread=1") == "/inbox?unread=1"
    for elsewhere in ("//evil.example", "/\\evil.example", "https://evil.example", "/a\\b", ""):
        assert back(elsewhere) == "/inbox"


def test_a_picture_is_recognised_by_its_own_bytes_never_by_its_name() -> None:
    assert picture_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert picture_type(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert picture_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert picture_type(b"<svg onload=alert(1)>") is None  # SVG carries script: a download
    assert picture_type(b"<html>") is None
    assert picture_type(None) is None
