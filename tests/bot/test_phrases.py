import unicodedata
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.phrases import (
    DANGER_WORDS,
    SIGNAL_STRENGTH,
    BadMeaning,
    Phrase,
    UnmatchablePhrase,
    danger_words_in,
    fold,
    match_phrases,
    matchable,
    parse_means,
    possible_detention,
    strongest_phrase,
    strongest_signal,
)
from storage import codebook
from storage.models import Signal

ZWSP = "\u200b"  # zero-width space
ZWJ = "\u200d"  # zero-width joiner
BOM = "\ufeff"  # zero-width no-break space
LRM = "\u200e"  # left-to-right mark
RLM = "\u200f"  # right-to-left mark
RLO = "\u202e"  # right-to-left override
SHY = "\u00ad"  # soft hyphen
IDEOGRAPHIC_SPACE = "\u3000"


def wide(text: str) -> str:
    """The full-width form of ASCII text, as East Asian keyboards type it."""
    return "".join(
        IDEOGRAPHIC_SPACE if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c
        for c in text
    )


# --------------------------------------------------------------------------- fold


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("The tea, is  WARM!", "theteaiswarm"),
        ("thetea is warm", "theteaiswarm"),
        (wide("THE TEA IS WARM"), "theteaiswarm"),
        ("the\ttea\nis\r\nwarm", "theteaiswarm"),
        ("«the» tea—is…warm?!", "theteaiswarm"),
        (f"the{ZWSP}tea{ZWJ}is{BOM}warm", "theteaiswarm"),
        (f"{RLM}the tea{LRM} is {RLO}warm", "theteaiswarm"),
        (f"wa{SHY}rm", "warm"),
        ("PINE-7", "pine7"),
        (wide("PINE-7"), "pine7"),
        ("오늘 날씨가 맑아요.", "오늘날씨가맑아요"),
        ("오늘\u3000날씨가，맑아요！", "오늘날씨가맑아요"),
        ("茶，是热的。", "茶是热的"),
        ("「茶」 是 热 的 ！", "茶是热的"),
        ("\uff8a\uff9f\uff72\uff9d", "\u30d1\u30a4\u30f3"),  # half-width katakana パイン
        ("\uffa1\uffc2", "가"),  # half-width Hangul jamo ﾡ ￂ compose to a syllable
        ("\u3131\u314f", "가"),  # so do compatibility jamo ㄱ ㅏ
        ("\u1100\u1161", "가"),  # conjoining jamo compose to a syllable
        ("안전 🙂 도착 ❤️", "안전도착"),  # emoji and their variation selectors
        ("¥1380 / $20", "138020"),
        ("Straße", "strasse"),
        (f"e{ZWSP}\u0301", "\u00e9"),  # a dropped character between letter and accent
        ("", ""),
        ("  ,.!?  ", ""),
    ],
)
def test_fold_reduces_text_to_case_folded_letters_and_digits(text: str, folded: str) -> None:
    assert fold(text) == folded


ANY_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()),
    max_size=40,
)


@given(ANY_TEXT)
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(ANY_TEXT)
def test_fold_leaves_only_letters_marks_and_digits(text: str) -> None:
    assert all(unicodedata.category(c)[0] in "LMN" for c in fold(text))


# --------------------------------------------------------------------------- matching

TEA_CHECKIN = Phrase("the tea is warm", Signal.CHECKIN)
TEA_DURESS = Phrase("the kettle is broken", Signal.DURESS)
KO_CHECKIN = Phrase("오늘 날씨가 맑아요", Signal.CHECKIN)
KO_DURESS = Phrase("감자를 심었어요", Signal.DURESS)
ZH_CHECKIN = Phrase("茶是热的", Signal.CHECKIN)
ZH_DETAINED = Phrase("水壶坏了", Signal.DETAINED)
ZH_STAGE = Phrase("到了春城", Signal.STAGE, stage="Kunming")
SAFE = Phrase("PINE-7 home", Signal.SAFE)
CODEBOOK = (TEA_CHECKIN, TEA_DURESS, KO_CHECKIN, KO_DURESS, ZH_CHECKIN, ZH_DETAINED, ZH_STAGE, SAFE)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("the tea is warm", [TEA_CHECKIN]),
        ("Hi auntie — the TEA is warm... see you soon", [TEA_CHECKIN]),
        ("hi auntie thetea iswarm seeyou", [TEA_CHECKIN]),
        (wide("the tea is warm, love"), [TEA_CHECKIN]),
        (f"the{ZWSP} tea{RLM} is{LRM} warm", [TEA_CHECKIN]),
        ("엄마, 오늘날씨가 맑아요!! 밥 잘 먹고 있어", [KO_CHECKIN]),
        ("엄마오늘날씨가맑아요밥잘먹고있어", [KO_CHECKIN]),
        (f"오늘{IDEOGRAPHIC_SPACE}날씨가{ZWSP}맑아요", [KO_CHECKIN]),
        ("어제 감자를 심었어요. 다들 잘 있어요", [KO_DURESS]),
        ("妈妈：茶，是热的。我们都好", [ZH_CHECKIN]),
        ("我们都好茶是热的明天再说", [ZH_CHECKIN]),
        ("我们 到了 春城 ！", [ZH_STAGE]),
        ("昨天水壶坏了", [ZH_DETAINED]),
        (wide("pine 7 HOME"), [SAFE]),
        ("the tea is warm 茶是热的", [TEA_CHECKIN, ZH_CHECKIN]),
        ("the tea is", []),
        ("the coffee is warm", []),
        ("오늘 날씨가 흐려요", []),
        ("茶是冷的", []),
        ("", []),
    ],
)
def test_match_phrases_finds_each_phrase_inside_the_message(
    message: str, expected: list[Phrase]
) -> None:
    assert match_phrases(message, CODEBOOK) == expected


