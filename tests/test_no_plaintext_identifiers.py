"""No full identifier in clear text: not in any table, not in the logs, not in audit payloads."""

from __future__ import annotations

import io
import logging
import random

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditEvent
from records import identifiers
from records.imports import import_batch_run
from records.models import ImportBatch, Subject
from records.services import subject_access_grant, subject_identifier_reveal
from tests.factories import UserFactory
from tests.records.test_imports import csv_bytes, row

RNG = random.Random(99)
PERSON = identifiers.make_resident_id(RNG)
COMPANY = identifiers.make_credit_code(RNG)
BAD_PERSON = PERSON[:-1] + ("1" if PERSON[-1] != "1" else "2")  # wrong check digit


def database_dump() -> str:
    """Every value of every row of every table, as text (bytes decoded leniently too)."""
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for values in cursor.fetchall():
                for value in values:
                    if isinstance(value, (bytes, memoryview)):
                        parts.append(bytes(value).decode("latin-1"))
                    parts.append(str(value))
    return "\n".join(parts)


@pytest.mark.django_db
@pytest.mark.usefixtures("import_day")
def test_known_identifiers_appear_nowhere_in_clear(agency, caplog):
    caplog.set_level(logging.DEBUG)
    content = csv_bytes(
        [
            row("R-1", subject_identifier=PERSON),
            row(
                "R-2",
                subject_kind="organisation",
                subject_identifier=COMPANY,
                subject_name="上海华信贸易有限公司",
                category="penalty-general",
            ),
            row("R-3", subject_identifier=BAD_PERSON),
            # lowercase and full-width forms normalise to the same subject
            row(
                "R-4",
                subject_identifier=PERSON.translate(
                    str.maketrans("0123456789X", "０１２３４５６７８９ｘ")
                ),
            ),
        ]
    )
    report = import_batch_run(
        agency=agency,
        stream=io.BytesIO(content),
        file_name="pii.csv",
        actor=None,
        source=ImportBatch.Source.COMMAND,
    )
    citizen = UserFactory(role="citizen")
    auditor = UserFactory(role="auditor")
    person = Subject.objects.get(kind="person")
    subject_access_grant(subject=person, user=citizen, actor=None)
    revealed = subject_identifier_reveal(subject=person, actor=auditor, reason="audit check")
    client = APIClient()
    client.force_authenticate(citizen)
    api_text = (
        client.get("/api/v1/me/records/").content.decode()
        + client.get("/api/v1/me/subjects/").content.decode()
    )

    assert (report.rows_inserted, report.rows_rejected) == (3, 1)
    assert Subject.objects.count() == 2
    assert revealed == PERSON  # the reveal works, and is audited below
    dump = database_dump()
    audit_text = "\n".join(AuditEvent.objects.values_list("canonical", flat=True))
    assert "subject.revealed" in audit_text
    for secret in (PERSON, COMPANY, BAD_PERSON, PERSON[6:14] + PERSON[14:]):
        assert secret not in dump
        assert secret not in audit_text
        assert secret not in caplog.text
        assert secret not in api_text
        assert secret not in str([error.as_dict() for error in report.errors])
    assert identifiers.mask_identifier(PERSON) in api_text
