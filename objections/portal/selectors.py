"""Reads for the citizen's case pages: labels in the reader's language, the public timeline,
what the applicant may file about a record, their notices.

Everything here starts from a case or record the caller already obtained through a scoped
selector (`case_get_for_user`, `record_get_for_user`); nothing reaches past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import User
from audit.models import AuditEvent
from objections.exceptions import FilingRefused
from objections.models import Case, CaseNote, ClockPause, Evidence, Notification
from objections.services.definitions import definition_of
from records.models import Agency, CreditRecord

# The routes of appeal against an administrative decision, as the two statutes give them; shown
# with every decision (regulations.md §4.6). Kept as data, in both languages, with its source, like
# a workflow's own `appeal` text, so the notice reads the same whatever the translation catalogue
# holds.
APPEAL_ROUTES: dict[str, tuple[str, ...]] = {
    "zh": (
        "申请行政复议：自知道该决定之日起60日内，依照《中华人民共和国行政复议法》（2023年修订）第二十条，"
        "向依法履行行政复议职责的行政机关申请行政复议。",
        "提起行政诉讼：自知道该决定之日起6个月内，依照《中华人民共和国行政诉讼法》第四十六条，"
        "直接向人民法院提起行政诉讼；已申请行政复议的，可以在收到复议决定书之日起15日内起诉（第四十五条）。",
    ),
    "en": (
        "Administrative reconsideration: within 60 days of learning of this decision, under "
        "Article 20 of the Administrative Reconsideration Law of the PRC (《行政复议法》, revised "
        "2023), apply to the administrative body that handles reconsideration.",
        "Administrative litigation: within 6 months of learning of this decision, under "
        "Article 46 of the Administrative Litigation Law of the PRC (《行政诉讼法》), bring a suit "
        "before the people's court; after a reconsideration, within 15 days of receiving its "
        "decision (Article 45).",
    ),
}
APPEAL_SOURCE = "行政复议法（2023）第二十条；行政诉讼法第四十五条、第四十六条"

# Audit actions a citizen may see on their case's timeline; everything else (notes, approvals,
# assignments, reminders, escalations, reads) is the staff's.
PUBLIC_ACTIONS = (
    "case.filed",
    "case.routed",
    "case.transitioned",
    "case.clocks_recomputed",
    "evidence.added",
    "record.dispute_added",
)


def language_key() -> str:
    """'zh' or 'en': which of a workflow's labels the current reader gets."""
    return "en" if (translation.get_language() or "zh").startswith("en") else "zh"


def state_label(case: Case, state: str | None = None) -> str:
    """The human name of `state` (by default the case's) in the reader's language."""
    state = state or case.state
    if case.workflow is None or state == Case.FILED:
        return _("Received, being assigned to the body that handles it")
    found = definition_of(case.workflow).states.get(state)
    if found is None:
        return _("In progress")
    return found.label_en if language_key() == "en" else found.label_zh


def agency_name(agency: Agency | None) -> str:
    if agency is None:
        return ""
    return agency.name_en if language_key() == "en" else agency.name_zh


def appeal_text(case: Case) -> dict[str, Any]:
    """The routes of appeal for the reader: the two statutory routes, and the procedure's own
    statement (a complaint channel, a review) when its definition has one."""
    key = language_key()
    own = definition_of(case.workflow).appeal if case.workflow is not None else None
    return {
        "routes": APPEAL_ROUTES[key],
        "source": APPEAL_SOURCE,
        "procedure": (own.text_en if key == "en" else own.text_zh) if own else "",
        "procedure_source": own.source.citation if own else "",
    }


def deciding_body(case: Case, transition: str) -> str:
    """The body that took the deciding step, as the procedure names it (never a person)."""
    if case.workflow is None:
        return agency_name(case.responsible_agency)
    definition = definition_of(case.workflow)
    for step in definition.transitions:
        if step.name != transition:
            continue
        for role in sorted(step.roles):
            body = definition.bodies.get(role)
            if body is not None:
                return body.label_en if language_key() == "en" else body.label_zh
    return agency_name(case.responsible_agency)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str


