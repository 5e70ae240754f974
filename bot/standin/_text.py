"""Message text as Telegram's servers treat it: parse modes, automatic entities, trimming.

Offsets in the Bot API count UTF-16 code units; the parsers here work in Python characters
and :func:`finish_text` converts at the end. Error texts follow the real Bot API's wording
(``can't parse entities: ...``) closely enough for a bot to see the same failure it would
meet in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


class EntityParseError(ValueError):
    """The text could not be parsed in the requested parse mode."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


@dataclass
class _Entity:
    type: str
    offset: int  # Python characters, converted to UTF-16 by finish_text
    length: int
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- HTML

_HTML_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_ATTR_RE = re.compile(r"""([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _html_unescape_attr(value: str) -> str:
    return re.sub(
        r"&(lt|gt|amp|quot);",
        lambda m: _NAMED_ENTITIES[m.group(1)],
        value,
    )


def parse_html(src: str) -> tuple[str, list[_Entity]]:
    out: list[str] = []
    length = 0
    entities: list[_Entity] = []
    stack: list[tuple[str, int, dict[str, str]]] = []  # tag, start offset, attributes
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c == "<":
            end = src.find(">", i)
            if end < 0:
                raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, i)}")
            body = src[i + 1 : end]
            if body.startswith("/"):
                name = body[1:].strip().lower()
                if not stack:
                    raise EntityParseError(
                        f"Unexpected end tag at byte offset {_byte_offset(src, i)}"
                    )
                tag, start, attrs = stack.pop()
                if name != tag:
                    raise EntityParseError(
                        f"Unmatched end tag at byte offset {_byte_offset(src, i)}, "
                        f'expected "</{tag}>", found "</{name}>"'
                    )
                _close_html(tag, start, length, attrs, entities, stack)
            else:
                parts = body.split(None, 1)
                name = parts[0].lower() if parts else ""
                if name not in _HTML_TAGS:
                    raise EntityParseError(
                        f'Unsupported start tag "{name}" at byte offset {_byte_offset(src, i)}'
                    )
                attrs = {
                    m.group(1).lower(): _html_unescape_attr((m.group(2) or "").strip("\"'"))
                    for m in _ATTR_RE.finditer(parts[1] if len(parts) > 1 else "")
                }
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise EntityParseError(
                        f'Tag "span" must have class "tg-spoiler" at byte offset '
                        f"{_byte_offset(src, i)}"
                    )
                stack.append((name, length, attrs))
            i = end + 1
            continue
        if c == "&":
            semi = src.find(";", i + 1, i + 12)
            if semi > 0:
                ref = src[i + 1 : semi]
                ch: str | None = _NAMED_ENTITIES.get(ref)
                if ch is None and ref.startswith("#"):
                    try:
                        code = int(ref[2:], 16) if ref[1:2] in ("x", "X") else int(ref[1:])
                        ch = chr(code)
                    except (ValueError, OverflowError):
                        ch = None
                if ch is not None:
                    out.append(ch)
                    length += 1
                    i = semi + 1
                    continue
        out.append(c)
        length += 1
        i += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), entities


def _close_html(
    tag: str,
    start: int,
    end: int,
    attrs: dict[str, str],
    entities: list[_Entity],
    stack: list[tuple[str, int, dict[str, str]]],
) -> None:
    kind = _HTML_TAGS[tag]
    extra: dict[str, Any] = {}
    if kind == "text_link":
        href = attrs.get("href")
        if not href:
            return
        extra["url"] = href
    elif kind == "custom_emoji":
        extra["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif kind == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    elif kind == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x">: one pre entity with a language
        language = attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1][2]["_language"] = language.removeprefix("language-")
        return
    elif kind == "pre" and attrs.get("_language"):
        extra["language"] = attrs["_language"]
    if end > start:
        entities.append(_Entity(kind, start, end - start, extra))


# --------------------------------------------------------------------------------- MarkdownV2

_V2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
    "expandable_blockquote": "ExpandableBlockQuote",
}


def parse_markdown_v2(src: str) -> tuple[str, list[_Entity]]:
    return _MarkdownV2(src).run()


class _MarkdownV2:
    """A scanner for MarkdownV2 as the Bot API documents it."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.out: list[str] = []
        self.entities: list[_Entity] = []
        # kind, start offset in out, byte offset in src, extra fields
        self.stack: list[tuple[str, int, int, dict[str, Any]]] = []
        self.quote: tuple[str, int] | None = None

    def toggle(self, kind: str, at: int) -> None:
        stack = self.stack
        if stack and stack[-1][0] == kind:
            _, start, _, extra = stack.pop()
            if len(self.out) > start:
                self.entities.append(_Entity(kind, start, len(self.out) - start, extra))
        elif any(k[0] == kind for k in stack):
            top = stack[-1]
            raise EntityParseError(
                f"Can't find end of {_V2_NAMES[top[0]]} entity at byte offset {top[2]}"
            )
        else:
            stack.append((kind, len(self.out), _byte_offset(self.src, at), {}))

    def close_quote(self) -> None:
        if self.quote is None:
            return
        kind, start = self.quote
        end = len(self.out)
        while end > start and self.out[end - 1] == "\n":
            end -= 1
        if end > start:
            self.entities.append(_Entity(kind, start, end - start))
        self.quote = None

    def run(self) -> tuple[str, list[_Entity]]:
        src, out, stack = self.src, self.out, self.stack
        i = 0
        n = len(src)
        while i < n:
            c = src[i]
            top = stack[-1][0] if stack else None
            if c == "\\" and i + 1 < n and 1 <= ord(src[i + 1]) <= 126:
                out.append(src[i + 1])
                i += 2
                continue
            if top in ("code", "pre"):
                i = self.in_code(i)
                continue
            if (i == 0 or src[i - 1] == "\n") and not stack:
                if src.startswith("**>", i):
                    if self.quote is None:
                        self.quote = ("expandable_blockquote", len(out))
                    i += 3
                    continue
                if c == ">":
                    if self.quote is None:
                        self.quote = ("blockquote", len(out))
                    i += 1
                    continue
                self.close_quote()
            i = self.markup(i, c, top)
        if stack:
            kind, _, at, _ = stack[-1]
            raise EntityParseError(
                f"Can't find end of {_V2_NAMES[kind]} entity at byte offset {at}"
            )
        self.close_quote()
        return "".join(out), self.entities

    def in_code(self, i: int) -> int:
        src, stack = self.src, self.stack
        if stack[-1][0] == "pre" and src.startswith("```", i):
            _, start, _, extra = stack.pop()
            if len(self.out) > start:
                self.entities.append(_Entity("pre", start, len(self.out) - start, extra))
            return i + 3
        if stack[-1][0] == "code" and src[i] == "`":
            self.toggle("code", i)
            return i + 1
        self.out.append(src[i])
        return i + 1

    def markup(self, i: int, c: str, top: str | None) -> int:
        src = self.src
        if c == "*":
            self.toggle("bold", i)
            return i + 1
        if c == "_":
            if src.startswith("__", i):
                self.toggle("underline", i)
                return i + 2
            self.toggle("italic", i)
            return i + 1
        if c == "~":
            self.toggle("strikethrough", i)
            return i + 1
        if c == "|" and src.startswith("||", i):
            ends_line = i + 2 == len(src) or src[i + 2] == "\n"
            expandable = self.quote is not None and self.quote[0] == "expandable_blockquote"
            if expandable and top is None and ends_line:
                self.close_quote()
            else:
                self.toggle("spoiler", i)
            return i + 2
        if c == "`":
            at = _byte_offset(src, i)
            if not src.startswith("```", i):
                self.toggle("code", i)
                return i + 1
            nl = src.find("\n", i + 3)
            close = src.find("```", i + 3)
            extra: dict[str, Any] = {}
            if 0 <= nl < (close if close >= 0 else len(src)):
                language = src[i + 3 : nl].strip()
                if language:
                    extra["language"] = language
                self.stack.append(("pre", len(self.out), at, extra))
                return nl + 1
            self.stack.append(("pre", len(self.out), at, extra))
            return i + 3
        if c == "[" or (c == "!" and src.startswith("![", i)):
            kind = "custom_emoji" if c == "!" else "text_link"
            self.stack.append((kind, len(self.out), _byte_offset(src, i), {}))
            return i + (2 if c == "!" else 1)
        if c == "]" and top in ("text_link", "custom_emoji"):
            return self.link_target(i)
        if c in _V2_RESERVED:
            raise EntityParseError(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
        self.out.append(c)
        return i + 1

    def link_target(self, i: int) -> int:
        src = self.src
        kind, start, at, _ = self.stack[-1]
        if not src.startswith("(", i + 1):
            raise EntityParseError(
                f"Can't find end of {_V2_NAMES[kind]} entity at byte offset {at}"
            )
        j = i + 2
        target: list[str] = []
        while j < len(src) and src[j] != ")":
            if src[j] == "\\" and j + 1 < len(src):
                target.append(src[j + 1])
                j += 2
            else:
                target.append(src[j])
                j += 1
        if j >= len(src):
            raise EntityParseError(
                f"Can't find end of a url at byte offset {_byte_offset(src, i + 1)}"
            )
        self.stack.pop()
        url = "".join(target)
        if len(self.out) > start:
            extra = (
                {"custom_emoji_id": url.partition("id=")[2]}
                if kind == "custom_emoji"
                else {"url": url}
            )
            self.entities.append(_Entity(kind, start, len(self.out) - start, extra))
        return j + 1


# ------------------------------------------------------------------------- legacy Markdown


def parse_markdown(src: str) -> tuple[str, list[_Entity]]:
    out: list[str] = []
    entities: list[_Entity] = []
    i = 0
    n = len(src)
    markers = {"*": "bold", "_": "italic"}
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.append(src[i + 1])
            i += 2
            continue
        if c in markers or c == "`":
            is_pre = src.startswith("```", i)
            token = "```" if is_pre else c
            close = src.find(token, i + len(token))
            if close < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(src, i)}"
                )
            inner = src[i + len(token) : close]
            extra: dict[str, Any] = {}
            if is_pre:
                first, sep, rest = inner.partition("\n")
                if sep and first and " " not in first:
                    extra["language"] = first
                    inner = rest
            kind = "pre" if is_pre else ("code" if c == "`" else markers[c])
            if inner:
                entities.append(_Entity(kind, len(out), len(inner), extra))
                out.extend(inner)
            i = close + len(token)
            continue
        if c == "[":
            close = src.find("]", i + 1)
            if close < 0 or not src.startswith("(", close + 1):
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(src, i)}"
                )
            url_end = src.find(")", close + 2)
            if url_end < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(src, i)}"
                )
            label = src[i + 1 : close]
            if label:
                entities.append(
                    _Entity("text_link", len(out), len(label), {"url": src[close + 2 : url_end]})
                )
                out.extend(label)
            i = url_end + 1
            continue
        out.append(c)
        i += 1
    return "".join(out), entities


