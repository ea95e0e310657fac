"""Bulk import: validation, upsert by (agency, record number), idempotence, atomicity, audit."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from audit.models import AuditEvent
from records import identifiers
from records.crypto import identifier_hash
from records.imports import FIELDS, ImportFileInvalid, import_batch_run
from records.models import CreditRecord, CreditRecordVersion, ImportBatch, Subject

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_day")]

RNG = random.Random(2026)
PERSON_ID = identifiers.make_resident_id(RNG)
OTHER_PERSON_ID = identifiers.make_resident_id(RNG)
COMPANY_ID = identifiers.make_credit_code(RNG)


def row(number: str, **overrides: str) -> dict[str, str]:
    values = {
        "record_number": number,
        "subject_kind": "person",
        "subject_identifier": PERSON_ID,
        "subject_name": "王伟",
        "category": "penalty-general",
        "title": "销售不合格产品",
        "facts": "经查，当事人销售不合格产品。",
        "decision_document_number": f"沪市监罚〔2026〕{number}号",
        "decision_date": "2026-06-01",
        "conduct_ended_on": "2026-05-20",
        "publication_months": "6",
    }
    values.update(overrides)
    return values


def csv_bytes(rows: list[dict[str, str]], header: tuple[str, ...] = FIELDS) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def run_import(agency, content: bytes, name: str = "batch.csv"):
    return import_batch_run(
        agency=agency,
        stream=io.BytesIO(content),
        file_name=name,
        actor=None,
        source=ImportBatch.Source.COMMAND,
    )


MIXED_ROWS = [
    row("R-1"),  # line 2: good
    row("R-2", subject_identifier=OTHER_PERSON_ID, subject_name="李娜"),  # line 3: good
    row("R-3", subject_identifier=PERSON_ID[:-1] + ("0" if PERSON_ID[-1] != "0" else "1")),
    row("R-1", title="重复"),  # line 5: duplicate of line 2
    row("R-5", category="parking-fines"),  # line 6: outside the catalogue
    row("R-6", facts="当事人血型为A型，患有疾病。"),  # line 7: prohibited data
    row(
        "R-7",
        subject_kind="organisation",
        subject_identifier=COMPANY_ID,
        subject_name="上海华信贸易有限公司",
        category="abnormal-operation",
    ),  # line 8: good
    row("R-8", subject_kind="person", category="abnormal-operation"),  # line 9: not for persons
    row("R-9", decision_date="2026-02-30"),  # line 10: malformed date
    row("R-10", publication_months="48"),  # line 11: beyond the catalogue maximum
    row("R-11", decision_date="2099-01-01"),  # line 12: in the future
]


def test_mixed_file_lands_good_rows_once_and_reports_the_rest(agency):
    report = run_import(agency, csv_bytes(MIXED_ROWS))

    assert (report.rows_total, report.rows_inserted, report.rows_rejected) == (11, 3, 8)
    assert (report.rows_updated, report.rows_unchanged) == (0, 0)
    assert sorted(CreditRecord.objects.values_list("record_number", flat=True)) == [
        "R-1",
        "R-2",
        "R-7",
    ]
    assert Subject.objects.count() == 3
    reported = {(error.line, error.field) for error in report.errors}
    assert reported == {
        (4, "subject_identifier"),
        (5, "record_number"),
        (6, "category"),
        (7, "facts"),
        (9, "category"),
        (10, "decision_date"),
        (11, "publication_months"),
        (12, "decision_date"),
    }
    reasons = {(error.line, error.reason) for error in report.errors}
    assert (4, "check digit does not match") in reasons
    assert (5, "appears twice in this file (first on line 2)") in reasons
    assert (6, "is not in the active lawful catalogue for this jurisdiction") in reasons
    assert (7, "mentions prohibited personal data (血型)") in reasons
    assert (9, "does not apply to natural persons") in reasons
    assert (10, "must be a date in the form YYYY-MM-DD") in reasons
    assert (11, "must be between 3 and 12 for a general category") in reasons
    assert (12, "is in the future") in reasons


def test_imported_record_has_dates_from_catalogue_and_jurisdiction(agency):
    run_import(agency, csv_bytes([row("R-1")]))

    record = CreditRecord.objects.get(record_number="R-1")
    assert record.publication_start == date(2026, 6, 1)
    assert record.publication_end == date(2026, 12, 1)  # 6 months
    assert record.retention_end == date(2031, 5, 20)  # 5 years from the end of the conduct
    assert record.status == CreditRecord.Status.PUBLISHED
    assert record.version == 1
    assert record.subject.identifier_masked == identifiers.mask_identifier(PERSON_ID)
    assert record.subject.identifier_hash == identifier_hash("person", PERSON_ID)


def test_rerunning_the_same_file_changes_nothing(agency):
    content = csv_bytes(MIXED_ROWS)
    run_import(agency, content)
    before = list(CreditRecord.objects.order_by("id").values())
    subjects_before = list(Subject.objects.order_by("id").values_list("id", "identifier_hash"))

    report = run_import(agency, content)

    assert (report.rows_inserted, report.rows_updated, report.rows_unchanged) == (0, 0, 3)
    assert report.rows_rejected == 8
    assert list(CreditRecord.objects.order_by("id").values()) == before
    assert list(Subject.objects.order_by("id").values_list("id", "identifier_hash")) == (
        subjects_before
    )
    assert CreditRecordVersion.objects.count() == 0


def test_changed_row_keeps_the_previous_content_as_a_version(agency):
    run_import(agency, csv_bytes([row("R-1"), row("R-2")]))
    original = CreditRecord.objects.get(record_number="R-1")

    report = run_import(agency, csv_bytes([row("R-1", title="销售过期食品"), row("R-2")]))

    assert (report.rows_inserted, report.rows_updated, report.rows_unchanged) == (0, 1, 1)
    record = CreditRecord.objects.get(record_number="R-1")
    assert (record.pk, record.title, record.version) == (original.pk, "销售过期食品", 2)
    version = CreditRecordVersion.objects.get(record=record)
    assert (version.version, version.title, version.content_hash) == (
        1,
        "销售不合格产品",
        original.content_hash,
    )
    assert version.superseded_by_batch_id == report.batch_id


def test_one_audit_event_per_batch_with_sha256_and_counts(agency):
    content = csv_bytes(MIXED_ROWS)
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0

    report = run_import(agency, content)

    events = list(AuditEvent.objects.filter(sequence__gt=last))
    assert len(events) == 1
    event = events[0]
    assert (event.action, event.target_type, event.target_id) == (
        "record.imported",
        "records.importbatch",
        str(report.batch_id),
    )
    assert event.payload == {
        "agency": "shanghai-market",
        "file_name": "batch.csv",
        "format": "csv",
        "sha256": hashlib.sha256(content).hexdigest(),
        "rows_total": 11,
        "inserted": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 8,
        "held": 0,
    }


def test_failure_half_way_leaves_nothing_applied(agency, monkeypatch):
    run_import(agency, csv_bytes([row("R-1")]))
    records_before = list(CreditRecord.objects.order_by("id").values())
    counts_before = (
        Subject.objects.count(),
        ImportBatch.objects.count(),
        AuditEvent.objects.count(),
        CreditRecordVersion.objects.count(),
    )

    def explode(**kwargs):
        raise RuntimeError("audit store unavailable")

    # The records, subjects and versions are already written when the audit write fails.
    monkeypatch.setattr("records.imports.pipeline.audit_record", explode)
    content = csv_bytes([row("R-1", title="改动"), row("R-2", subject_identifier=OTHER_PERSON_ID)])
    with pytest.raises(RuntimeError, match="audit store unavailable"):
        run_import(agency, content)

    assert list(CreditRecord.objects.order_by("id").values()) == records_before
    assert (
        Subject.objects.count(),
        ImportBatch.objects.count(),
        AuditEvent.objects.count(),
        CreditRecordVersion.objects.count(),
    ) == counts_before


def test_file_that_is_not_utf8_is_refused_whole(agency):
    content = csv_bytes([row("R-1")]) + "R-2,person,坏\n".encode("gb18030")

    with pytest.raises(ImportFileInvalid, match="not UTF-8"):
        run_import(agency, content)

    assert CreditRecord.objects.count() == 0
    assert ImportBatch.objects.count() == 0


def test_a_byte_order_mark_and_windows_line_endings_are_accepted(agency):
    content = b"\xef\xbb\xbf" + csv_bytes([row("R-1"), row("R-2")])
    assert content.count(b"\r\n") == 3  # the csv module writes Windows line endings

    report = run_import(agency, content)

    assert (report.rows_inserted, report.rows_rejected) == (2, 0)
    assert (
        CreditRecord.objects.get(record_number="R-2").decision_document_number
        == (row("R-2")["decision_document_number"])
    )


def test_control_characters_and_lone_surrogates_are_row_errors(agency):
    lines = [
        json.dumps(row("R-1", title="标题\ud800"), ensure_ascii=True),
        json.dumps({**row("R-2"), "bad\udc00key": "x"}, ensure_ascii=True),
        json.dumps(row("R-3", facts="甲\x1f乙"), ensure_ascii=True),
        json.dumps(row("R-4"), ensure_ascii=True),
    ]

    report = run_import(agency, ("\n".join(lines) + "\n").encode(), name="push.ndjson")

    assert [error.as_dict() for error in report.errors] == [
        {
            "line": 1,
            "field": "title",
            "reason": "contains the control or invalid character U+D800",
        },
        {"line": 2, "field": "bad\\udc00key", "reason": "unknown field"},
        {
            "line": 3,
            "field": "facts",
            "reason": "contains the control or invalid character U+001F",
        },
    ]
    assert list(CreditRecord.objects.values_list("record_number", flat=True)) == ["R-4"]
    assert ImportBatch.objects.get(pk=report.batch_id).errors[1]["field"] == "bad\\udc00key"


def test_old_mac_line_endings_are_accepted(agency):
    content = csv_bytes([row("R-1"), row("R-2")]).replace(b"\r\n", b"\r")

    report = run_import(agency, content)

    assert (report.rows_inserted, report.rows_rejected) == (2, 0)


@pytest.mark.parametrize("spelling", ["illneſſ", "relıgıon", "FINGERPRİNT", "Medical History"])
def test_prohibited_terms_are_found_whatever_their_letter_case(agency, spelling):
    report = run_import(agency, csv_bytes([row("R-1", facts=f"当事人 {spelling} 记录")]))

    assert report.rows_inserted == 0
    assert [(error.field, error.reason.split(" (")[0]) for error in report.errors] == [
        ("facts", "mentions prohibited personal data")
    ]


def test_header_with_prohibited_or_unknown_column_is_refused(agency):
    header = (*FIELDS, "blood_type", "nickname")

    with pytest.raises(ImportFileInvalid) as caught:
        run_import(agency, csv_bytes([row("R-1")], header=header))

    assert caught.value.message == (
        "The header is not valid: column 'blood_type' holds prohibited personal data; "
        "unknown column 'nickname'."
    )
    assert CreditRecord.objects.count() == 0


def test_ndjson_rows_are_validated_like_csv(agency):
    lines = [
        json.dumps(row("R-1"), ensure_ascii=False),
        json.dumps({**row("R-2"), "religion": "佛教"}, ensure_ascii=False),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps(row("R-5", subject_identifier="33010619900101123"), ensure_ascii=False),
    ]

    report = run_import(agency, ("\n".join(lines) + "\n").encode(), name="push.ndjson")

    assert (report.rows_total, report.rows_inserted, report.rows_rejected) == (5, 1, 4)
    assert [error.as_dict() for error in report.errors] == [
        {"line": 2, "field": "religion", "reason": "prohibited personal data may not be recorded"},
        {"line": 3, "field": "", "reason": "not valid JSON"},
        {"line": 4, "field": "", "reason": "not a JSON object"},
        {"line": 5, "field": "subject_identifier", "reason": "must be 18 characters"},
    ]


def test_record_whose_retention_has_ended_is_refused(agency):
    report = run_import(
        agency, csv_bytes([row("R-1", decision_date="2019-01-10", conduct_ended_on="2019-01-01")])
    )

    assert report.rows_inserted == 0
    assert [error.as_dict() for error in report.errors] == [
        {
            "line": 2,
            "field": "decision_date",
            "reason": "the retention period ended on 2024-01-01; the record may no longer be kept",
        }
    ]


def test_text_with_tabs_newlines_and_backslashes_round_trips(agency):
    facts = "第一行\t制表符\n第二行 \\ 反斜杠\r\n第三行"

    run_import(agency, csv_bytes([row("R-1", facts=facts)]))

    assert CreditRecord.objects.get(record_number="R-1").facts == facts.strip()


def test_nul_character_and_overlong_fields_are_row_errors(agency):
    report = run_import(
        agency, csv_bytes([row("R-1", title="坏\x00标题"), row("R-2", title="长" * 301)])
    )

    assert [error.as_dict() for error in report.errors] == [
        {"line": 2, "field": "title", "reason": "contains a NUL character"},
        {"line": 3, "field": "title", "reason": "is longer than 300 characters"},
    ]
    assert CreditRecord.objects.count() == 0


def test_import_records_command_prints_errors_and_summary(agency, tmp_path):
    path = tmp_path / "records.csv"
    path.write_bytes(csv_bytes(MIXED_ROWS[:6]))
    out = io.StringIO()

    call_command(
        "import_records", str(path), agency="shanghai-market", no_progress=True, stdout=out
    )

    lines = out.getvalue().splitlines()
    assert lines[:4] == [
        "line 4: subject_identifier: check digit does not match",
        "line 5: record_number: appears twice in this file (first on line 2)",
        "line 6: category: is not in the active lawful catalogue for this jurisdiction",
        "line 7: facts: mentions prohibited personal data (血型)",
    ]
    assert lines[4].startswith("batch ")
    assert "6 rows, 2 inserted, 0 updated, 0 unchanged, 4 rejected" in lines[4]


def test_import_records_command_refuses_unknown_agency(tmp_path):
    path = tmp_path / "records.csv"
    path.write_bytes(csv_bytes([row("R-1")]))

    with pytest.raises(CommandError, match="No agency with code 'nowhere'"):
        call_command("import_records", str(path), agency="nowhere", no_progress=True)


@pytest.mark.postgres
def test_a_subject_with_records_cannot_be_deleted_in_the_database(agency):
    run_import(agency, csv_bytes([row("R-1")]))
    subject = Subject.objects.get()

    def delete_subject() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM records_subject WHERE id = %s", [subject.pk])

    with pytest.raises(IntegrityError, match="referenced by credit records"):
        delete_subject()

    assert Subject.objects.filter(pk=subject.pk).exists()
