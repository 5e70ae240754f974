"""The catalogues the bot reads are the translators' catalogues, compiled."""

from __future__ import annotations

import io

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.i18n import DEFAULT, LANGUAGES, compiled_catalogue, source_catalogue, translator


@pytest.mark.parametrize("language", sorted(set(LANGUAGES) - {DEFAULT}))
def test_each_compiled_catalogue_is_its_po_compiled(language: str) -> None:
    with source_catalogue(language).open("rb") as source:
        catalogue = read_po(source, locale=language, domain="intake")
    expected = io.BytesIO()
    write_mo(expected, catalogue)
    assert compiled_catalogue(language).read_bytes() == expected.getvalue(), (
        f"bot/locale/{language}/LC_MESSAGES/intake.mo is stale: run "
        "`.venv/bin/pybabel compile -d bot/locale -D intake`"
    )


def test_the_bot_speaks_korean_from_the_compiled_catalogue() -> None:
    with source_catalogue("ko").open("rb") as source:
        catalogue = read_po(source, locale="ko", domain="intake")
    translated = [m for m in catalogue if m.id and m.string and isinstance(m.id, str)]
    assert translated
    for message in translated:
        if message.context is None:
            assert translator("ko")(message.id) == message.string