# ---------------------------------------------------------------------- automatic entities

_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    (
        "url",
        re.compile(
            r"(?<![\w@/.])(?:https?://[^\s<>\"]+|www\.[^\s<>\"]+|"
            r"(?:[A-Za-z0-9-]+\.)+(?:com|org|net|io|me|kr|ru|de|uk|info|app|dev)(?:/[^\s<>\"]*)?)"
            r"(?<![.,;:!?)\]])"
        ),
    ),
    (
        "bot_command",
        re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])"),
    ),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{4,32}(?![\w@])")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d_]\w*")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{3,8}(?![\w$])")),
]
_NO_AUTO_INSIDE = {"code", "pre", "text_link", "url", "email", "text_mention"}


def _auto_entities(text: str, existing: list[_Entity]) -> list[_Entity]:
    taken: list[tuple[int, int]] = [
        (e.offset, e.offset + e.length) for e in existing if e.type in _NO_AUTO_INSIDE
    ]
    found: list[_Entity] = []
    for kind, pattern in _AUTO_PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span()
            if any(start < b and a < end for a, b in taken):
                continue
            taken.append((start, end))
            found.append(_Entity(kind, start, end - start))
    return found


# ----------------------------------------------------------------------------- assembling


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[_Entity]]:
    """Apply ``parse_mode`` (None, "HTML", "MarkdownV2" or "Markdown"; case-insensitive)."""
    if not parse_mode:
        return text, []
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    raise EntityParseError("unsupported parse_mode")


