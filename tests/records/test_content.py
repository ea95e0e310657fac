"""records.content: the one check of a record's content (import rows, proposed and decided
corrections), the one content hash and the export cell."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from records import content
from records.crypto import identifier_hash
from records.models import CreditRecord, CreditRecordVersion
from tests.records.test_imports import PERSON_ID, csv_bytes, row, run_import

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_day")]

TODAY = date(2026, 6, 15)
# The fixtures are the same for every example and nothing an example does changes them.
PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Any character, lone surrogates (which a JSON string can spell) and controls included.
ANY_CHARACTER = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.sampled_from("\x00\x07\x1f\x7f\x85\u200b\u00ad\t\n\r"),
)
ANY_TEXT = st.text(ANY_CHARACTER)
CORRECTABLE = sorted(content.CORRECTABLE_FIELDS)
MAY_CHANGE = (
    "it may change: conduct_ended_on, decision_date, decision_document_number, facts, title"
)
REFUSED_TEXT = re.compile(
    r"is required|contains a NUL character|contains the control or invalid character U\+[0-9A-F]{4}"
    r"|is longer than 300 characters|mentions prohibited personal data \(.+\)"
)
EVASIONS = [
    ("ＲＥＬＩＧＩＯＮ", "religion"),
    ("r e l i g i o n", "religion"),
    ("指\u200b纹", "指纹"),
    ("血\u00ad型", "血型"),
    ("ｂｌｏｏｄ\u3000ｔｙｐｅ", "blood type"),
    ("BlOoD TyPe", "blood type"),
    ("relıgıon", "religion"),
    ("FINGERPRİNT", "fingerprint"),
]


def outcome(changes: object) -> content.CheckedCorrection | content.ContentInvalid:
    try:
        return content.correction_check(changes, today=TODAY)
    except content.ContentInvalid as error:
        return error


def refusal(changes: object) -> dict[str, str]:
    with pytest.raises(content.ContentInvalid) as caught:
        content.correction_check(changes, today=TODAY)
    return caught.value.extra["errors"]


@pytest.mark.parametrize(("spelling", "term"), EVASIONS)
def test_prohibited_term_evasions_are_caught_everywhere(agency, spelling, term):
    facts = f"当事人{spelling}记录"

    report = run_import(agency, csv_bytes([row("R-1", facts=facts)]))

    assert content.prohibited_terms().find(facts) == term
    assert refusal({"facts": facts}) == {"facts": f"mentions prohibited personal data ({term})"}
    assert report.rows_inserted == 0
    assert [(error.field, error.reason) for error in report.errors] == [
        ("facts", f"mentions prohibited personal data ({term})")
    ]
    assert not CreditRecord.objects.exists()


@pytest.mark.parametrize("facts", ["未按规定公示年度报告", "late annual report"])
def test_ordinary_text_is_accepted_everywhere(agency, facts):
    report = run_import(agency, csv_bytes([row("R-1", facts=facts)]))

    assert content.prohibited_terms().find(facts) is None
    assert content.correction_check({"facts": facts}, today=TODAY).values == {"facts": facts}
    assert (report.rows_inserted, report.rows_rejected) == (1, 0)
    assert CreditRecord.objects.get(record_number="R-1").facts == facts


@PROPERTY
@given(title=st.one_of(ANY_TEXT, st.sampled_from([spelling for spelling, _ in EVASIONS])))
def test_any_title_is_refused_with_a_reason_or_accepted_clean(title):
    checked = outcome({"title": title})

    if isinstance(checked, content.ContentInvalid):
        assert list(checked.extra["errors"]) == ["title"]
        assert REFUSED_TEXT.fullmatch(checked.extra["errors"]["title"])
    else:  # stored trimmed, as an import row's value is
        assert checked.values == {"title": title.strip()}
        assert content.text_problem("title", title.strip()) is None
        assert content.prohibited_terms().find(title) is None
        assert content.FORBIDDEN_CHARACTERS.search(title.strip()) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=10,
)
# Mostly values a field could take, so that accepted corrections are generated too.
FIELD_VALUES = st.one_of(
    st.text(),
    st.sampled_from(["2026-06-01", "2099-01-01", "1989-12-31", "20260601", "", None]),
    JSON_VALUES,
)
CORRECTIONS = st.one_of(
    JSON_VALUES,
    st.dictionaries(st.sampled_from(CORRECTABLE), FIELD_VALUES, max_size=5),
    st.dictionaries(st.sampled_from(CORRECTABLE) | ANY_TEXT, FIELD_VALUES, max_size=6),
)


@PROPERTY
@given(changes=CORRECTIONS)
def test_any_payload_is_refused_as_content_or_checked_into_storable_values(changes):
    checked = outcome(changes)

    if isinstance(checked, content.ContentInvalid):
        errors = checked.extra["errors"]
        assert errors
        assert set(errors) <= {*CORRECTABLE, "correction"}
        if isinstance(changes, dict):
            assert set(errors) - {"correction"} <= set(changes)
        else:
            assert errors == {"correction": "must be an object of field names and values"}
        json.dumps([checked.message, errors], ensure_ascii=False).encode("utf-8")
    else:
        assert isinstance(checked, content.CheckedCorrection)
        assert set(checked.values) == set(changes)
        json.dumps(checked.as_json(), ensure_ascii=False).encode("utf-8")


def test_date_parse_accepts_an_iso_calendar_date():
    assert content.date_parse("2026-01-01") == date(2026, 1, 1)


@pytest.mark.parametrize(
    "value",
    [
        "20260101",
        "2026-1-1",
        "2026-01-01T00:00",
        "２０２６-01-01",
        "",
        "2026-02-30",
        "2026-01-01\n",
    ],
)
def test_date_parse_refuses_any_other_form(value):
    with pytest.raises(ValueError, match=r"^must be a date in the form YYYY-MM-DD$"):
        content.date_parse(value)


@pytest.mark.parametrize(
    "decision_date", ["20260601", "2026-6-1", "2026-06-01T00:00", "２０２６-06-01"]
)
def test_import_refuses_a_decision_date_not_in_iso_form(agency, decision_date):
    report = run_import(agency, csv_bytes([row("R-1", decision_date=decision_date)]))

    assert (report.rows_inserted, report.rows_rejected) == (0, 1)
    assert [(error.field, error.reason) for error in report.errors] == [
        ("decision_date", "must be a date in the form YYYY-MM-DD")
    ]
    assert not CreditRecord.objects.exists()


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"decision_date": "2026-06-16"}, {"decision_date": "is in the future"}),
        ({"conduct_ended_on": "2026-06-16"}, {"conduct_ended_on": "is in the future"}),
        ({"decision_date": "1989-12-31"}, {"decision_date": "is before 1990-01-01"}),
        ({"decision_date": 20260101}, {"decision_date": "must be text"}),
        ({"decision_date": {"a": 1}}, {"decision_date": "must be text"}),
        ({"decision_date": "20260101"}, {"decision_date": "must be a date in the form YYYY-MM-DD"}),
        ({"decision_date": None}, {"decision_date": "is required"}),
    ],
)
def test_correction_refuses_dates_an_import_would_refuse(changes, errors):
    assert refusal(changes) == errors


def test_correction_accepts_dates_from_1990_up_to_today_and_clears_the_conduct_end():
    checked = content.correction_check(
        {"decision_date": "2026-06-15", "conduct_ended_on": None}, today=TODAY
    )
    earliest = content.correction_check({"decision_date": "1990-01-01"}, today=TODAY)

    assert checked.values == {"decision_date": TODAY, "conduct_ended_on": None}
    assert checked.as_json() == {"decision_date": "2026-06-15", "conduct_ended_on": None}
    assert earliest.values == {"decision_date": date(1990, 1, 1)}


@pytest.mark.parametrize(
    "imported",
    [
        row("R-1"),
        row("R-1", conduct_ended_on="", facts="第一行\n第二行\t制表\\反斜杠"),
    ],
)
def test_an_import_stores_the_one_content_hash_and_a_rerun_keeps_it(agency, imported):
    file = csv_bytes([imported])
    run_import(agency, file)
    record = CreditRecord.objects.select_related("subject", "category").get(record_number="R-1")
    fields = (
        identifier_hash("person", PERSON_ID),
        "penalty-general",
        imported["title"],
        imported["facts"],
        imported["decision_document_number"],
        imported["decision_date"],
        imported["conduct_ended_on"],
        "6",
    )

    report = run_import(agency, file)

    assert record.content_hash == content.record_content_hash(record)
    assert record.content_hash == hashlib.sha256("\x1f".join(fields).encode()).hexdigest()
    assert (report.rows_inserted, report.rows_updated, report.rows_unchanged) == (0, 0, 1)
    assert not CreditRecordVersion.objects.exists()
    after = CreditRecord.objects.get(pk=record.pk)
    assert (after.version, after.content_hash) == (1, record.content_hash)


@pytest.mark.parametrize(
    ("character", "reason"),
    [
        ("\x07", "contains the control or invalid character U+0007"),
        ("\x1f", "contains the control or invalid character U+001F"),
        ("\x7f", "contains the control or invalid character U+007F"),
        ("\x85", "contains the control or invalid character U+0085"),
        ("\ud800", "contains the control or invalid character U+D800"),
        ("\x00", "contains a NUL character"),
    ],
)
def test_correction_refuses_control_and_invalid_characters(character, reason):
    assert refusal({"title": f"标题{character}结尾", "facts": "事实"}) == {"title": reason}


def test_correction_keeps_tabs_and_line_breaks_in_facts():
    facts = "第一行\n第二行\t制表\r\n第三行"

    checked = content.correction_check({"facts": facts}, today=TODAY)

    assert checked.values == {"facts": facts}


def test_correction_names_a_field_it_may_not_change():
    errors = refusal({"status": "x", "title": "新标题"})

    assert errors == {"correction": f"cannot change status; {MAY_CHANGE}"}


def test_correction_does_not_echo_a_field_name_no_response_could_encode():
    with pytest.raises(content.ContentInvalid) as caught:
        content.correction_check({"sta\ud800tus": "x"}, today=TODAY)

    errors = caught.value.extra["errors"]
    assert errors == {"correction": f"cannot change these fields; {MAY_CHANGE}"}
    json.dumps([caught.value.message, errors], ensure_ascii=False).encode("utf-8")


def test_correction_must_be_an_object():
    assert refusal(["title"]) == {"correction": "must be an object of field names and values"}


@pytest.mark.parametrize(
    ("name", "limit"), [("title", 300), ("facts", 10_000), ("decision_document_number", 100)]
)
def test_text_fields_are_limited_in_length(name, limit):
    accepted = content.correction_check({name: "甲" * limit}, today=TODAY)

    assert accepted.values == {name: "甲" * limit}
    assert refusal({name: "甲" * (limit + 1)}) == {name: f"is longer than {limit} characters"}


FORMULA_LEADING = ("=", "+", "-", "@", "\t", "\r")


@PROPERTY
@given(text=ANY_TEXT | st.sampled_from((*FORMULA_LEADING, "'")).map(lambda lead: lead + "1+1"))
def test_export_cell_neutralises_exactly_what_a_spreadsheet_would_evaluate(text):
    # and an apostrophe of its own is doubled, so that dropping one reads the value back
    expected = "'" + text if text[:1] in (*FORMULA_LEADING, "'") else text

    assert content.export_cell(text) == expected
    assert (content.export_cell(text)[1:] if expected != text else expected) == text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("a=1", "a=1"),
        ("'=1", "''=1"),
        (None, ""),
        (42, "42"),
    ],
)
def test_export_cell_examples(value, cell):
    assert content.export_cell(value) == cell


def test_a_correction_is_trimmed_like_an_import_row():
    checked = content.correction_check(
        {"title": "  更正后的标题 \x85", "conduct_ended_on": "   "}, today=TODAY
    )

    assert checked.values == {"title": "更正后的标题", "conduct_ended_on": None}


@pytest.mark.parametrize("terms", [(), ("  ",)])
def test_no_prohibited_terms_configured_flags_nothing(terms):
    assert content.ProhibitedTerms(terms).find("religion 指纹") is None


@pytest.mark.parametrize(
    "spelling", ["指\u034f纹", "血\ufe0f型", "relig\u3164ion", "fin\uffa0gerprint"]
)
def test_joiners_selectors_and_fillers_do_not_hide_a_term(spelling):
    assert content.prohibited_terms().find(spelling) is not None


@pytest.mark.parametrize(
    "spelling",
    [
        "指\u2066纹",  # a bidirectional isolate
        "re\u2067ligion",
        "指\U000e0020纹",  # a tag character
        "\U0001d42b\U0001d41e\U0001d425\U0001d422\U0001d420\U0001d422\U0001d428\U0001d427",
        "ⓡⓔⓛⓘⓖⓘⓞⓝ",  # circled letters
        "⾎型",  # a Kangxi radical that NFKC turns into 血
    ],
)
def test_format_characters_and_compatibility_letters_do_not_hide_a_term(spelling):
    assert content.prohibited_terms().find(spelling) is not None


@PROPERTY
@given(text=ANY_TEXT)
def test_the_fast_scan_finds_what_the_full_normalisation_finds(text):
    terms = content.prohibited_terms()
    full = content.prohibited_key(text)  # NFKC on every text, without the shortcut

    assert (terms.find(text) is not None) == any(
        content.prohibited_key(term) in full for term in content.PROHIBITED_TERMS
    )
