"""Message text as Telegram's servers treat it: parse modes, automatic entities, trimming."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.standin._text import (
    EntityParseError,
    entities_from_json,
    finish_text,
    parse_text,
    utf16_len,
)


def _render(text: str, mode: str | None) -> tuple[str, list[tuple[str, int, int]]]:
    final, entities = finish_text(*parse_text(text, mode))
    return final, [(e["type"], e["offset"], e["length"]) for e in entities]


def test_html_tags_become_entities_and_escapes_are_undone() -> None:
    text, entities = _render('<b>굵게</b> <i>it</i> <a href="https://x.org">l</a> &amp;', "HTML")
    assert text == "굵게 it l &"
    assert entities == [("bold", 0, 2), ("italic", 3, 2), ("text_link", 6, 1)]


def test_html_pre_with_a_language_is_one_entity() -> None:
    text, entities = finish_text(
        *parse_text('<pre><code class="language-py">x</code></pre>', "HTML")
    )
    assert text == "x"
    assert entities == [{"type": "pre", "offset": 0, "length": 1, "language": "py"}]


@pytest.mark.parametrize(
    ("src", "error"),
    [
        ("a <br> b", 'Unsupported start tag "br"'),
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", "Unmatched end tag"),
        ("1 < 2", "Unclosed start tag"),
    ],
)
def test_bad_html_is_refused(src: str, error: str) -> None:
    with pytest.raises(EntityParseError, match=error):
        parse_text(src, "HTML")


def test_markdown_v2_entities_and_escapes() -> None:
    text, entities = _render(
        r"*b* _i_ __u__ ~s~ ||sp|| `c` [l](https://x.org/\)) 1\.5", "MarkdownV2"
    )
    assert text == "b i u s sp c l 1.5"
    assert [e[0] for e in entities] == [
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "code",
        "text_link",
    ]


def test_markdown_v2_reserved_characters_must_be_escaped() -> None:
    with pytest.raises(EntityParseError, match=r"Character '\.' is reserved"):
        parse_text("Received. Thank you!", "MarkdownV2")
    with pytest.raises(EntityParseError, match="Can't find end of Bold entity"):
        parse_text("*open", "MarkdownV2")


def test_legacy_markdown() -> None:
    assert _render("*b* _i_ `c` [l](https://x.org)", "Markdown") == (
        "b i c l",
        [("bold", 0, 1), ("italic", 2, 1), ("code", 4, 1), ("text_link", 6, 1)],
    )
    with pytest.raises(EntityParseError, match="Can't find end of the entity"):
        parse_text("*open", "Markdown")


def test_unknown_parse_mode_is_refused() -> None:
    with pytest.raises(EntityParseError, match="unsupported parse_mode"):
        parse_text("x", "BBCode")


def test_offsets_count_utf16_code_units() -> None:
    text, entities = _render("😀 /help", None)
    assert text == "😀 /help"
    assert entities == [("bot_command", 3, 5)]
    assert utf16_len("😀") == 2


def test_surrounding_whitespace_is_trimmed_and_entities_follow() -> None:
    text, entities = _render("  \n<b>hi</b> /start \n", "HTML")
    assert text == "hi /start"
    assert entities == [("bold", 0, 2), ("bot_command", 3, 6)]


def test_commands_mentions_hashtags_urls_and_emails_are_detected() -> None:
    text, entities = _render(
        "/start@intake_test_bot CODE @alice_k #PINE7 www.example.org me@ex.org", None
    )
    assert [e[0] for e in entities] == ["bot_command", "mention", "hashtag", "url", "email"]
    assert text[entities[0][1] : entities[0][1] + entities[0][2]] == "/start@intake_test_bot"


def test_explicit_entities_are_kept() -> None:
    raw = [{"type": "bold", "offset": 3, "length": 2}]
    final, entities = finish_text("😀 ok", entities_from_json("😀 ok", raw))
    assert entities == [{"type": "bold", "offset": 3, "length": 2}]
    assert final == "😀 ok"


@given(st.text(max_size=60))
def test_plain_text_never_fails_and_entities_stay_inside(text: str) -> None:
    final, entities = finish_text(*parse_text(text, None))
    total = utf16_len(final)
    for e in entities:
        assert 0 <= e["offset"] < e["offset"] + e["length"] <= total


@given(st.text(max_size=60))
def test_escaped_markdown_v2_round_trips(text: str) -> None:
    escaped = "".join(
        "\\" + c if 1 <= ord(c) <= 126 and c in "_*[]()~`>#+-=|{}.!\\" else c for c in text
    )
    final, _ = finish_text(*parse_text(escaped, "MarkdownV2"))
    assert final == text.strip()
