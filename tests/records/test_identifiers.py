"""Tests for records.identifiers: plain functions, no Django, no database."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from time_machine import TimeMachineFixture

from records import identifiers
from records.identifiers import (
    CREDIT_CODE_ALPHABET,
    ORGANISATION,
    PERSON,
    InvalidIdentifier,
    credit_code_check_character,
    make_credit_code,
    make_resident_id,
    mask_identifier,
    normalise_identifier,
    resident_id_check_character,
    validate_credit_code,
    validate_identifier,
    validate_resident_id,
)

Validator = Callable[[str], str]

# The published weight tables, written out independently of the implementation.
RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

DIGITS = "0123456789"
# Replacement characters for the substitution tests: digits and X, the whole
# credit-code alphabet, the letters the alphabet leaves out, lowercase letters,
# punctuation and whitespace, full-width forms (U+FF10 "0", U+FF38 "X", U+FF21
# "A"), superscript two, Arabic-Indic three (not mapped to ASCII by NFKC), an
# ideographic space and a CJK character.
REPLACEMENTS = (
    DIGITS
    + CREDIT_CODE_ALPHABET
    + "IOSVZ"
    + "xyaimoz"
    + " -./_*+#\t"
    + "\uff10\uff38\uff21\u00b2\u0663\u3000\u4e00"
)

CREDIT_CHARACTERS_REASON = "may only contain digits and capital letters other than I, O, S, V and Z"

rngs = st.randoms(use_true_random=False)


def full_width(value: str) -> str:
    """The full-width form of printable ASCII (U+FF01..U+FF5E)."""
    return "".join(chr(ord(char) + 0xFEE0) for char in value)


def local_today() -> date:
    """The local date, as the validator reads it (date.today() semantics)."""
    return date(*time.localtime()[:3])


def resident_id(first14: str, sequence: str = "123") -> str:
    """A resident ID with the given division code + birth date and a correct check digit."""
    first17 = first14 + sequence
    return first17 + resident_id_check_character(first17)


def credit_code(first17: str) -> str:
    """A credit code with a correct check character (first17 must use the alphabet)."""
    return first17 + credit_code_check_character(first17)


def reason_of(validate: Validator, raw: str) -> str:
    with pytest.raises(InvalidIdentifier) as excinfo:
        validate(raw)
    return excinfo.value.reason


def accepted(validate: Validator, candidates: Iterator[str]) -> list[str]:
    """The candidates that ``validate`` does not reject."""
    passed = []
    for candidate in candidates:
        try:
            validate(candidate)
        except InvalidIdentifier:
            continue
        passed.append(candidate)
    return passed


def substitutions(value: str) -> list[str]:
    """Every one-character substitution of ``value`` that normalises differently."""
    mutants = []
    for position in range(len(value)):
        for replacement in REPLACEMENTS:
            mutant = value[:position] + replacement + value[position + 1 :]
            if normalise_identifier(mutant) != value:
                mutants.append(mutant)
    return mutants


def transpositions(value: str) -> list[str]:
    """Every swap of two adjacent, different characters of ``value``."""
    return [
        value[:i] + value[i + 1] + value[i] + value[i + 2 :]
        for i in range(len(value) - 1)
        if value[i] != value[i + 1]
    ]


# --- valid identifiers --------------------------------------------------------


@given(rngs)
def test_generated_resident_ids_validate_and_round_trip(rng: random.Random) -> None:
    value = make_resident_id(rng)

    assert validate_resident_id(value) == value
    assert validate_identifier(PERSON, value) == value
    assert normalise_identifier(value) == value
    assert len(value) == 18
    assert value[0] in "123456"
    assert "19400101" <= value[6:14] <= "20051231"


@given(rngs, st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)))
def test_make_resident_id_uses_the_given_birth_date(rng: random.Random, birth: date) -> None:
    value = make_resident_id(rng, birth=birth)

    assert value[6:14] == birth.strftime("%Y%m%d")
    assert validate_resident_id(value, today=date(2024, 12, 31)) == value


@given(rngs)
def test_generated_credit_codes_validate_and_round_trip(rng: random.Random) -> None:
    value = make_credit_code(rng)

    assert validate_credit_code(value) == value
    assert validate_identifier(ORGANISATION, value) == value
    assert normalise_identifier(value) == value
    assert len(value) == 18
    assert set(value) <= set(CREDIT_CODE_ALPHABET)


@given(st.text(alphabet=DIGITS, min_size=17, max_size=17))
def test_resident_check_character_follows_the_weight_table(first17: str) -> None:
    weighted = sum(
        int(char) * weight for char, weight in zip(first17, RESIDENT_WEIGHTS, strict=True)
    )

    assert resident_id_check_character(first17) == "10X98765432"[weighted % 11]


@given(st.text(alphabet=CREDIT_CODE_ALPHABET, min_size=17, max_size=17))
def test_credit_check_character_follows_the_weight_table(first17: str) -> None:
    weighted = sum(
        CREDIT_CODE_ALPHABET.index(char) * weight
        for char, weight in zip(first17, CREDIT_WEIGHTS, strict=True)
    )
    check_value = 31 - weighted % 31

    assert credit_code_check_character(first17) == CREDIT_CODE_ALPHABET[check_value % 31]


# --- single-character errors and transpositions -------------------------------


@given(rngs)
def test_every_substitution_in_a_resident_id_is_rejected(rng: random.Random) -> None:
    value = make_resident_id(rng)
    mutants = substitutions(value)

    # At most the character itself, its lowercase and full-width forms are skipped.
    assert len(mutants) >= 18 * (len(REPLACEMENTS) - 3)
    assert accepted(validate_resident_id, iter(mutants)) == []


@given(rngs)
def test_every_substitution_in_a_credit_code_is_rejected(rng: random.Random) -> None:
    value = make_credit_code(rng)
    mutants = substitutions(value)

    assert len(mutants) >= 18 * (len(REPLACEMENTS) - 3)
    assert accepted(validate_credit_code, iter(mutants)) == []


@given(rngs)
def test_every_adjacent_transposition_in_a_resident_id_is_rejected(rng: random.Random) -> None:
    value = make_resident_id(rng)

    assert accepted(validate_resident_id, iter(transpositions(value))) == []


@given(rngs)
def test_every_adjacent_transposition_in_a_credit_code_is_rejected(rng: random.Random) -> None:
    value = make_credit_code(rng)

    assert accepted(validate_credit_code, iter(transpositions(value))) == []


@given(rngs)
def test_every_wrong_resident_check_digit_gives_the_check_reason(rng: random.Random) -> None:
    value = make_resident_id(rng)

    reasons = {
        reason_of(validate_resident_id, value[:17] + check)
        for check in "0123456789X"
        if check != value[17]
    }

    assert reasons == {"check digit does not match"}


@given(rngs)
def test_every_wrong_credit_check_character_gives_the_check_reason(rng: random.Random) -> None:
    value = make_credit_code(rng)

    reasons = {
        reason_of(validate_credit_code, value[:17] + check)
        for check in CREDIT_CODE_ALPHABET
        if check != value[17]
    }

    assert reasons == {"check character does not match"}


# --- normalisation --------------------------------------------------------------


@given(rngs)
def test_full_width_and_lowercase_resident_ids_are_accepted(rng: random.Random) -> None:
    value = make_resident_id(rng)

    for form in (
        value.lower(),
        full_width(value),
        full_width(value.lower()),
        f"  {value.lower()}\n",
        f"\u3000{full_width(value)}\u3000",
    ):
        assert normalise_identifier(form) == value
        assert validate_resident_id(form) == value
        assert validate_identifier(PERSON, form) == value


@given(rngs)
def test_full_width_and_lowercase_credit_codes_are_accepted(rng: random.Random) -> None:
    value = make_credit_code(rng)

    for form in (
        value.lower(),
        full_width(value),
        full_width(value.lower()),
        f"\t{value.lower()} ",
        f"\u3000{full_width(value)}\u3000",
    ):
        assert normalise_identifier(form) == value
        assert validate_credit_code(form) == value
        assert validate_identifier(ORGANISATION, form) == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\uff13\uff13\uff10\uff11", "3301"),
        (" 11010519491231002x\n", "11010519491231002X"),
        ("\u3000\uff58ab\u3000", "XAB"),
        ("91350100m000100y43", "91350100M000100Y43"),
        ("", ""),
    ],
)
def test_normalise_identifier(raw: str, expected: str) -> None:
    assert normalise_identifier(raw) == expected


# --- resident identity number: known examples -----------------------------------


def test_known_resident_id_is_valid() -> None:
    assert validate_resident_id("11010519491231002X") == "11010519491231002X"
    assert validate_resident_id("11010519491231002x") == "11010519491231002X"
    assert resident_id_check_character("11010519491231002") == "X"


def test_known_resident_id_with_wrong_check_digit_is_rejected() -> None:
    assert reason_of(validate_resident_id, "110105194912310021") == "check digit does not match"


@pytest.mark.parametrize(
    "birth",
    ["20230230", "20230229", "19000229", "20230431", "20231301", "20230001", "20230100"],
)
def test_resident_id_with_impossible_birth_date_is_rejected(birth: str) -> None:
    value = resident_id("110105" + birth)

    assert reason_of(validate_resident_id, value) == "birth date is not a valid date"


@pytest.mark.parametrize("birth", ["20000229", "20240229", "19000101", "19991231"])
def test_resident_id_with_leap_day_or_boundary_birth_date_is_valid(birth: str) -> None:
    value = resident_id("110105" + birth)

    assert validate_resident_id(value, today=date(2024, 12, 31)) == value


def test_resident_id_born_before_1900_is_rejected() -> None:
    value = resident_id("11010518991231")

    assert reason_of(validate_resident_id, value) == "birth date is before 1900"


def test_resident_id_born_after_today_is_rejected() -> None:
    today = date(2024, 1, 1)
    born_today = resident_id("11010520240101")
    born_tomorrow = resident_id("11010520240102")

    assert validate_resident_id(born_today, today=today) == born_today
    with pytest.raises(InvalidIdentifier) as excinfo:
        validate_resident_id(born_tomorrow, today=today)
    assert excinfo.value.reason == "birth date is in the future"


def test_resident_id_future_check_defaults_to_the_local_date(
    time_machine: TimeMachineFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The validator remembers a day known to be past, as real time only moves forward; this
    # test travels, possibly backwards from the suite's date, so it starts without that memory.
    monkeypatch.setattr(identifiers, "_known_past_day", "")
    # Late on 31 December in Shanghai: the local date, not UTC's, is "today".
    time_machine.move_to(
        datetime(2026, 12, 31, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai")), tick=False
    )
    today = local_today()
    assert today == date(2026, 12, 31)
    born_today = resident_id("110105" + today.strftime("%Y%m%d"))
    born_later = resident_id("110105" + (today + timedelta(days=2)).strftime("%Y%m%d"))

    assert validate_resident_id(born_today) == born_today
    assert reason_of(validate_resident_id, born_later) == "birth date is in the future"
    assert reason_of(validate_resident_id, resident_id("11010529990101")) == (
        "birth date is in the future"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "must not be empty"),
        (" \u3000\n", "must not be empty"),
        ("11010519491231002", "must be 18 characters"),
        ("11010519491231002X0", "must be 18 characters"),
        ("1101051949123100XX", "must be 17 digits followed by a digit or X"),
        ("A1010519491231002X", "must be 17 digits followed by a digit or X"),
        ("11010519491231002Y", "must be 17 digits followed by a digit or X"),
        ("110105-9491231002X", "must be 17 digits followed by a digit or X"),
        ("110105194912\u06630002X", "must be 17 digits followed by a digit or X"),
        ("91350100M000100Y43", "must be 17 digits followed by a digit or X"),
    ],
)
def test_malformed_resident_id_is_rejected(raw: str, reason: str) -> None:
    assert reason_of(validate_resident_id, raw) == reason


def test_resident_id_check_character_requires_17_digits() -> None:
    for bad in ("1101051949123100", "110105194912310020", "1101051949123100X", "\uff11" * 17):
        with pytest.raises(ValueError, match=r"^first17 must be exactly 17 ASCII digits$"):
            resident_id_check_character(bad)


# --- unified social credit code: known examples ---------------------------------


def test_known_credit_code_is_valid() -> None:
    assert validate_credit_code("91350100M000100Y43") == "91350100M000100Y43"
    assert credit_code_check_character("91350100M000100Y4") == "3"


def test_known_credit_code_with_wrong_check_character_is_rejected() -> None:
    assert reason_of(validate_credit_code, "91350100M000100Y44") == (
        "check character does not match"
    )


@pytest.mark.parametrize(
    ("first17", "reason"),
    [
        ("H1350100M000100Y4", "registration authority code (character 1) is not valid"),
        ("01350100M000100Y4", "registration authority code (character 1) is not valid"),
        ("90350100M000100Y4", "organisation type code (character 2) is not valid"),
        ("91A50100M000100Y4", "administrative division code (characters 3 to 8) must be digits"),
        ("913501Y0M000100Y4", "administrative division code (characters 3 to 8) must be digits"),
    ],
)
def test_credit_code_structure_is_checked(first17: str, reason: str) -> None:
    assert reason_of(validate_credit_code, credit_code(first17)) == reason


@pytest.mark.parametrize(
    "first17", ["Y1350100M000100Y4", "G2350100M000100Y4", "1Y350100M000100Y4", "N2350100M000100Y4"]
)
def test_credit_code_structure_accepts_allowed_codes(first17: str) -> None:
    value = credit_code(first17)

    assert validate_credit_code(value) == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "must not be empty"),
        ("91350100M000100Y4", "must be 18 characters"),
        ("91350100M000100Y433", "must be 18 characters"),
        *((f"91350100M000100{char}43", CREDIT_CHARACTERS_REASON) for char in "IOSVZ-*\u4e00"),
    ],
)
def test_malformed_credit_code_is_rejected(raw: str, reason: str) -> None:
    assert reason_of(validate_credit_code, raw) == reason


def test_credit_code_check_character_requires_17_alphabet_characters() -> None:
    message = r"^first17 must be exactly 17 characters of the credit code alphabet$"
    for bad in (
        "91350100M000100Y",
        "91350100M000100Y43",
        "91350100I000100Y4",
        "9135\uff10100M000100Y4",
    ):
        with pytest.raises(ValueError, match=message):
            credit_code_check_character(bad)


# --- dispatch and the exception ---------------------------------------------------


def test_validate_identifier_dispatches_on_kind() -> None:
    assert validate_identifier(PERSON, "11010519491231002X") == "11010519491231002X"
    assert validate_identifier(ORGANISATION, "91350100M000100Y43") == "91350100M000100Y43"
    assert reason_of(lambda raw: validate_identifier(PERSON, raw), "91350100M000100Y43") == (
        "must be 17 digits followed by a digit or X"
    )
    assert reason_of(lambda raw: validate_identifier(ORGANISATION, raw), "11010519491231002X") == (
        "check character does not match"
    )


@pytest.mark.parametrize("kind", ["company", "PERSON", "", "resident"])
def test_validate_identifier_rejects_unknown_kind(kind: str) -> None:
    assert reason_of(lambda raw: validate_identifier(kind, raw), "11010519491231002X") == (
        "unknown identifier kind"
    )


def test_invalid_identifier_carries_only_the_reason() -> None:
    with pytest.raises(InvalidIdentifier) as excinfo:
        validate_resident_id("110105194912310021")

    error = excinfo.value
    assert isinstance(error, ValueError)
    assert error.reason == "check digit does not match"
    assert error.args == ("check digit does not match",)
    assert str(error) == "check digit does not match"


# --- masking ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("330106199001011234", "3301**********1234"),
        ("11010519491231002X", "1101**********002X"),
        ("91350100M000100Y43", "9135**********0Y43"),
        ("3301061990010112345", "33***************45"),
        ("33010619900101123", "33*************23"),
        ("1234567", "12***67"),
        ("123456", "12**56"),
        ("12345", "*****"),
        ("1", "*"),
        ("", ""),
    ],
)
def test_mask_identifier(value: str, masked: str) -> None:
    assert mask_identifier(value) == masked


@given(rngs)
def test_masked_resident_id_hides_the_middle(rng: random.Random) -> None:
    value = make_resident_id(rng)
    masked = mask_identifier(value)

    assert masked == value[:4] + "*" * 10 + value[14:]
    assert value[4:14] not in masked
    assert value[6:14] not in masked  # the birth date


@given(st.text(alphabet=st.characters(exclude_characters="*")))
def test_mask_never_reveals_more_than_8_characters(value: str) -> None:
    masked = mask_identifier(value)
    revealed = [i for i, char in enumerate(masked) if char != "*"]

    assert len(masked) == len(value)
    assert len(revealed) <= 8
    assert [masked[i] for i in revealed] == [value[i] for i in revealed]
