"""Notes on a case: an internal note among staff, or a message to the applicant."""

from __future__ import annotations

from accounts.models import User
from audit.services import audit_record, audited
from objections.exceptions import MissingFields
from objections.models import Case, CaseNote

NOTE_LIMIT = 10_000


@audited()
def case_note_add(*, case: Case, actor: User, kind: str, text: str) -> CaseNote:
    """Keep a note; the audit event names its kind and length, not its text (which may hold
    personal data and stays in the note row, shown only to those who may see the case)."""
    text = text.strip()
    if kind not in CaseNote.Kind.values:
        raise MissingFields(
            "Choose an internal note or a message to the applicant.", fields=["kind"]
        )
    if not text:
        raise MissingFields("Write the note.", fields=["text"])
    if len(text) > NOTE_LIMIT:
        raise MissingFields(f"A note holds at most {NOTE_LIMIT} characters.", fields=["text"])
    note = CaseNote.objects.create(case=case, kind=kind, text=text, author=actor)
    audit_record(
        actor=actor,
        action="case.note_added",
        target=note,
        case_reference=case.reference,
        data={"kind": kind, "length": len(text)},
    )
    return note
