"""Control and bidirectional characters shown as visible marks, never interpreted.

A stranger writes what they like. Printed as it came, an ESC or CSI sequence moves
the terminal's cursor, recolours or hides rows, or (OSC 52) writes the operator's
clipboard; a right-to-left override turns "safe" into "efas" or makes one inbox
row look like another. Every text from a message goes through ``visible`` (the
command line) or ``visible_parts`` (the console) before anyone sees it: each such
character becomes a mark that names it, such as ␛ or ⟨RLO⟩, and the rest stays.
"""

from __future__ import annotations

# The bidirectional controls, by name (Unicode's abbreviations).
BIDI = {
    "\u061c": "ALM",
    "\u200e": "LRM",
    "\u200f": "RLM",
    "\u202a": "LRE",
    "\u202b": "RLE",
    "\u202c": "PDF",
    "\u202d": "LRO",
    "\u202e": "RLO",
    "\u2066": "LRI",
    "\u2067": "RLI",
    "\u2068": "FSI",
    "\u2069": "PDI",
}
# Invisible characters that can hide text or make two strings look alike. The
# zero-width joiner and non-joiner are left alone: emoji and several scripts need them.
INVISIBLE = {
    "\u200b": "ZWSP",
    "\u2060": "WJ",
    "\ufeff": "BOM",
    "\u2028": "LSEP",
    "\u2029": "PSEP",
    "\u00ad": "SHY",
}


def mark_of(char: str, *, keep_newlines: bool) -> str | None:
    """The visible mark for one character, or None when it is shown as it is."""
    code = ord(char)
    if char == "\n" and keep_newlines:
        return None
    if char == "\t":
        return None if keep_newlines else " "
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␛ for ESC, ␍ for CR
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0x80 <= code < 0xA0:
        return f"⟨U+{code:04X}⟩"  # C1 controls: 0x9B is a one-byte CSI
    name = BIDI.get(char) or INVISIBLE.get(char)
    return f"⟨{name}⟩" if name else None


def visible_parts(text: str, *, keep_newlines: bool = True) -> list[tuple[str, bool]]:
    """The text as runs of (piece, is_mark), for a page that styles the marks."""
    parts: list[tuple[str, bool]] = []
    plain: list[str] = []
    for char in text:
        shown = mark_of(char, keep_newlines=keep_newlines)
        if shown is None:
            plain.append(char)
            continue
        if plain:
            parts.append(("".join(plain), False))
            plain = []
        parts.append((shown, shown != " "))
    if plain:
        parts.append(("".join(plain), False))
    return parts


def visible(text: str, *, keep_newlines: bool = True) -> str:
    """The text with every control and bidi character replaced by its mark."""
    return "".join(piece for piece, _ in visible_parts(text, keep_newlines=keep_newlines))


def json_visible(dumped: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with every character that
    ``visible`` would mark written as a ``\\uXXXX`` escape instead: the same data for
    a program, nothing a terminal obeys. (JSON escapes C0 controls itself.)"""
    return "".join(
        f"\\u{ord(c):04x}" if c != "\n" and mark_of(c, keep_newlines=True) is not None else c
        for c in dumped
    )
