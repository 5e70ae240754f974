"""The catalogues the bot reads are the translators' catalogues, compiled."""

from __future__ import annotations

import gettext
import io
from typing import Any

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.i18n import DEFAULT, LANGUAGES, compiled_catalogue, source_catalogue, translator


@pytest.mark.parametrize("language", sorted(set(LANGUAGES) - {DEFAULT}))
def test_each_compiled_catalogue_is_its_po_compiled(language: str) -> None:
    with source_catalogue(language).open("rb") as source:
        catalogue = read_po(source, locale=language, domain="intake")
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    expected = _messages(gettext.GNUTranslations(compiled))
    shipped = _messages(
        gettext.GNUTranslations(io.BytesIO(compiled_catalogue(language).read_bytes()))
    )
    assert shipped == expected, (
        f"bot/locale/{language}/LC_MESSAGES/intake.mo is stale: run "
        "`.venv/bin/pybabel compile -d bot/locale -D intake`"
    )


def _messages(translations: gettext.GNUTranslations) -> dict[Any, str]:
    # Every message and its translation, without the header (msgid ""), whose
    # POT-Creation-Date Babel sets to the moment of compiling when the .po has none.
    catalogue: dict[Any, str] = translations._catalog  # type: ignore[attr-defined]
    return {key: text for key, text in catalogue.items() if key != ""}


def test_the_bot_speaks_korean_from_the_compiled_catalogue() -> None:
    with source_catalogue("ko").open("rb") as source:
        catalogue = read_po(source, locale="ko", domain="intake")
    said = [
        (m.id, m.string)
        for m in catalogue
        if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.context is None
    ]
    assert said
    for english, korean in said:
        assert translator("ko")(english) == korean
