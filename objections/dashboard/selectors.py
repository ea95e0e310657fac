"""Reads for the staff dashboard: which cases a member of staff may work, the queue and its
filters, and each case's clock badge.

One function decides scope (`staff_case_list`): the cases of the user's agency (handled by it,
or about records it provided), a review body's cases (a DRC or PBoC branch, in the workflows
that name it), and single cases granted to the user (`CaseUserObjectPermission`: a consultation,
an auditor's time-limited grant). Administrators see every case. Everything else is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from django.utils.translation import get_language as translation_language
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from objections.models import Case, Clock
from objections.selectors import case_granted, staff_scope
from records.crypto import identifier_hash
from records.identifiers import InvalidIdentifier, normalise_identifier, validate_identifier
from records.models import Subject
from scs_cases.pagination import Key

NO_DEADLINE = date(9999, 12, 31)
QUEUE_KEYS = (Key("due_key"), Key("id"))
# What a queue row shows (page and API): only these columns are read.
QUEUE_COLUMNS = (
    "id",
    "reference",
    "kind",
    "state",
    "is_open",
    "next_due_on",
    "filed_at",
    "lock_version",
    "record",
    "subject",
    "assignee",
    "responsible_agency",
    "record__public_id",
    "record__title",
    "record__agency",
    "record__category",
    "record__agency__code",
    "record__category__code",
    "subject__name",
    "subject__identifier_masked",
    "assignee__username",
    "responsible_agency__code",
)


def _badge_clocks() -> Prefetch[Any]:
    return Prefetch(
        "clocks",
        queryset=Clock.objects.filter(
            status__in=(Clock.Status.RUNNING, Clock.Status.PAUSED)
        ).order_by("due_on", "id"),
        to_attr="live_clocks",
    )


def staff_case_list(*, user: User) -> QuerySet[Case]:
    """Every case `user` may open in the dashboard (open or closed), unordered."""
    cases = Case.objects.select_related(
        "record__agency", "record__category", "subject", "assignee", "responsible_agency"
    )
    scope = staff_scope(user)
    if scope is None:
        return cases
    return cases.filter(scope | Q(case_granted(user)))


def staff_case_get(*, user: User, reference: str) -> Case:
    """One case in the user's dashboard scope, or a 404."""
    try:
        return (
            staff_case_list(user=user)
            .select_related("record__agency__jurisdiction", "workflow", "jurisdiction")
            .get(reference=reference.strip().upper())
        )
    except (Case.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such case.") from error


# --- the queue ----------------------------------------------------------------------------------

VIEWS = {
    "mine": _("Mine"),
    "team": _("My team's"),
    "agency": _("My agency's"),
}


class QueueFilterInvalid(ValueError):
    """A filter value the queue does not know, with the field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class QueueFilters:
    view: str = "mine"
    state: str = ""
    kind: str = ""
    jurisdiction: str = ""  # jurisdiction code
    agency: int | None = None  # the agency that provided the record
    category: int | None = None  # catalogue entry
    assignee: str = ""  # a user id, or "none" for unassigned
    q: str = ""  # a case reference or a subject's exact identifier
    errors: dict[str, str] = field(default_factory=dict)


def _int_or_none(raw: str, name: str) -> int | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise QueueFilterInvalid(name, str(_("Choose a value from the list."))) from error


def queue_filters_from(params: object) -> QueueFilters:
    """Read the queue's filters from a QueryDict-like `params` (page or API)."""
    get = params.get  # type: ignore[attr-defined]
    view = get("view") or "mine"
    if view not in VIEWS:
        raise QueueFilterInvalid("view", str(_("Choose mine, team or agency.")))
    kind = get("kind") or ""
    if kind and kind not in Case.Kind.values:
        raise QueueFilterInvalid("kind", str(_("Choose a value from the list.")))
    assignee = get("assignee") or ""
    if assignee and assignee != "none":
        _int_or_none(assignee, "assignee")
    return QueueFilters(
        view=view,
        state=(get("state") or "").strip()[:32],
        kind=kind,
        jurisdiction=(get("jurisdiction") or "").strip()[:32],
        agency=_int_or_none(get("agency") or "", "agency"),
        category=_int_or_none(get("category") or "", "category"),
        assignee=assignee,
        q=(get("q") or "").strip()[:64],
    )


def _search(text: str) -> Q:
    """A case reference, or a subject's identifier matched through its keyed hash (never a
    scan of clear text): the subjects are found first by the hash's unique index, then their
    cases. Text that is neither matches nothing."""
    value = normalise_identifier(text)
    hashes = []
    for kind in (Subject.Kind.PERSON, Subject.Kind.ORGANISATION):
        try:
            hashes.append(identifier_hash(kind, validate_identifier(kind, value)))
        except InvalidIdentifier:
            continue
    found = Q(reference=value)
    if hashes:
        subjects = list(
            Subject.objects.filter(identifier_hash__in=hashes).values_list("pk", flat=True)
        )
        if subjects:
            found |= Q(subject_id__in=subjects)
    return found


def queue_for_user(*, user: User, filters: QueueFilters) -> QuerySet[Case]:
    """The open cases of one of the user's queues, filtered, ordered by remaining statutory
    time (the earliest running deadline first; cases with no running deadline last)."""
    cases = staff_case_list(user=user).filter(is_open=True)
    if filters.view == "mine":
        cases = cases.filter(assignee_id=user.pk)
    elif filters.view == "team" and user.agency_id is not None:
        cases = cases.filter(responsible_agency_id=user.agency_id)
    elif filters.view == "team":
        cases = cases.none()
    if filters.state:
        cases = cases.filter(state=filters.state)
    if filters.kind:
        cases = cases.filter(kind=filters.kind)
    if filters.jurisdiction:
        cases = cases.filter(jurisdiction__code=filters.jurisdiction)
    if filters.agency is not None:
        cases = cases.filter(record__agency_id=filters.agency)
    if filters.category is not None:
        cases = cases.filter(record__category_id=filters.category)
    if filters.assignee == "none":
        cases = cases.filter(assignee__isnull=True)
    elif filters.assignee:
        cases = cases.filter(assignee_id=int(filters.assignee))
    if filters.q:
        cases = cases.filter(_search(filters.q))
    return (
        cases.annotate(due_key=Coalesce("next_due_on", Value(NO_DEADLINE)))
        .only(*QUEUE_COLUMNS)
        .prefetch_related(_badge_clocks())
    )


# --- clock badges -------------------------------------------------------------------------------

BADGES = {
    "on_track": _("On track"),
    "at_risk": _("At risk"),
    "overdue": _("Overdue"),
    "paused": _("Paused"),
    "none": _("No deadline running"),
}


@dataclass(frozen=True)
class Badge:
    status: str
    label: str
    due_on: date | None
    provisional: bool


def clock_badge(case: Case, *, today: date | None = None) -> Badge:
    """How the case stands against its statutory time, from its live clocks (prefetched by
    the queue as `live_clocks`): overdue past the earliest running deadline, at risk once 80 %
    of it is used (its reminder day), paused when only paused clocks remain; `provisional`
    when a running deadline was counted without the year's official schedule."""
    today = today or timezone.localdate()
    live = getattr(case, "live_clocks", None)
    if live is None:
        live = list(
            case.clocks.filter(status__in=(Clock.Status.RUNNING, Clock.Status.PAUSED)).order_by(
                "due_on", "id"
            )
        )
    running = [clock for clock in live if clock.status == Clock.Status.RUNNING]
    provisional = any(clock.provisional for clock in running)
    if running:
        first = min(running, key=lambda clock: (clock.due_on, clock.pk))
        if first.due_on < today:
            status = "overdue"
        elif first.remind_on <= today:
            status = "at_risk"
        else:
            status = "on_track"
        return Badge(status, str(BADGES[status]), first.due_on, provisional)
    if live:
        return Badge("paused", str(BADGES["paused"]), None, False)
    return Badge("none", str(BADGES["none"]), None, False)


@dataclass(frozen=True)
class FilterChoices:
    states: list[tuple[str, str]]  # (code, label in the request's language)
    kinds: list[tuple[str, str]]
    jurisdictions: list[tuple[str, str]]
    agencies: list[tuple[int, str]]
    categories: list[tuple[int, str]]
    assignees: list[tuple[int, str]]


CHOICES_SECONDS = 60


def queue_filter_choices(*, user: User) -> FilterChoices:
    """The values each queue filter offers. Those shared by everyone (states, jurisdictions,
    agencies, categories) are kept a minute in the shared cache, per language; the assignees
    are the user's agency's, read each time (one query)."""
    from objections.services.assignment import assignable_users

    language = translation_language() or ""
    key = f"dashboard:queue-choices:{language}"
    shared = cache.get(key)
    if shared is None:
        shared = _shared_choices(chinese=language.startswith("zh"))
        cache.set(key, shared, CHOICES_SECONDS)
    return FilterChoices(
        **shared,
        assignees=[
            (person.pk, person.get_username())
            for person in (assignable_users(agency_id=user.agency_id) if user.agency_id else [])
        ],
    )


def _shared_choices(*, chinese: bool) -> dict[str, Any]:
    from objections.models import WorkflowDefinition
    from objections.services.definitions import definition_of
    from records.models import Agency, CatalogueEntry, Jurisdiction

    states: dict[str, str] = {}
    for row in (
        WorkflowDefinition.objects.filter(is_current=True)
        .order_by("key")
        .only("pk", "key", "source_text", "source_hash")
    ):
        for code, state in definition_of(row).states.items():
            states.setdefault(code, state.label_zh if chinese else state.label_en)
    jurisdictions = [
        (code, name_zh if chinese else name_en)
        for code, name_zh, name_en in Jurisdiction.objects.order_by("code").values_list(
            "code", "name_zh", "name_en"
        )
    ]
    agencies = Agency.objects.order_by("jurisdiction__code", "code")
    categories = CatalogueEntry.objects.order_by("jurisdiction__code", "code")
    return {
        "states": sorted(states.items()),
        "kinds": [(value, str(label)) for value, label in Case.Kind.choices],
        "jurisdictions": jurisdictions,
        "agencies": list(agencies.values_list("pk", "code")),
        "categories": [
            (pk, f"{jurisdiction} · {code}")
            for pk, jurisdiction, code in categories.values_list("pk", "jurisdiction__code", "code")
        ],
    }
