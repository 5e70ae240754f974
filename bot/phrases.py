"""Codebook phrases and danger words: what a message's text means.

Pure: no I/O, no storage. The caller opens the codebook (``storage.codebook.phrases_for``)
and passes its ``Phrase`` objects straight in; anything with a ``text`` and a ``means``
(a ``storage.models.Signal``) will do, and comes back as the same object, so the caller
keeps whatever else it carries (the group, the leg of a ``stage`` phrase).

Matching is on the *folded* form of both sides (see ``fold``): Unicode NFKC, case-folded,
and with every space, punctuation mark, symbol and invisible character taken out. Korean
and Chinese are written without spaces between words, and relatives paste, retype and
re-punctuate what they receive, so a phrase matches wherever its folded form occurs inside
the folded message, word boundaries or not. The flip side: a very short Latin phrase
("ok") occurs inside many ordinary words ("look"), so codebook phrases should be several
words or several Hangul / Han characters long.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from storage.models import Signal

__all__ = [
    "DANGER_WORDS",
    "SIGNAL_STRENGTH",
    "BadMeaning",
    "Phrase",
    "PhraseLike",
    "UnmatchablePhrase",
    "danger_words_in",
    "fold",
    "match_phrases",
    "matchable",
    "parse_means",
    "possible_detention",
    "strongest_phrase",
    "strongest_signal",
]

# --------------------------------------------------------------------------- folding

# Characters that are invisible or (nearly) so but are letters or marks by category, so
# the category test below would keep them: Unicode's Default_Ignorable_Code_Point set
# outside the Cf category. Hangul fillers (U+115F, U+1160, U+3164, U+FFA0) are how people
# make "blank" names and texts; variation selectors (U+FE00..FE0F, U+E0100..E01EF) follow
# emoji ("❤️" is U+2764 U+FE0F) and would otherwise survive the emoji they qualify.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # half-width Hangul filler
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement
)

# Kept: letters (L*), marks (M*) and numbers (N*). Taken out: separators (Z*: spaces, line
# and paragraph separators), punctuation (P*), symbols (S*: currency, maths, emoji,
# modifiers), controls (Cc: tabs, new lines), format characters (Cf: U+200B zero-width
# space, U+200C/U+200D joiners, U+FEFF, U+200E/U+200F and U+202A..U+202E direction marks,
# the soft hyphen), lone surrogates (Cs), private-use characters (Co: carriers' and apps'
# own icons) and code points this Python's Unicode tables do not know yet (Cn: mostly
# emoji newer than them, which must not split a phrase when the older emoji do not).
_KEPT_CLASSES = frozenset("LMN")


def _dropped(char: str) -> bool:
    if unicodedata.category(char)[0] not in _KEPT_CLASSES:
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in _IGNORABLE_RANGES)


class _DropTable(dict[int, str | None]):
    """A ``str.translate`` table that works out each character once, on first sight."""

    def __missing__(self, point: int) -> str | None:
        char = chr(point)
        result = None if _dropped(char) else char
        self[point] = result
        return result


_DROP = _DropTable()
_MAX_ROUNDS = 8


def fold(text: str) -> str:
    """The form a text is matched in: NFKC, case-folded, nothing but letters, marks, digits.

    ``"The tea, is  WARM!"``, ``"thetea is warm"`` and the same words in full-width letters
    with ideographic spaces all fold to ``"theteaiswarm"``; half-width katakana become
    full-width; Hangul jamo typed one by one (ㄱ ㅏ, or half-width) compose to syllables (가);
    zero-width characters and direction marks vanish. ``fold(fold(t)) == fold(t)``.
    """
    # Case-folding can leave a string that NFKC changes again, and taking characters out
    # can bring a letter and a combining mark together that NFKC then composes, so the
    # steps repeat until a round changes nothing (a second round almost never does).
    current = text
    for _ in range(_MAX_ROUNDS):
        folded = unicodedata.normalize(
            "NFKC", unicodedata.normalize("NFKC", current).casefold().translate(_DROP)
        )
        if folded == current:
            return folded
        current = folded
    return current


# --------------------------------------------------------------------------- codebook phrases


class PhraseLike(Protocol):
    """Anything with a phrase and its meaning: ``storage.codebook.Phrase`` and ``Phrase``."""

    @property
    def text(self) -> str: ...

    @property
    def means(self) -> Signal: ...


P = TypeVar("P", bound=PhraseLike)


class BadMeaning(ValueError):
    pass


class UnmatchablePhrase(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Phrase:
    """A phrase and what it signals; ``stage`` names the leg of a ``Signal.STAGE`` phrase."""

    text: str
    means: Signal
    stage: str | None = None

    def __post_init__(self) -> None:
        if self.stage is not None and self.means is not Signal.STAGE:
            raise BadMeaning("only a stage phrase names a stage")

    @classmethod
    def of(cls, text: str, means: str) -> Phrase:
        """``Phrase.of("the tea is warm", "checkin")``, ``Phrase.of("...", "stage:Kunming")``."""
        signal, stage = parse_means(means)
        return cls(text, signal, stage)


_MEANS = {
    "checkin": Signal.CHECKIN,
    "duress": Signal.DURESS,
    "detained": Signal.DETAINED,
    "safe": Signal.SAFE,
}


def parse_means(spec: str) -> tuple[Signal, str | None]:
    """``"checkin"|"duress"|"detained"|"safe"`` or ``"stage:NAME"`` as (signal, stage name)."""
    word, colon, name = spec.strip().partition(":")
    word = word.strip().casefold()
    if word == "stage":
        stage = " ".join(unicodedata.normalize("NFKC", name).split())
        if not colon or not stage:
            raise BadMeaning("a stage phrase names its stage: stage:NAME")
        return Signal.STAGE, stage
    if colon or word not in _MEANS:
        raise BadMeaning(
            f"{spec!r} is not a meaning; use checkin, duress, detained, safe or stage:NAME"
        )
    return _MEANS[word], None


def matchable(text: str) -> str:
    """The folded phrase, or ``UnmatchablePhrase`` when nothing is left of it to match.

    A phrase of nothing but spaces, punctuation, symbols or emoji folds to ``""``; it would
    occur in every message, so ``match_phrases`` never matches it and a codebook should
    refuse it when it is added.
    """
    folded = fold(text)
    if not folded:
        raise UnmatchablePhrase(
            "this phrase has no letters or digits (spaces, punctuation, symbols and emoji "
            "are ignored when matching), so it can never be matched"
        )
    return folded


def match_phrases(text: str, phrases: Iterable[P]) -> list[P]:
    """Every phrase whose folded form is non-empty and occurs in the folded text, in order."""
    haystack = fold(text)
    found: list[P] = []
    for phrase in phrases:
        needle = fold(phrase.text)
        if needle and needle in haystack:
            found.append(phrase)
    return found


# Which meaning wins when one message carries several. Duress first: a forced "all is
# well" is exactly a normal check-in with the duress phrase slipped in, so once the duress
# phrase is there nothing else in that message can be believed, and above all it must not
# count as a check-in (a duress phrase never clears anything). Detained next: a report of
# detention is an alarm, and a reassuring phrase beside it must not mask it; a false alarm
# costs an activist an acknowledgement, a masked one costs the hours in which help can
# still reach people. Safe above stage and check-in: arrival is the most specific good
# news and includes the other two. Stage above check-in: a stage reached is a check-in
# that also says where.
SIGNAL_STRENGTH: dict[Signal, int] = {
    Signal.DURESS: 4,
    Signal.DETAINED: 3,
    Signal.SAFE: 2,
    Signal.STAGE: 1,
    Signal.CHECKIN: 0,
}


def strongest_phrase(matches: Iterable[P]) -> P | None:
    """The match whose meaning wins (see ``SIGNAL_STRENGTH``); the first of equals."""
    best: P | None = None
    for phrase in matches:
        if best is None or SIGNAL_STRENGTH[phrase.means] > SIGNAL_STRENGTH[best.means]:
            best = phrase
    return best


def strongest_signal(matches: Iterable[PhraseLike]) -> Signal | None:
    """What a message with these matches means: duress > detained > safe > stage > checkin."""
    best = strongest_phrase(matches)
    return None if best is None else best.means


# --------------------------------------------------------------------------- danger words

# Words relatives write when people have been caught, as they write them: Korean verb
# stems cover their endings (잡혔 in 잡혔어요, 잡혔대, 잡혔다고). These only mark a message
# "possible detention" for people to look at; they never flip a group, so recall matters
# more than precision. Known false positives, accepted for that reason: Korean 잡혔 / 잡혀
# also say a date or a meeting "got fixed" (약속이 잡혔어), 단속 is everyday news about
# traffic checks; Chinese 抓了 also means "grabbed". Left out because they misfire far more
# than they help: single Han characters (抓 is in 抓紧 "hurry", 捕 alone), Korean 걸렸
# ("caught" a cold), English "taken" / "held" / "picked up". Substrings cover longer forms
# (arrest → arrested, 被抓 → 被抓了), but a few are listed anyway for readability.
DANGER_WORDS: dict[str, tuple[str, ...]] = {
    "ko": (
        "잡혔",
        "잡혀",
        "잡힌",
        "붙잡",
        "붙들렸",
        "끌려갔",
        "체포",
        "연행",
        "구금",
        "구속",
        "수감",
        "단속",
        "공안",
        "경찰",
        "보위부",
        "변방대",
        "국경경비",
        "북송",
        "송환",
    ),
    "zh": (
        "被抓",
        "抓了",
        "抓走",
        "被捕",
        "逮捕",
        "拘留",
        "扣押",
        "关押",
        "看守所",
        "派出所",
        "公安",
        "警察",
        "便衣",
        "边防",
        "邊防",
        "遣返",
        "遣送",
        "出事了",
    ),
    "en": (
        "caught",
        "arrested",
        "arrest",
        "police",
        "detained",
        "detention",
        "custody",
        "jailed",
        "prison",
        "captured",
        "repatriated",
        "repatriation",
        "deported",
        "sent back",
        "border guard",
    ),
}

_DANGER_FOLDED: tuple[tuple[str, str], ...] = tuple(
    (word, fold(word)) for words in DANGER_WORDS.values() for word in words
)


def danger_words_in(text: str) -> list[str]:
    """The danger words (as listed in ``DANGER_WORDS``) whose folded form is in the text."""
    haystack = fold(text)
    return [word for word, folded in _DANGER_FOLDED if folded in haystack]


def possible_detention(text: str) -> bool:
    """True when the text holds a danger word: a mark for people to look, never a flip."""
    haystack = fold(text)
    return any(folded in haystack for _, folded in _DANGER_FOLDED)