@pytest.mark.parametrize("empty", ["", "   ", "!!!", "…", ZWSP + RLM + BOM, "🙂🙂", "-- // --"])
def test_a_phrase_with_nothing_to_match_never_matches(empty: str) -> None:
    phrase = Phrase(empty, Signal.DURESS)
    assert match_phrases("anything at all, 무엇이든, 什么都行", [phrase]) == []
    assert match_phrases(empty, [phrase]) == []
    with pytest.raises(UnmatchablePhrase):
        matchable(empty)


def test_matchable_gives_the_folded_phrase() -> None:
    assert matchable(" The tea, is warm! ") == "theteaiswarm"


def test_traditional_and_simplified_han_are_different_phrases() -> None:
    # NFKC does not map between the scripts: a phrase is matched in the script it was
    # agreed in, so a codebook that expects both needs both.
    assert match_phrases("邊防", [Phrase("边防", Signal.DETAINED)]) == []


def test_storage_codebook_phrases_go_straight_in_and_come_back_unchanged() -> None:
    leg = uuid.uuid4()
    checkin = codebook.Phrase(uuid.uuid4(), uuid.uuid4(), "茶是热的", Signal.CHECKIN, None)
    stage = codebook.Phrase(uuid.uuid4(), None, "到了春城", Signal.STAGE, leg)
    matches = match_phrases("茶是热的，到了春城", [checkin, stage])
    assert matches == [checkin, stage]
    strongest = strongest_phrase(matches)
    assert strongest is stage
    assert strongest.leg_id == leg


# --------------------------------------------------------------------------- which meaning wins


@pytest.mark.parametrize(
    ("means", "expected"),
    [
        ([], None),
        ([Signal.CHECKIN], Signal.CHECKIN),
        ([Signal.CHECKIN, Signal.DURESS], Signal.DURESS),
        ([Signal.DURESS, Signal.CHECKIN], Signal.DURESS),
        ([Signal.SAFE, Signal.DURESS], Signal.DURESS),
        ([Signal.DETAINED, Signal.DURESS], Signal.DURESS),
        ([Signal.CHECKIN, Signal.DETAINED], Signal.DETAINED),
        ([Signal.SAFE, Signal.DETAINED], Signal.DETAINED),
        ([Signal.CHECKIN, Signal.SAFE], Signal.SAFE),
        ([Signal.STAGE, Signal.SAFE], Signal.SAFE),
        ([Signal.CHECKIN, Signal.STAGE], Signal.STAGE),
        ([Signal.CHECKIN, Signal.CHECKIN], Signal.CHECKIN),
    ],
)
def test_strongest_signal_orders_duress_detained_safe_stage_checkin(
    means: list[Signal], expected: Signal | None
) -> None:
    phrases = [Phrase(f"phrase {i}", m) for i, m in enumerate(means)]
    assert strongest_signal(phrases) == expected


@pytest.mark.parametrize(
    "message",
    [
        "the tea is warm and the kettle is broken",
        "the kettle is broken. the tea is warm!",
        "오늘 날씨가 맑아요. 감자를 심었어요",
        "감자를심었어요오늘날씨가맑아요",
    ],
)
def test_a_duress_phrase_wins_over_a_checkin_phrase_in_the_same_message(message: str) -> None:
    matches = match_phrases(message, CODEBOOK)
    assert Signal.CHECKIN in {m.means for m in matches}
    assert strongest_signal(matches) is Signal.DURESS


def test_strongest_phrase_keeps_the_first_of_equals() -> None:
    first, second = Phrase("a", Signal.STAGE, "A"), Phrase("b", Signal.STAGE, "B")
    assert strongest_phrase([first, second]) is first


def test_every_signal_has_a_strength() -> None:
    assert set(SIGNAL_STRENGTH) == set(Signal)


# --------------------------------------------------------------------------- meanings


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("checkin", (Signal.CHECKIN, None)),
        ("DURESS", (Signal.DURESS, None)),
        (" detained ", (Signal.DETAINED, None)),
        ("safe", (Signal.SAFE, None)),
        ("stage:Kunming", (Signal.STAGE, "Kunming")),
        ("stage: Laos  border ", (Signal.STAGE, "Laos border")),
        ("stage:쿤밍", (Signal.STAGE, "쿤밍")),
    ],
)
def test_parse_means_reads_each_meaning(spec: str, expected: tuple[Signal, str | None]) -> None:
    assert parse_means(spec) == expected


