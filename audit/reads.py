"""Reads of personal data, each kept in the audit log (`read.*` events).

Who (the actor and the role recorded with the event), what (the action and its target, by id),
when (`recorded_at`, stamped under the chain lock) and, where the page asks for one, the reason.
The payload holds ids and the reason only: never an identifier, a name or a document.

The caller records the read once per page view, after it has built what it will show and before
it returns it: if the event cannot be written, the data is not shown. Reads recorded elsewhere
keep their own events: a full identifier (`subject.revealed`, `records.services`) and an export's
download (`audit.export_downloaded`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from django.db import models

from accounts import roles
from audit.services import audit_record, audited

if TYPE_CHECKING:
    from accounts.models import User

# The reads this module records, as `read.<what>`.
CASE_OPENED: Final = "case_opened"
# A case's evidence file shown or downloaded (its target: the `objections.Evidence` row).
EVIDENCE_OPENED: Final = "evidence_opened"
IDENTITY_LETTER_OPENED: Final = "identity_letter_opened"
READS: Final = frozenset({CASE_OPENED, EVIDENCE_OPENED, IDENTITY_LETTER_OPENED})

# Opening a case as one of these is a read of someone else's personal data; an applicant reading
# their own case is not recorded.
STAFF_ROLES: Final = frozenset(
    {roles.CASEWORKER, roles.SUPERVISOR, roles.AUDITOR, roles.ADMINISTRATOR}
)
REASON_LIMIT: Final = 500


def read_by_staff(user: User) -> bool:
    """The user holds a staff role (the roles are cached on the user: no query after the first)."""
    return not STAFF_ROLES.isdisjoint(roles.role_names(user))


def read_record(
    *,
    actor: User,
    what: str,
    target: models.Model,
    case_reference: str = "",
    ids: dict[str, int] | None = None,
    reason: str = "",
) -> None:
    """Record that `actor` read `target` (one `read.<what>` event, in a transaction of its own).

    `ids` names the personal data behind the target by primary key (`{"subject": 7}`); `reason`
    is kept (up to 500 characters) where the page asked for one.
    """
    if what not in READS:
        raise ValueError(f"unknown read {what!r}: one of {sorted(READS)}")
    data: dict[str, int | str] = dict(ids or {})
    if reason:
        data["reason"] = reason[:REASON_LIMIT]
    with audited():
        audit_record(
            actor=actor,
            action=f"read.{what}",
            target=target,
            case_reference=case_reference,
            data=data,
        )


class _Case(Protocol):
    """What `case_opened_record` reads of a case (objections.Case; the audit app imports no
    domain app)."""

    reference: str
    subject_id: int
    record_id: int


def case_opened_record(*, actor: User, case: _Case) -> None:
    """Record that `actor` opened `case` as staff (`read.case_opened`, the subject's and the
    record's ids): the case page, the case API and the auditor's dossier, each once per view."""
    read_record(
        actor=actor,
        what=CASE_OPENED,
        target=case,  # type: ignore[arg-type]
        case_reference=case.reference,
        ids={"subject": case.subject_id, "record": case.record_id},
    )
