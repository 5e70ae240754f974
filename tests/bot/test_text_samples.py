"""Every activist and admin text, in English and Korean, as snapshots (docs/texts.md),
and the Korean done properly: every message translated with the same placeholders, one
polite register (해요체), status names and durations in Korean."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from bot.i18n import source_catalogue
from bot.text_samples import page, samples

ROOT = Path(__file__).resolve().parents[2]
STATUS_WORDS = re.compile(r"\b(PENDING|OK|LATE|SILENT|DETAINED|SAFE|PAUSED)\b")
# A number with an ASCII unit of time: "12m", "3 h", "20 sec", "5 minutes", "2d".
ASCII_DURATION = re.compile(
    r"\d+\s*(?:s|m|h|d|w|sec|secs|seconds?|mins?|minutes?|hours?|days?|weeks?)\b", re.IGNORECASE
)
# A command as typed, with its ASCII arguments ("/pause PINE-7 12h"): syntax, not words.
COMMAND = re.compile(r"/[a-z]+(?: [A-Za-z0-9_./-]+)*")
# A particle written both ways because the word before it is not known ("SAFE(으)로",
# "표시을(를)"): a machine's hedge, never written by a person.
HEDGED_PARTICLE = re.compile(r"\((?:으|을|를|은|는|이|가|와|과)\)")
# The copula after a syllable that ends in a consonant is 이에요, not 예요 ("정상예요").
COPULA = re.compile("([가-힣])예요")
KEYWORDS = {"_": None, "N_": (1, 2), "pgettext_": ((1, "c"), 2)}
SOURCES = ("bot/texts.py", "bot/i18n.py", "bot/timeline.py")


def korean_problems(text: str) -> list[str]:
    """What is wrong with a Korean message: an English status word, an ASCII duration, a
    hedged particle, or 예요 after a final consonant."""
    words = COMMAND.sub("", text)
    after_consonant = [
        f"{syllable}예요"
        for syllable in COPULA.findall(words)
        if (ord(syllable) - ord("가")) % 28  # a syllable's final consonant, by its code point
    ]
    return (
        STATUS_WORDS.findall(words)
        + ASCII_DURATION.findall(words)
        + HEDGED_PARTICLE.findall(words)
        + after_consonant
    )


def catalogue() -> list[tuple[object, object, str | None]]:
    with source_catalogue("ko").open("rb") as source:
        read = read_po(source, locale="ko")
    return [(m.id, m.string, m.context) for m in read if m.id]


def test_docs_texts_md_is_the_page_the_samples_make() -> None:
    committed = (ROOT / "docs" / "texts.md").read_text(encoding="utf-8")
    assert committed == page(), "run: python -m bot.text_samples > docs/texts.md"


@pytest.mark.parametrize("sample", samples(), ids=lambda s: s.name)
def test_every_sample_is_said_in_both_languages(sample: object) -> None:
    assert callable(sample)
    english, korean = sample("en"), sample("ko")
    for text in (english, korean):
        assert text.strip()
        assert "{" not in text
        assert "}" not in text
    assert not korean_problems(korean), korean
    assert re.search("[가-힣]", korean) or korean == english  # translated, or only symbols


def test_the_korean_check_catches_what_it_is_for() -> None:
    assert korean_problems("PINE-7: SILENT, 마지막 연락 12m 전") == ["SILENT", "12m"]
    assert korean_problems("5 minutes 전") == ["5 minutes"]
    assert korean_problems("예: /pause PINE-7 12h") == []  # a command's syntax is not words
    assert korean_problems("PINE-7을(를) 안전(으)로 표시했어요") == ["(를)", "(으)"]
    assert korean_problems("지금 상태는 정상예요") == ["상예요"]
    assert korean_problems("지금은 억류 상태예요. 정상이에요") == []


def test_every_message_has_a_korean_translation_with_the_same_placeholders() -> None:
    translated = {(context, msgid): msgstr for msgid, msgstr, context in catalogue()}
    extracted = []
    for source in SOURCES:
        for _, message, _, context in extract_from_file("python", ROOT / source, KEYWORDS):
            extracted.append((context, message))
    assert extracted
    for key in extracted:
        assert key in translated, f"no Korean for {key}"
        msgstr = translated[key]
        singular = key[1][0] if isinstance(key[1], tuple) else key[1]
        strings = msgstr if isinstance(msgstr, tuple) else (msgstr,)
        for text in strings:
            assert isinstance(text, str)
            assert text, f"empty Korean for {key}"
            assert _fields(text) == _fields(str(singular)), key


def test_korean_is_in_one_polite_register_with_korean_status_words_and_durations() -> None:
    for msgid, msgstr, _ in catalogue():
        for text in msgstr if isinstance(msgstr, tuple) else (msgstr,):
            assert isinstance(text, str)
            # 해요체 throughout: no 합쇼체 ("-습니다", "-입니까") beside it.
            assert not re.search(r"(니다|니까)[.?]?", text), (msgid, text)
            assert not korean_problems(text), (msgid, text)
            assert "참조" not in text  # a receipt number is 접수번호
            assert "체크인" not in text  # a check-in is 연락 throughout


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_korean_catalogue_holds_no_message_the_code_no_longer_says() -> None:
    """The reverse: a Korean entry whose English the code no longer uses is an old text
    kept by mistake (an old question's 일행, which named what the chat is, stayed so)."""
    extracted: set[tuple[str | None, object]] = set()
    for source in sorted((ROOT / "bot").rglob("*.py")):
        for _, message, _, context in extract_from_file("python", source, KEYWORDS):
            extracted.add((context, message))
    assert extracted
    kept = {(context, msgid) for msgid, _, context in catalogue()}
    assert kept - extracted == set(), "Korean entries the code no longer uses"
