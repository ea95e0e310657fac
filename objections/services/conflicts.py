"""Import conflicts: an agency's new content for fields a decided case set, resolved by a
caseworker who keeps the decision or accepts the agency's content (and the case is noted)."""

from __future__ import annotations

from django.utils import timezone

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from objections.exceptions import CaseConflict, MissingFields, RoleNotAllowed
from objections.models import Case
from objections.services.notifications import notify
from records import services as record_services
from records.models import ImportConflict


def _may_resolve(user: User, conflict: ImportConflict, case: Case | None) -> bool:
    names = roles.role_names(user)
    if not names & {roles.CASEWORKER, roles.SUPERVISOR} or user.agency_id is None:
        return False
    agencies = {conflict.record.agency_id}
    if case is not None and case.responsible_agency_id is not None:
        agencies.add(case.responsible_agency_id)
    return user.agency_id in agencies


@audited()
def import_conflict_resolve(
    *, conflict_id: int, actor: User, accept: bool, reasons: str
) -> ImportConflict:
    """Keep the decided values (the agency's row stays held) or accept the agency's content:
    it becomes the record's next version, the fields are no longer locked, and the case that
    set them is noted and its applicant told. Either way with reasons, audited."""
    conflict = (
        ImportConflict.objects.select_for_update(of=("self",))
        .select_related("record")
        .get(pk=conflict_id)
    )
    case = Case.objects.filter(reference=conflict.case_reference).first()
    if not _may_resolve(actor, conflict, case):
        raise RoleNotAllowed(
            "Only a caseworker or supervisor of the record's agency or of the case's "
            "responsible body may resolve this conflict."
        )
    if conflict.status != ImportConflict.Status.OPEN:
        raise CaseConflict("This conflict has already been resolved.", status=conflict.status)
    if not reasons.strip():
        raise MissingFields("Resolving a conflict needs reasons.", fields=["reasons"])
    if accept:
        record_services.record_conflict_accept(conflict=conflict, actor=actor)
    conflict.status = ImportConflict.Status.ACCEPTED if accept else ImportConflict.Status.KEPT
    conflict.reasons = reasons.strip()
    conflict.resolved_by = actor
    conflict.resolved_at = timezone.now()
    conflict.save(update_fields=["status", "reasons", "resolved_by", "resolved_at", "updated_at"])
    audit_record(
        actor=actor,
        action="record.conflict_resolved",
        target=conflict,
        case_reference=conflict.case_reference,
        data={
            "record": conflict.record_id,
            "status": conflict.status,
            "fields": sorted(conflict.fields),
        },
    )
    if accept and case is not None:
        audit_record(
            actor=actor,
            action="case.noted",
            target=case,
            case_reference=case.reference,
            data={"note": "record_changed_by_agency", "conflict": conflict.pk},
        )
        notify(case_id=case.pk, event="record_changed")
    return conflict