@pytest.mark.parametrize("spec", ["", "stage", "stage:", "stage:  ", "checkin:x", "fine", "ok"])
def test_parse_means_refuses_anything_else(spec: str) -> None:
    with pytest.raises(BadMeaning):
        parse_means(spec)


def test_phrase_of_reads_the_meaning() -> None:
    assert Phrase.of("到了春城", "stage:Kunming") == Phrase("到了春城", Signal.STAGE, "Kunming")


def test_only_a_stage_phrase_names_a_stage() -> None:
    with pytest.raises(BadMeaning):
        Phrase("the tea is warm", Signal.CHECKIN, stage="Kunming")


# --------------------------------------------------------------------------- danger words


@pytest.mark.parametrize(
    "message",
    [
        "어제 국경에서 잡혔대요",
        "다들 붙잡혀 갔어요. 어떡해요",
        "오빠가 공안한테 끌려갔어",
        "경찰이 왔어요",
        "북송될까봐 무서워요",
        f"경{ZWSP}찰이 왔어",
        "他们被抓了",
        "昨天在边境被 抓 了，怎么办",
        "听说要遣返",
        "公安来了",
        "被边防拘留",
        "They were CAUGHT near the border",
        "he got arrested yesterday",
        wide("POLICE came"),
        f"{RLM}the police{LRM} took them",
        "they are in detention in Mengla",
        "the border guards took them",
        "the border-guard stopped the bus",
        "she will be sent back",
        "deported to the north",
    ],
)
def test_possible_detention_flags_what_relatives_write(message: str) -> None:
    assert possible_detention(message)
    assert danger_words_in(message)


@pytest.mark.parametrize(
    "message",
    [
        "오늘 날씨가 맑아요. 밥 잘 먹고 있어",
        "감기 걸렸어",
        "안전하게 도착했어요",
        "抓紧时间",
        "我们都好，茶是热的",
        "all fine, the tea is warm",
        "politely waiting at the station",
        "",
    ],
)
def test_possible_detention_leaves_ordinary_messages_alone(message: str) -> None:
    assert not possible_detention(message)
    assert danger_words_in(message) == []


def test_danger_words_name_which_words_were_found() -> None:
    assert danger_words_in("경찰이 왔고 다들 잡혔어") == ["잡혔", "경찰"]


@pytest.mark.parametrize(
    "word", [w for words in DANGER_WORDS.values() for w in words], ids=lambda w: w
)
def test_danger_words_are_never_a_single_character(word: str) -> None:
    assert len(fold(word)) >= 2


def test_danger_words_cover_korean_chinese_and_english() -> None:
    assert set(DANGER_WORDS) == {"ko", "zh", "en"}


# --------------------------------------------------------------------------- properties

LETTERS = st.characters(categories=("Lu", "Ll", "Lo", "Nd")).filter(
    # Conjoining Hangul jamo compose with their neighbours (ᄀ + ᅡ is 가): a phrase that
    # starts with one is not "contained" in a text whose last jamo it would join.
    lambda c: not 0x1100 <= ord(c) <= 0x11FF
)
SEPARATORS = st.one_of(
    st.sampled_from([" ", "\t", "\n", IDEOGRAPHIC_SPACE, ",", "。", "！", "-", "…", "🙂"]),
    st.sampled_from([ZWSP, ZWJ, BOM, LRM, RLM, RLO, SHY, "\u2066", "\u2069", "\ufe0f"]),
    st.characters(categories=("Zs", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Cf")).filter(
        lambda c: fold(c) == ""
    ),
)
SURROUNDING = st.text(
    alphabet=st.one_of(st.sampled_from("abc 가나다 你好。,!"), SEPARATORS), max_size=12
)


@given(
    phrase=st.text(alphabet=LETTERS, min_size=1, max_size=8),
    gaps=st.lists(st.text(alphabet=SEPARATORS, max_size=3), min_size=8, max_size=8),
    before=SURROUNDING,
    after=SURROUNDING,
)
def test_a_phrase_matches_a_text_holding_it_with_anything_between_its_letters(
    phrase: str, gaps: list[str], before: str, after: str
) -> None:
    spread = "".join(c + gap for c, gap in zip(phrase, gaps, strict=False))
    text = f"{before} {spread} {after}"
    agreed = Phrase(phrase, Signal.CHECKIN)
    assert match_phrases(text, [agreed]) == [agreed]


@given(
    empty=st.text(alphabet=SEPARATORS, max_size=6),
    text=ANY_TEXT,
)
def test_a_phrase_of_only_separators_never_matches(empty: str, text: str) -> None:
    assert match_phrases(text, [Phrase(empty, Signal.DURESS)]) == []
