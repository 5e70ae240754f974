import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.phones import phone_numbers_in

CN = "+8613800138000"
CN2 = "+8613900139000"
KR = "+821012345678"
ZWSP = "\u200b"
RLM = "\u200f"
LRM = "\u200e"


def wide(text: str) -> str:
    """The full-width form of ASCII text, as East Asian keyboards type it."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+86 138 0013 8000", [CN]),
        ("+86-138-0013-8000", [CN]),
        ("13800138000", [CN]),
        ("138 0013 8000", [CN]),
        ("+82 10-1234-5678", [KR]),
        ("+82 (0)10-1234-5678", [KR]),
        ("010-1234-5678", [KR]),
        ("010.1234.5678", [KR]),
        ("01012345678", [KR]),
        ("tel:+82-10-1234-5678", [KR]),
        ("+1 202 555 0143", ["+12025550143"]),
    ],
)
def test_phone_numbers_in_reads_each_way_of_writing_a_number(
    text: str, expected: list[str]
) -> None:
    assert phone_numbers_in(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("발신: +8613800138000 우리 도착", [CN]),
        ("발신:+8613800138000우리도착", [CN]),
        ("[Web발신] 010-1234-5678 엄마 우리 잘 있어", [KR]),
        ("발신번호01012345678", [KR]),
        ("手机13800138000联系我", [CN]),
        ("短信来自：+86 138 0013 8000。我们都好", [CN]),
        ("From: +86 138 0013 8000\nWe are fine", [CN]),
    ],
)
def test_phone_numbers_in_finds_numbers_inside_korean_chinese_and_english_text(
    text: str, expected: list[str]
) -> None:
    assert phone_numbers_in(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (wide("13800138000"), [CN]),
        (wide("+86 138-0013-8000"), [CN]),
        ("발신：" + wide("010-1234-5678"), [KR]),
        (f"138{ZWSP}0013{ZWSP}8000", [CN]),
        (f"{RLM}+86 138 0013 8000{LRM}", [CN]),
        (f"{CN}{ZWSP}13900139000", [CN, CN2]),
    ],
)
def test_phone_numbers_in_reads_full_width_digits_and_invisible_characters(
    text: str, expected: list[str]
) -> None:
    assert phone_numbers_in(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2014-08-12",
        "2014年8月12日",
        "12/08/2014",
        "2014.08.12",
        "2014-08-12 14:30:00",
        "14:30",
        "¥1380",
        wide("¥1380"),
        "1380元",
        "₩13,800",
        "20140812",
        "订单号 20140812123",
        "ID 1234567890",
        "32 people, 11 adults",
        "",
        "no numbers here 여기 없어요 这里没有",
    ],
)
def test_phone_numbers_in_does_not_read_dates_prices_or_ids_as_numbers(text: str) -> None:
    assert phone_numbers_in(text) == []


def test_phone_numbers_in_gives_every_number_once_in_text_order() -> None:
    text = "010-1234-5678 먼저, 그다음 +86 138 0013 8000, 또 13900139000, 다시 13800138000"
    assert phone_numbers_in(text) == [KR, CN, CN2]


def test_phone_numbers_in_keeps_text_order_across_regions() -> None:
    # The Korean number comes first in the text although China is the first region.
    assert phone_numbers_in("010-1234-5678/13800138000") == [KR, CN]


def test_a_number_valid_in_two_regions_is_read_as_the_mobile() -> None:
    # 010 is Beijing's area code and the Korean mobile prefix: a traveller texts from a
    # mobile, so the Korean mobile wins over the Beijing landline, whatever the region order.
    assert phone_numbers_in("010-1234-5678", regions=("CN", "KR")) == [KR]
    assert phone_numbers_in("010-1234-5678", regions=("KR", "CN")) == [KR]


def test_regions_decide_how_a_number_without_country_code_is_read() -> None:
    assert phone_numbers_in("010 6552 9988", regions=("CN",)) == ["+861065529988"]
    assert phone_numbers_in("13800138000", regions=("KR",)) == []
    assert phone_numbers_in("+86 138 0013 8000", regions=("KR",)) == [CN]
    assert phone_numbers_in("+86 138 0013 8000", regions=()) == [CN]


def test_unknown_regions_are_refused() -> None:
    with pytest.raises(ValueError, match="XX"):
        phone_numbers_in("13800138000", regions=("CN", "XX"))


CN_MOBILES = st.builds(lambda n: f"138{n:08d}", st.integers(0, 99_999_999))
GLUE = st.sampled_from(["", " ", "\n", ":", "：", "，", ZWSP, "우리", "我们", "발신 "])


@settings(max_examples=50)
@given(number=CN_MOBILES, before=GLUE, after=GLUE, plus=st.booleans())
def test_a_chinese_mobile_is_found_whatever_text_surrounds_it(
    number: str, before: str, after: str, plus: bool
) -> None:
    written = f"+86 {number}" if plus else number
    e164 = "+86" + number
    assert phonenumbers.is_valid_number(phonenumbers.parse(e164))
    assert phone_numbers_in(f"엄마{before}{written}{after}잘 있어") == [e164]


@settings(max_examples=50)
@given(st.text(max_size=60))
def test_phone_numbers_in_gives_only_distinct_valid_e164_numbers(text: str) -> None:
    found = phone_numbers_in(text)
    assert len(found) == len(set(found))
    for number in found:
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed)
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number


def test_texts_skipped_for_too_few_digits_could_hold_no_valid_number() -> None:
    """The digit count that lets most texts skip the matcher never hides a valid number:
    every example number of every region and type has at least that many digits, read
    nationally in its own region and internationally anywhere."""
    from bot.phones import _fewest_digits

    anywhere = _fewest_digits(())
    checked = 0
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None or not phonenumbers.is_valid_number(number):
                continue
            checked += 1
            national = phonenumbers.national_significant_number(number)
            assert len(national) >= _fewest_digits((region,)), (region, kind)
            assert len(str(number.country_code)) + len(national) >= anywhere, (region, kind)
    assert checked > 1000
    assert phone_numbers_in("check-in 0001 at 12:30") == []


def test_no_valid_number_anywhere_has_fewer_digits_than_the_bound_that_skips_the_library() -> None:
    """Texts with fewer digits than FEWEST_DIGITS_ANYWHERE are answered without loading
    phonenumbers; a library update with a shorter number anywhere must fail here."""
    from bot.phones import FEWEST_DIGITS_ANYWHERE, shortest_national

    assert (
        min(shortest_national(r) for r in phonenumbers.SUPPORTED_REGIONS) == FEWEST_DIGITS_ANYWHERE
    )
