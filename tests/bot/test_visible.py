"""Control and bidi characters become marks that name them; the rest stays."""

from __future__ import annotations

from bot.visible import visible, visible_parts


def test_terminal_escapes_become_control_pictures() -> None:
    # OSC 52 (write the clipboard), CSI (clear the screen), CR (overwrite the row).
    assert visible("a\x1b]52;c;ZXZpbA==\x07b\x1b[2J\rc") == "a␛]52;c;ZXZpbA==␇b␛[2J␍c"
    assert visible("\x7f\x9b31m") == "␡⟨U+009B⟩31m"  # DEL, and the one-byte CSI


def test_bidi_and_invisible_characters_are_named() -> None:
    assert visible("\u202eefas\u202c") == "⟨RLO⟩efas⟨PDF⟩"
    assert visible("\u2066x\u2069\u200f\u200b\ufeff") == "⟨LRI⟩x⟨PDI⟩⟨RLM⟩⟨ZWSP⟩⟨BOM⟩"


def test_ordinary_text_in_any_script_stays_as_it_is() -> None:
    text = "엄마, 우리 잡혔어요 — 妈妈 👨\u200d👩\u200d👧 مرحبا\tok\nnext"
    assert visible(text) == text
    assert visible_parts(text) == [(text, False)]


def test_one_line_mode_marks_newlines_and_spaces_tabs() -> None:
    assert visible("a\nb\tc", keep_newlines=False) == "a␊b c"


def test_the_parts_say_which_pieces_are_marks() -> None:
    assert visible_parts("ok\x1b[31m") == [("ok", False), ("␛", True), ("[31m", False)]
