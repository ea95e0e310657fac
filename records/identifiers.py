"""Validation and masking of the identifiers of credit subjects.

Two 18-character identifiers are supported:

* the resident identity number of a natural person (GB 11643-1999), and
* the unified social credit code of an organisation (GB 32100-2015).

Every entry point first normalises its input with :func:`normalise_identifier`
(Unicode NFKC, surrounding whitespace stripped, upper case), so full-width
digits and letters, a lowercase ``x`` check character or lowercase letters in a
credit code are accepted and come back as plain ASCII upper case.

Invalid input raises :class:`InvalidIdentifier`; its ``reason`` attribute is a
short English sentence that can be shown to users.  The rejected value itself is
never put into the exception, so that identifiers do not leak into logs.

This module is pure Python (standard library only, no Django) and sits on the
hot path of bulk imports: the validators avoid regular expressions and per-call
work, and the check characters are computed with a single ``int(..., base)``
conversion each (see the comments at ``_RESIDENT_CHECK`` and ``_CREDIT_BASE34``).
"""

from __future__ import annotations

import random
import time
import unicodedata
from datetime import date

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "ORGANISATION",
    "PERSON",
    "InvalidIdentifier",
    "credit_code_check_character",
    "make_credit_code",
    "make_resident_id",
    "mask_identifier",
    "normalise_identifier",
    "resident_id_check_character",
    "validate_credit_code",
    "validate_identifier",
    "validate_resident_id",
]

PERSON = "person"
ORGANISATION = "organisation"

_IDENTIFIER_LENGTH = 18

# Reasons given to users.  Tests pin these strings; change them together.
_EMPTY = "must not be empty"
_LENGTH = "must be 18 characters"
_UNKNOWN_KIND = "unknown identifier kind"
_RESIDENT_CHARACTERS = "must be 17 digits followed by a digit or X"
_BIRTH_DATE_INVALID = "birth date is not a valid date"
_BIRTH_DATE_TOO_EARLY = "birth date is before 1900"
_BIRTH_DATE_FUTURE = "birth date is in the future"
_RESIDENT_CHECK_MISMATCH = "check digit does not match"
_CREDIT_CHARACTERS = "may only contain digits and capital letters other than I, O, S, V and Z"
_CREDIT_AUTHORITY = "registration authority code (character 1) is not valid"
_CREDIT_TYPE = "organisation type code (character 2) is not valid"
_CREDIT_DIVISION = "administrative division code (characters 3 to 8) must be digits"
_CREDIT_CHECK_MISMATCH = "check character does not match"


class InvalidIdentifier(ValueError):
    """An identifier failed validation; ``reason`` says why, in a short sentence."""

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_identifier(raw: str) -> str:
    """Return ``raw`` in NFKC form, stripped of surrounding whitespace, upper case.

    NFKC maps full-width digits and Latin letters (U+FF10.., U+FF21..) to ASCII;
    ASCII input is already in NFKC form and skips the normalisation step.
    """
    if not raw.isascii():
        raw = unicodedata.normalize("NFKC", raw)
    return raw.strip().upper()


# --- Resident identity number (GB 11643-1999) --------------------------------
#
# Layout: 6-digit administrative division code, 8-digit birth date YYYYMMDD,
# 3-digit sequence code, check character.
#
# The check character follows ISO 7064 MOD 11-2: the first 17 digits are
# weighted 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 and the weighted sum modulo 11
# indexes into "10X98765432".  Those weights are 2**k mod 11 for k = 17 .. 1, so
# the weighted sum is congruent (mod 11) to the 17 digits read as a number in
# base 2, and, because 13 = 2 (mod 11), to twice the digits read in base 13:
#
#     sum(d[i] * w[i]) = 2 * int(first17, 13)   (mod 11)
#
# ``int(first17, 13)`` runs in C, which is several times faster than a Python
# loop over a weight table.  The tests check this against the explicit weights.
_RESIDENT_CHECK = "10X98765432"
_RESIDENT_LAST = frozenset("0123456789X")
_EARLIEST_BIRTH_YEAR = 1900
# Every MMDD that exists in a leap year; 29 February is checked separately.
_MONTH_DAYS = frozenset(
    f"{month:02d}{day:02d}"
    for month, days in enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1)
    for day in range(1, days + 1)
)
# Demo birth dates of make_resident_id, as proleptic Gregorian ordinals.
_DEMO_BIRTH_FIRST = date(1940, 1, 1).toordinal()
_DEMO_BIRTH_LAST = date(2005, 12, 31).toordinal()