def _transition_text(case: Case, payload: dict[str, Any]) -> str:
    target = str(payload.get("to", ""))
    label = state_label(case, target)
    if payload.get("transition") == "withdraw":
        return _("You withdrew the case.")
    if payload.get("outcome"):
        return _("A decision was taken. The case is now: %(state)s.") % {"state": label}
    return _("The case is now: %(state)s.") % {"state": label}


def case_timeline(*, case: Case) -> list[TimelineEntry]:
    """What happened on `case` that its applicant may see, oldest first, in human sentences:
    no state codes, no staff names, no internal notes or files."""
    rows = AuditEvent.objects.filter(
        case_reference=case.reference, action__in=PUBLIC_ACTIONS
    ).order_by("sequence")
    entries = []
    for event in rows:
        payload = event.payload
        if event.action == "case.filed":
            text = _("Your case was filed.")
        elif event.action == "case.routed":
            text = _("The case was assigned to %(agency)s.") % {
                "agency": agency_name(case.responsible_agency) or _("the body that handles it")
            }
        elif event.action == "case.transitioned":
            text = _transition_text(case, payload)
        elif event.action == "case.clocks_recomputed":
            text = _("The deadlines were recomputed with the year's official working-day schedule.")
        elif event.action == "evidence.added":
            if payload.get("visibility") != Evidence.Visibility.SHARED:
                continue
            text = _("Evidence was added (%(count)d files).") % {
                "count": len(payload.get("files", []))
            }
        else:  # record.dispute_added
            text = _("You added a statement of dispute to the record.")
        entries.append(TimelineEntry(at=event.recorded_at, text=text))
    return entries


def case_messages(*, case: Case) -> QuerySet[CaseNote]:
    """Messages the staff wrote to the applicant (never internal notes); the author left out."""
    return CaseNote.objects.filter(case=case, kind=CaseNote.Kind.MESSAGE).only(
        "id", "text", "created_at", "case_id", "kind"
    )


def material_asked_for(*, case: Case) -> str:
    """What the open request for material asks the applicant for (the paused clock's reason)."""
    reason = (
        ClockPause.objects.filter(clock__case=case, ended_at__isnull=True)
        .order_by("-id")
        .values_list("reason", flat=True)
        .first()
    )
    return reason or ""


def notice_list_for_user(*, user: User, case: Case | None = None) -> QuerySet[Notification]:
    """The user's own notices, newest first (optionally of one case)."""
    notices = Notification.objects.filter(recipient=user).select_related("case")
    if case is not None:
        notices = notices.filter(case=case)
    return notices.order_by("-created_at", "-id")


@dataclass(frozen=True)
class FilingOption:
    kind: str
    allowed: bool
    reason: str = ""
    earliest: date | None = None
    open_case: str = ""


def filing_options(*, user: User, record: CreditRecord) -> list[FilingOption]:
    """What the user may file about `record` today, and, when not, why and from when: the
    filing service's own checks (an open case, the repair guards), asked without filing."""
    from objections.services.filing import _repair_guards, definition_row_in_force
    from objections.services.routes import route_key

    today = timezone.localdate()
    open_cases = dict(
        Case.objects.filter(record=record, is_open=True).values_list("kind", "reference")
    )
    options = []
    for kind in (Case.Kind.OBJECTION, Case.Kind.REPAIR):
        if kind in open_cases:
            reference = open_cases[kind]
            options.append(
                FilingOption(
                    kind=kind,
                    allowed=False,
                    reason=_("A case of this kind about this record is already open (%(ref)s).")
                    % {"ref": reference},
                    # The record is the user's to see, and so are the cases about it.
                    open_case=reference,
                )
            )
            continue
        if kind == Case.Kind.REPAIR:
            try:
                definition = definition_of(
                    definition_row_in_force(
                        route_key(record.agency.jurisdiction, kind, record), today
                    )
                )
                _repair_guards(record, definition, today)
            except FilingRefused as refusal:
                earliest = refusal.extra.get("earliest")
                options.append(
                    FilingOption(
                        kind=kind,
                        allowed=False,
                        reason=refusal.message,
                        earliest=date.fromisoformat(earliest) if earliest else None,
                    )
                )
                continue
        options.append(FilingOption(kind=kind, allowed=True))
    return options
