"""Adding evidence files to a case, alone or with the filing that opens it.

Every file is checked (`objections.evidence.checks`) and written beside its final place before
anything is recorded; one refused file refuses them all and leaves nothing on disk, in the
database or in the audit log. The files are moved into place inside the transaction that records
them, and deleted again if it fails.

One gap remains by design: a caller that wraps these services in a transaction of its own and
then rolls it back leaves the moved files behind (Django has no hook for a rollback). They are
never served (no row names them) and carry random names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from objections.evidence.checks import content_check, name_check
from objections.evidence.storage import Staged, discard, place, stage
from objections.evidence.uploads import too_large, too_many
from objections.exceptions import CaseConflict, RoleNotAllowed
from objections.models import Case, Evidence
from objections.selectors import case_roles_for
from objections.services.filing import case_file
from records.models import CreditRecord


def _read(upload: UploadedFile, *, name: str, limit: int) -> bytes:
    """The file's bytes, reading no more than one past the cap."""
    if upload.size is not None and upload.size > limit:
        raise too_large(name, limit)
    upload.seek(0)
    content = upload.read(limit + 1)
    if len(content) > limit:
        raise too_large(name, limit)
    return content


def evidence_stage(*, files: Sequence[UploadedFile], already: int = 0) -> list[Staged]:
    """Check every file and write the accepted copies beside their final place; a refusal of
    any one deletes what was written and raises."""
    limit = settings.SCS_EVIDENCE_MAX_FILES
    if already + len(files) > limit:
        raise too_many(limit)
    staged: list[Staged] = []
    try:
        for upload in files:
            name = name_check(upload.name or "")
            content = _read(upload, name=name, limit=settings.SCS_EVIDENCE_MAX_BYTES)
            staged.append(stage(content_check(content, name=name)))
    except BaseException:
        discard(staged)
        raise
    return staged


def _is_applicant(actor: User, case: Case) -> bool:
    """The actor adds files as the applicant (shared with them) rather than as staff."""
    held = case_roles_for(user=actor, case=case)
    return "citizen" in held and all(role == "citizen" for role in held)


def _may_add(actor: User, case: Case) -> None:
    held = case_roles_for(user=actor, case=case)
    if roles.ADMINISTRATOR in roles.role_names(actor) or any(r != "citizen" for r in held):
        return  # staff working the case
    if "citizen" in held:
        if not case.is_open:
            raise CaseConflict(_("The case is closed: no more evidence can be added."))
        return
    raise RoleNotAllowed(_("Only the applicant and the staff working the case add evidence."))


def _record(*, case: Case, staged: list[Staged], actor: User, visibility: str) -> list[Evidence]:
    """Inside the caller's audited transaction: the files into place, their rows, one event."""
    for item in staged:
        place(item)
    rows = Evidence.objects.bulk_create(
        Evidence(
            case=case,
            stored_name=item.stored_name,
            original_name=item.name,
            content_type=item.content_type,
            size=item.size,
            sha256=item.sha256,
            visibility=visibility,
            uploaded_by=actor,
        )
        for item in staged
    )
    audit_record(
        actor=actor,
        action="evidence.added",
        target=case,
        case_reference=case.reference,
        data={
            "visibility": visibility,
            "files": [
                {
                    "id": row.pk,
                    "public_id": str(row.public_id),
                    "sha256": row.sha256,
                    "size": row.size,
                    "type": row.content_type,
                }
                for row in rows
            ],
        },
    )
    return rows


def evidence_attach(
    *,
    case: Case,
    files: Sequence[UploadedFile],
    actor: User,
    visibility: str | None = None,
) -> list[Evidence]:
    """Add `files` to `case`: the applicant while it is open (their files are shared with them),
    staff who work it at any time (`visibility`, internal by default). All or none: at most
    SCS_EVIDENCE_MAX_FILES per case, counting those it holds."""
    if not files:
        return []
    _may_add(actor, case)
    applicant = _is_applicant(actor, case)
    if applicant:
        visibility = Evidence.Visibility.SHARED
    elif visibility not in Evidence.Visibility.values:
        visibility = Evidence.Visibility.INTERNAL
    staged = evidence_stage(files=files, already=Evidence.objects.filter(case=case).count())
    try:
        with audited():
            locked = Case.objects.select_for_update().get(pk=case.pk)
            if applicant and not locked.is_open:
                raise CaseConflict(_("The case is closed: no more evidence can be added."))
            held = Evidence.objects.filter(case=locked).count()
            if held + len(staged) > settings.SCS_EVIDENCE_MAX_FILES:
                raise too_many(settings.SCS_EVIDENCE_MAX_FILES)  # another upload came first
            return _record(case=locked, staged=staged, actor=actor, visibility=visibility)
    except BaseException:
        discard(staged)
        raise


def case_file_with_evidence(
    *,
    actor: User,
    record: CreditRecord,
    evidence: Sequence[UploadedFile],
    **filing: Any,
) -> Case:
    """`case_file` with evidence files, all or nothing: every file is checked before the case
    is created; a refused file, or a refused filing, leaves no case, no file and no event."""
    staged = evidence_stage(files=evidence)
    try:
        with audited():
            case = case_file(actor=actor, record=record, **filing)
            if staged:
                visibility = (
                    Evidence.Visibility.SHARED
                    if _is_applicant(actor, case)
                    else Evidence.Visibility.INTERNAL
                )
                _record(case=case, staged=staged, actor=actor, visibility=visibility)
    except BaseException:
        discard(staged)
        raise
    return case