def _yyyymmdd(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _local_today() -> str:
    """Today's date in the process's local time zone as YYYYMMDD, like date.today().

    Read through time.localtime(), which is what date.today() does internally.
    """
    now = time.localtime()
    return f"{now.tm_year:04d}{now.tm_mon:02d}{now.tm_mday:02d}"


# A YYYYMMDD string known to be today or earlier.  Birth dates up to it need no
# clock read (which costs about as much as the rest of the validation); a later
# birth date refreshes it.  Dates only move forward, so a stale value can only
# trigger a refresh, never accept a future birth date (unless the system clock
# is set back across midnight while the process runs).
_known_past_day = ""


def _is_after_today(birth: str) -> bool:
    global _known_past_day
    if birth <= _known_past_day:
        return False
    _known_past_day = _local_today()
    return birth > _known_past_day


def resident_id_check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character ("0"-"9" or "X") for 17 digits."""
    if len(first17) != _IDENTIFIER_LENGTH - 1 or not (first17.isascii() and first17.isdigit()):
        raise ValueError("first17 must be exactly 17 ASCII digits")
    return _RESIDENT_CHECK[2 * int(first17, 13) % 11]


def validate_resident_id(raw: str, *, today: date | None = None) -> str:
    """Return the normalised resident identity number or raise InvalidIdentifier.

    The birth date must be a real calendar date, in or after 1900 and not after
    ``today`` (default: the local date, as ``date.today()`` gives it).  The
    division and sequence codes are only checked to be digits.
    """
    value = normalise_identifier(raw)
    if len(value) != _IDENTIFIER_LENGTH:
        raise InvalidIdentifier(_LENGTH if value else _EMPTY)
    first17 = value[:17]
    if not (value.isascii() and first17.isdigit() and value[17] in _RESIDENT_LAST):
        raise InvalidIdentifier(_RESIDENT_CHARACTERS)
    year = int(value[6:10])
    month_day = value[10:14]
    if month_day not in _MONTH_DAYS or (
        month_day == "0229" and (year % 4 != 0 or (year % 100 == 0 and year % 400 != 0))
    ):
        raise InvalidIdentifier(_BIRTH_DATE_INVALID)
    if year < _EARLIEST_BIRTH_YEAR:
        raise InvalidIdentifier(_BIRTH_DATE_TOO_EARLY)
    birth = value[6:14]  # YYYYMMDD strings compare like the dates they spell
    after_today = _is_after_today(birth) if today is None else birth > _yyyymmdd(today)
    if after_today:
        raise InvalidIdentifier(_BIRTH_DATE_FUTURE)
    if _RESIDENT_CHECK[2 * int(first17, 13) % 11] != value[17]:
        raise InvalidIdentifier(_RESIDENT_CHECK_MISMATCH)
    return value


def make_resident_id(rng: random.Random, *, birth: date | None = None) -> str:
    """Return a random resident identity number with a correct check character.

    For demo data and tests.  The division code is 6 random digits starting
    with 1-6; ``birth`` defaults to a random date from 1940-01-01 to 2005-12-31.
    A given ``birth`` is used as is, so the result only validates if that date
    lies between 1900-01-01 and the day of validation.
    """
    if birth is None:
        birth = date.fromordinal(rng.randint(_DEMO_BIRTH_FIRST, _DEMO_BIRTH_LAST))
    first17 = f"{rng.randint(100000, 699999)}{_yyyymmdd(birth)}{rng.randrange(1000):03d}"
    return first17 + resident_id_check_character(first17)


# --- Unified social credit code (GB 32100-2015) ------------------------------
#
# Layout: registration authority code (1), organisation type code (1),
# administrative division code of the registering authority (6 digits),
# subject identifier, i.e. the GB 11714 organisation code (9), check character.
#
# Structural rules enforced here, deliberately simple:
# * all 18 characters come from CREDIT_CODE_ALPHABET (digits and capital letters
#   without I, O, S, V, Z);
# * character 1 is one of _REGISTRATION_AUTHORITIES (1-9, A-G, N, Y); "N" is the
#   agriculture authorities' code for rural collective economic organisations;
# * character 2 is any alphabet character except "0";
# * characters 3-8 are digits.
# The organisation code's own check character (GB 11714) is not verified.
#
# Check character: the values (alphabet indexes) of the first 17 characters are
# weighted 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28, i.e. 3**k mod 31 for
# k = 0 .. 16; the check value is 31 - (sum mod 31), with 31 meaning 0.  Since
# 34 = 3 (mod 31), the weighted sum is congruent to the 17 values read in
# reverse order as a base-34 number.  _CREDIT_BASE34 translates each alphabet
# character to the base-34 digit of its value (and every other byte to "!",
# which int() rejects and isalnum() reports), so the sum mod 31 is
# ``int(translated[16::-1], 34) % 31``.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_REGISTRATION_AUTHORITIES = "123456789ABCDEFGNY"
_ORGANISATION_TYPES = CREDIT_CODE_ALPHABET[1:]
_BASE34_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWX"


def _build_credit_base34_table() -> bytes:
    table = bytearray(b"!" * 256)
    for char_value, char in enumerate(CREDIT_CODE_ALPHABET):
        table[ord(char)] = ord(_BASE34_DIGITS[char_value])
    return bytes(table)


_CREDIT_BASE34 = _build_credit_base34_table()


def _translate_credit_code(value: str) -> bytes:
    return value.encode("ascii").translate(_CREDIT_BASE34)


def credit_code_check_character(first17: str) -> str:
    """Return the GB 32100-2015 check character for 17 credit-code characters."""
    if len(first17) != _IDENTIFIER_LENGTH - 1 or not first17.isascii():
        raise ValueError("first17 must be exactly 17 characters of the credit code alphabet")
    translated = _translate_credit_code(first17)
    if not translated.isalnum():
        raise ValueError("first17 must be exactly 17 characters of the credit code alphabet")
    return CREDIT_CODE_ALPHABET[-int(translated[::-1], 34) % 31]


def validate_credit_code(raw: str) -> str:
    """Return the normalised unified social credit code or raise InvalidIdentifier."""
    value = normalise_identifier(raw)
    if len(value) != _IDENTIFIER_LENGTH:
        raise InvalidIdentifier(_LENGTH if value else _EMPTY)
    if not value.isascii():
        raise InvalidIdentifier(_CREDIT_CHARACTERS)
    translated = _translate_credit_code(value)
    if not translated.isalnum():
        raise InvalidIdentifier(_CREDIT_CHARACTERS)
    if value[0] not in _REGISTRATION_AUTHORITIES:
        raise InvalidIdentifier(_CREDIT_AUTHORITY)
    if value[1] == "0":
        raise InvalidIdentifier(_CREDIT_TYPE)
    if not value[2:8].isdigit():
        raise InvalidIdentifier(_CREDIT_DIVISION)
    if CREDIT_CODE_ALPHABET[-int(translated[16::-1], 34) % 31] != value[17]:
        raise InvalidIdentifier(_CREDIT_CHECK_MISMATCH)
    return value


def make_credit_code(rng: random.Random) -> str:
    """Return a random unified social credit code that passes validate_credit_code."""
    first17 = "".join(
        (
            rng.choice(_REGISTRATION_AUTHORITIES),
            rng.choice(_ORGANISATION_TYPES),
            str(rng.randint(100000, 699999)),
            *(rng.choice(CREDIT_CODE_ALPHABET) for _ in range(9)),
        )
    )
    return first17 + credit_code_check_character(first17)


# --- Both kinds ---------------------------------------------------------------


def validate_identifier(kind: str, raw: str) -> str:
    """Validate ``raw`` as a PERSON (resident ID) or ORGANISATION (credit code)."""
    if kind == PERSON:
        return validate_resident_id(raw)
    if kind == ORGANISATION:
        return validate_credit_code(raw)
    raise InvalidIdentifier(_UNKNOWN_KIND)


def mask_identifier(value: str) -> str:
    """Mask an identifier for display, revealing at most 8 characters.

    18 characters keep the first 4 and last 4 ("3301**********1234"); other
    lengths of 6 or more keep the first 2 and last 2; shorter values are all
    asterisks.  The length is preserved.  ``value`` is not normalised.
    """
    length = len(value)
    if length == _IDENTIFIER_LENGTH:
        return f"{value[:4]}{'*' * 10}{value[-4:]}"
    if length >= 6:
        return f"{value[:2]}{'*' * (length - 4)}{value[-2:]}"
    return "*" * length
