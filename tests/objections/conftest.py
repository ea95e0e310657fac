"""A small world for case tests: the demo registry, the built-in workflows, people and records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from accounts.models import User
from audit.models import AuditEvent
from objections.models import Case, Clock, PendingApproval
from objections.services import workflow_definitions_sync
from records import demo
from records.models import Agency, CatalogueEntry, CreditRecord, CreditRecordVersion, Subject
from records.services import subject_access_grant
from tests.factories import SubjectFactory, UserFactory, registry_record


@dataclass
class World:
    citizen: User  # may act for `subject`
    other_citizen: User  # may act for `other_subject`
    subject: Subject
    other_subject: Subject
    caseworker: User  # Shanghai credit centre
    second_caseworker: User  # Shanghai credit centre
    agency_caseworker: User  # Shanghai market regulator (the records' providing unit)
    supervisor: User  # Shanghai credit centre
    auditor: User
    zj_caseworker: User  # Zhejiang credit centre
    zj_supervisor: User  # Zhejiang credit centre
    zj_agency_caseworker: User  # Zhejiang market regulator
    zj_drc_caseworker: User  # Zhejiang development and reform commission
    zj_drc_supervisor: User  # its responsible person: approves Zhejiang extensions
    sh_record: CreditRecord  # Shanghai market regulator, general penalty, about `subject`
    zj_record: CreditRecord  # Zhejiang market regulator, general penalty, about `subject`
    hb_record: CreditRecord  # Hubei market regulator, about `subject`
    cn_record: CreditRecord  # national market regulator, about `subject`
    cn_credit_record: CreditRecord  # PBoC credit reference centre: credit reporting, `subject`
    other_record: CreditRecord  # Shanghai market regulator, about `other_subject`

    def agency(self, code: str) -> Agency:
        return Agency.objects.get(code=code)


@pytest.fixture
def world(db: None) -> World:
    demo.registry_load()
    workflow_definitions_sync()
    subject = SubjectFactory(name="王伟")
    other_subject = SubjectFactory(name="李娜")
    citizen = UserFactory(username="wangwei", role="citizen", email="wangwei@example.org")
    other_citizen = UserFactory(username="lina", role="citizen", email="lina@example.org")
    subject_access_grant(subject=subject, user=citizen, actor=None)
    subject_access_grant(subject=other_subject, user=other_citizen, actor=None)

    def staff(username: str, role: str, agency: str) -> User:
        return UserFactory(
            username=username,
            role=role,
            agency=Agency.objects.get(code=agency),
            email=f"{username}@example.org",
        )

    return World(
        citizen=citizen,
        other_citizen=other_citizen,
        subject=subject,
        other_subject=other_subject,
        caseworker=staff("sh-cw", "caseworker", "shanghai-credit-centre"),
        second_caseworker=staff("sh-cw2", "caseworker", "shanghai-credit-centre"),
        agency_caseworker=staff("sh-market-cw", "caseworker", "shanghai-market"),
        supervisor=staff("sh-sup", "supervisor", "shanghai-credit-centre"),
        auditor=UserFactory(username="auditor", role="auditor"),
        zj_caseworker=staff("zj-cw", "caseworker", "zhejiang-credit-centre"),
        zj_supervisor=staff("zj-sup", "supervisor", "zhejiang-credit-centre"),
        zj_agency_caseworker=staff("zj-market-cw", "caseworker", "zhejiang-market"),
        zj_drc_caseworker=staff("zj-drc-cw", "caseworker", "zhejiang-drc"),
        zj_drc_supervisor=staff("zj-drc-sup", "supervisor", "zhejiang-drc"),
        sh_record=registry_record("shanghai-market", subject, "SH-1"),
        zj_record=registry_record("zhejiang-market", subject, "ZJ-1"),
        hb_record=registry_record("hubei-market", subject, "HB-1"),
        cn_record=registry_record("national-market", subject, "CN-1"),
        cn_credit_record=registry_record(
            "national-credit-service",
            subject,
            "CN-CR-1",
            category=CatalogueEntry.objects.get(
                jurisdiction__code="national", code="credit-loan-overdue"
            ),
        ),
        other_record=registry_record("shanghai-market", other_subject, "SH-2"),
    )


def case_snapshot(case: Case) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    case = Case.objects.get(pk=case.pk)
    record = CreditRecord.objects.get(pk=case.record_id)
    return {
        "state": case.state,
        "is_open": case.is_open,
        "lock_version": case.lock_version,
        "outcome": case.outcome,
        "reasons": case.reasons,
        "next_due_on": case.next_due_on,
        "clocks": list(
            Clock.objects.filter(case=case)
            .order_by("id")
            .values_list("timer", "status", "due_on", "extended_by", "trace")
        ),
        "approvals": list(
            PendingApproval.objects.filter(case=case)
            .order_by("id")
            .values_list("id", "transition", "approved", "decided_by_id")
        ),
        "record": (
            record.title,
            record.status,
            record.version,
            record.under_objection,
            record.content_hash,
        ),
        "record_versions": CreditRecordVersion.objects.filter(record=record).count(),
        "audit_events": AuditEvent.objects.count(),
    }