def entities_from_json(text: str, raw: list[JSON]) -> list[_Entity]:
    """Explicit entities (UTF-16 offsets) converted to Python character offsets."""
    index = _utf16_to_char_index(text)
    result: list[_Entity] = []
    total = utf16_len(text)
    for item in raw:
        off = int(item.get("offset", 0))
        ln = int(item.get("length", 0))
        if off < 0 or ln <= 0 or off + ln > total:
            continue
        start = index.get(off)
        end = index.get(off + ln)
        if start is None or end is None:
            continue
        extra = {k: v for k, v in item.items() if k not in ("type", "offset", "length")}
        result.append(_Entity(str(item.get("type", "")), start, end - start, extra))
    return result


def _utf16_to_char_index(text: str) -> dict[int, int]:
    index: dict[int, int] = {}
    pos = 0
    for i, ch in enumerate(text):
        index[pos] = i
        pos += 2 if ord(ch) > 0xFFFF else 1
    index[pos] = len(text)
    return index


def finish_text(text: str, entities: list[_Entity], *, auto: bool = True) -> tuple[str, list[JSON]]:
    """Trim surrounding whitespace as Telegram does, add automatic entities and return the
    text with its entities in the Bot API's JSON shape (UTF-16 offsets, sorted)."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    trimmed: list[_Entity] = []
    for e in entities:
        start = max(e.offset - lead, 0)
        end = min(e.offset + e.length - lead, len(stripped))
        if end > start:
            trimmed.append(_Entity(e.type, start, end - start, e.extra))
    if auto:
        trimmed.extend(_auto_entities(stripped, trimmed))
    trimmed.sort(key=lambda e: (e.offset, -e.length))
    result: list[JSON] = []
    for e in trimmed:
        off16 = utf16_len(stripped[: e.offset])
        len16 = utf16_len(stripped[e.offset : e.offset + e.length])
        item: JSON = {"type": e.type, "offset": off16, "length": len16}
        item.update(e.extra)
        result.append(item)
    return stripped, result
