"""Hypothesis state machines over the real case services and the database, one per definition.

tests/objections/test_workflow_machine.py walks the pure engine; these machines drive
`case_file`, `case_route`, `case_transition`, `case_approval_decide` and `clocks_sweep` against
the database. Each example files and routes a case on a fresh record (with a fresh subject granted
to the applicant) inside a savepoint that is rolled back afterwards, under a clock that only the
machine moves (the clock is frozen with time-machine; "today" starts on START and jumps forward).

Each machine files on a record that the built-in routes send to its definition (FILINGS): held
by an agency of a jurisdiction routed there (of the kind the route names, if any), under a
catalogue entry of the kind of information the route wants; deletions are filed by the staff of
the agency that provided the record. A definition that only a superseding one's earlier cases
reach (national-repair-2023) is filed on a day before its successor's `effective_from`.

Rules: try any transition name of the definition by any of the people around a case (the
applicant; the caseworker and supervisor of the jurisdiction's credit centre, of the record's
agency, of its development and reform commission and of its PBoC branch, with a second DRC
supervisor; an unrelated citizen) with any mix of fields and documents; take a step some person
is offered, with its fields and all, some or none of the documents it needs; approve or reject a
pending approval as anyone; move "today" on and sweep the clocks. The roles each person holds
follow from the definition (`responsible`: the credit centre, or the record's agency).

What holds after every step (each rule predicts its result from the definition before the call):

1. A call succeeds exactly when the transition leaves the current state, one of the roles the
   actor holds (`case_roles_for`) may take it, its required fields are present, every document
   given is one the definition declares with a reference of 1 to 200 characters, every document
   the step needs is on the case's checklist or given with it, and the definition's guards allow
   it (wait_for_timer, max_reviews); a refused call raises the predicted domain error and
   changes nothing (case, record, clocks, pauses, approvals, checklist, escalations, audit
   events); a refused filing creates no case and writes no event. A second-person step is
   recorded as a pending approval unless one already awaits in the current state; an approval
   is decided only by someone else holding an approver role, while the case is still in the
   state it was requested in. The checklist holds the documents given at filing and those given
   with each step applied (for a second-person step: approved), and nothing else.
2. Each step taken writes one `case.transitioned` event whose from/to is a defined edge, followed
   by the automatic system steps the definition implies (each with its own event); the record
   events are exactly those the steps' effects imply.
3. A terminal case changes only through a transition in `reopen_by_review`.
4. An open case has running clocks for exactly the timers of its state, unless the state is
   `untimed` (the clock is paused while the applicant gathers material); a closed case has none.
   A deadline never moves earlier.
5. The record's `under_objection` mark follows the mark/unmark effects taken, and matches the
   state where the definition fixes it (MARKED below).
6. The sweep never changes a case; it escalates only clocks whose timer escalates, once each, and
   sweeping again changes nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import pytest
import time_machine
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from time_machine import TimeMachineFixture

from accounts.models import User
from audit.models import AuditEvent
from objections.exceptions import (
    CaseConflict,
    ExtensionRefused,
    FilingRefused,
    MissingFields,
    RoleNotAllowed,
    TransitionNotAvailable,
)
from objections.models import Case, CaseDocument, Clock, Escalation, PendingApproval
from objections.services import (
    TransitionInput,
    case_approval_decide,
    case_file,
    case_roles_for,
    case_route,
    case_transition,
    clocks_sweep,
    definition_of,
)
from objections.services.routes import builtin_routes
from objections.workflow import Definition, Transition, load_builtin
from records.models import Agency, CatalogueEntry, CreditRecord
from records.services import subject_access_grant
from tests.factories import (
    CreditRecordFactory,
    SubjectFactory,
    UserFactory,
)
from tests.objections.conftest import World

BUILTIN = load_builtin()
DOMAIN_ERRORS = (
    TransitionNotAvailable,
    RoleNotAllowed,
    MissingFields,
    CaseConflict,
    ExtensionRefused,
    FilingRefused,
)
# The machine's own "now": a Monday in a year the holiday package covers, so that no deadline
# (at most 12 jumps of 10 days, then 30 calendar days or 25 working days) leaves 2026.
START = datetime(2026, 6, 1, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
# A Monday before national-repair's effective_from (2026-04-01): a national repair filed then
# runs under the definition it supersedes, and its deadlines still end in 2026.
START_BEFORE_ORDER_36 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Post:
    body: str  # centre, record (the record's agency), drc, pboc
    position: str  # the user's role group: caseworker or supervisor
    rank: int = 0  # the first, second... person in that post


# The people around a case: the applicant, an unrelated citizen, and the staff of every body a
# workflow may name.
STAFF_POSTS = {
    "centre_caseworker": Post("centre", "caseworker"),
    "centre_supervisor": Post("centre", "supervisor"),
    "agency_caseworker": Post("record", "caseworker"),
    "agency_supervisor": Post("record", "supervisor"),
    "drc_caseworker": Post("drc", "caseworker"),
    "drc_supervisor": Post("drc", "supervisor"),
    "second_drc_supervisor": Post("drc", "supervisor", rank=1),
    "pboc_caseworker": Post("pboc", "caseworker"),
    "pboc_supervisor": Post("pboc", "supervisor"),
}
PEOPLE = ("applicant", *STAFF_POSTS, "unrelated_citizen")
# The workflow role a post at a reviewing body or at the record's agency gives, before its
# position (agency_caseworker, drc_supervisor...).
BODY_ROLES = {"record": "agency", "drc": "drc", "pboc": "pboc_branch"}


def roles_held(definition: Definition, filer: str) -> dict[str, tuple[str, ...]]:
    """The roles each person holds on a case of `definition`, in `case_roles_for`'s order: the
    responsible agency's (the credit centre's, or the record agency's where the definition says
    `responsible: record_agency`), then the record agency's, then a reviewing body's; the person
    who filed the case, and the applicant, act for the subject (citizen)."""
    responsible = "record" if definition.responsible == "record_agency" else "centre"
    held: dict[str, tuple[str, ...]] = {"applicant": ("citizen",), "unrelated_citizen": ()}
    for who, post in STAFF_POSTS.items():
        roles = [post.position] if post.body == responsible else []
        if post.body in BODY_ROLES:
            roles.append(f"{BODY_ROLES[post.body]}_{post.position}")
        held[who] = (*roles, "citizen") if who == filer else tuple(roles)
    return held


@dataclass(frozen=True)
class Filing:
    """How a machine's cases are filed so that the built-in routes lead to its definition."""

    # The records filed on: the agency holding one (its jurisdiction is the case's) and its
    # catalogue entry, whose kind of information the route wants.
    records: tuple[tuple[str, str], ...]
    filers: tuple[str, ...] = ("applicant",)
    start: datetime = START

    @property
    def agencies(self) -> list[str]:
        return sorted({agency for agency, _ in self.records})

    @property
    def categories(self) -> list[str]:
        return sorted({category for _, category in self.records})


def held_by(agency: str, *categories: str) -> tuple[tuple[str, str], ...]:
    """Records of `agency` under each of `categories`."""
    return tuple((agency, category) for category in categories)


# The national catalogue of the demo registry lists no serious-dishonesty list a subject can be
# taken off by repair (the court's list is not repairable): the machine adds one.
SERIOUS_LIST = "serious-dishonesty-list"
FILINGS = {
    # National: public credit information goes to Credit China, credit-reporting data (held by
    # the PBoC's credit reference centre) to the PBoC procedure. Penalties published on Credit
    # China are repaired there, Shanghai's too; before 1 April 2026 under Order No. 58.
    "credit-china-objection": Filing(
        held_by("national-market", "penalty-general", "tax-arrears", "court-dishonest")
    ),
    "pboc-objection": Filing(held_by("national-credit-service", "credit-loan-overdue")),
    "national-repair": Filing(
        held_by("national-market", "penalty-general", "penalty-serious", "tax-arrears")
        + held_by("shanghai-market", "penalty-general", "penalty-serious")
    ),
    "national-repair-2023": Filing(
        held_by("national-market", "penalty-general", "penalty-serious", "tax-arrears")
        + held_by("shanghai-market", "penalty-general"),
        start=START_BEFORE_ORDER_36,
    ),
    "national-list-removal": Filing(held_by("national-market", SERIOUS_LIST)),
    # Shanghai: a credit service agency's data has its own objection procedure; a deletion is
    # notified by the unit that provided the record.
    "shanghai-objection": Filing(
        held_by("shanghai-market", "penalty-general", "sh-social-insurance-arrears")
    ),
    "shanghai-credit-service-objection": Filing(
        held_by("shanghai-credit-service", "credit-loan-overdue")
    ),
    "shanghai-repair": Filing(
        held_by("shanghai-market", "sh-social-insurance-arrears", "tax-arrears")
    ),
    "shanghai-revocation-deletion": Filing(
        held_by("shanghai-market", "penalty-general", "sh-social-insurance-arrears"),
        filers=("agency_caseworker", "agency_supervisor"),
    ),
    "zhejiang-objection": Filing(held_by("zhejiang-market", "penalty-general", "tax-arrears")),
    "zhejiang-repair": Filing(held_by("zhejiang-market", "penalty-general", "tax-arrears")),
    "hubei-objection": Filing(held_by("hubei-market", "penalty-general", "tax-arrears")),
    "hubei-repair": Filing(held_by("hubei-market", "penalty-general", "tax-arrears")),
}
# The guards of a repair filing a definition may declare; one it does not declare is reported as
# not enforced.
REPAIR_GUARDS = ("serious_list_blocks_repair", "no_new_record_of_same_type")
GROUNDS = {
    Case.Kind.OBJECTION: Case.Grounds.INACCURATE,
    Case.Kind.REPAIR: Case.Grounds.PERIOD_ENDED,
    Case.Kind.DELETION: Case.Grounds.DECISION_REVOKED,
}
# The effect that grants the remedy asked for, which tells automatic execution steps apart.
REMEDY_EFFECT = {
    Case.Remedy.CORRECT: "apply_correction",
    Case.Remedy.DELETE: "delete_record",
    Case.Remedy.END_PUBLICATION: "end_publication",
    Case.Remedy.ANNOTATE: "annotate_repaired",
}
CORRECTION = {"title": "更正后的标题"}
# A document's reference as the person taking a step records it; and references refused.
REFERENCE = "文书编号 2026-017"
UNLISTED_DOCUMENT = "unlisted_document"
BAD_REFERENCES = ("  ", "号" * 201)

# The record's mark by case state, read from each definition's mark/unmark effects. Objections
# mark on the first step and unmark on every way to `closed` or `withdrawn`, with two departures:
# Zhejiang's DRC review reopens the case without marking the record again, and in PBoC credit
# reporting a case closed "kept with note" (notify_unresolved) keeps the mark, so there `closed`,
# `complaint_review` and `correction_ordered` depend on the way the case came (the machine's
# effect model still checks them). Repairs and deletions never mark.
_SHANGHAI_LIKE = {
    "received": False,
    "marked": True,
    "under_review": True,
    "provider_review": True,
    "decided_granted": True,
    "decided_refused": True,
    "executing": True,
    "closed": False,
    "withdrawn": False,
}
MARKED: dict[str, dict[str, bool]] = {
    "shanghai-objection": _SHANGHAI_LIKE,
    "hubei-objection": _SHANGHAI_LIKE,
    "credit-china-objection": {
        "received": False,
        "marked": True,
        "authority_review": True,
        "decided_granted": True,
        "decided_refused": True,
        "executing": True,
        "closed": False,
        "withdrawn": False,
    },
    "shanghai-credit-service-objection": {
        "received": False,
        "under_review": True,
        "decided_granted": True,
        "decided_refused": True,
        "executing": True,
        "closed": False,
        "withdrawn": False,
    },
    "zhejiang-objection": {
        "received": False,
        "under_review": True,
        "decided_granted": True,
        "decided_refused": True,
        "executing": True,
        "closed": False,
        "drc_review": False,
        "withdrawn": False,
    },
    "pboc-objection": {
        "received": False,
        "under_review": True,
        "decided_granted": True,
        "decided_refused": True,
        "decided_unresolved": True,
        "executing": True,
        "withdrawn": False,
    },
    **{
        key: dict.fromkeys(definition.states, False)
        for key, definition in BUILTIN.items()
        if definition.case_kind != Case.Kind.OBJECTION
    },
}


@dataclass(frozen=True)
class Staff:
    centre_caseworker: User
    centre_supervisor: User
    agency_caseworker: User
    agency_supervisor: User
    drc_caseworker: User
    drc_supervisor: User
    second_drc_supervisor: User
    pboc_caseworker: User
    pboc_supervisor: User

    def people(self) -> dict[str, User]:
        return {who: getattr(self, who) for who in STAFF_POSTS}


def staff_for(world: World, record_agency: str) -> Staff:
    """The staff around a case about a record of `record_agency`: the agency's own and those of
    its jurisdiction's credit centre, development and reform commission and PBoC branch. Each
    post is held by the agency's users of that role in the order they were made (the world's
    people first), made here when there are too few."""
    jurisdiction = Agency.objects.values_list("jurisdiction__code", flat=True).get(
        code=record_agency
    )
    agencies = {
        "centre": f"{jurisdiction}-credit-centre",
        "record": record_agency,
        "drc": f"{jurisdiction}-drc",
        "pboc": f"{jurisdiction}-pboc",
    }

    def person(post: Post) -> User:
        agency = Agency.objects.get(code=agencies[post.body])
        users = list(User.objects.filter(agency=agency, groups__name=post.position).order_by("id"))
        while len(users) <= post.rank:
            username = f"{agency.code}-{post.position}-{len(users) + 1}"
            users.append(
                UserFactory.create(
                    username=username,
                    role=post.position,
                    agency=agency,
                    email=f"{username}@example.org",
                )
            )
        return users[post.rank]

    return Staff(**{who: person(post) for who, post in STAFF_POSTS.items()})


def catalogue_entry(code: str) -> CatalogueEntry:
    """An entry of the demo registry's catalogue."""
    return CatalogueEntry.objects.get(code=code)


# --- what the machine expects of a call --------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    error: type[Exception] | None  # None: any domain error will do
    why: str
    # The error's details where predicted; a mapping's keys stand for it (`errors` by document).
    extra: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Requested:
    transition: Transition


@dataclass(frozen=True)
class Rejected:
    pass


@dataclass(frozen=True)
class Applied:
    steps: tuple[Transition, ...]  # the step taken, then the automatic ones


Expected = Refused | Requested | Rejected | Applied

_record_numbers = itertools.count(1)


def transition_input(
    *,
    reasons: bool,
    outcome: str,
    material_request: bool,
    statement: bool,
    extension_reason: bool,
    extension_days: int,
    remedy: str,
    correction: bool,
    documents: dict[str, str],
) -> TransitionInput:
    return TransitionInput(
        reasons="经核查，理由如下" if reasons else "",
        outcome=outcome,
        material_request="请补充缴款凭证" if material_request else "",
        statement="对处理结果有异议" if statement else "",
        extension_reason="案情复杂" if extension_reason else "",
        extension_days=extension_days,
        remedy=remedy,
        correction=dict(CORRECTION) if correction else {},
        documents=documents,
    )


GRANTING = (Case.Outcome.GRANTED, Case.Outcome.PARTLY_GRANTED)


def remedies_of(definition: Definition, step: Transition) -> list[str]:
    """The remedies a granting step may decide: the record effect it applies itself, else those
    of the undeciding steps that follow it, however far (Zhejiang's public notice)."""
    by_effect = {effect: remedy for remedy, effect in REMEDY_EFFECT.items()}
    own = [by_effect[e] for e in step.effects if e in by_effect]
    if own:
        return own
    found: set[str] = set()
    states = [step.target]
    for state in states:
        for t in definition.transitions_from(state):
            if not t.outcomes:
                found.update(by_effect[e] for e in t.effects if e in by_effect)
                if t.target not in states and not definition.is_terminal(t.target):
                    states.append(t.target)
    return sorted(found)


def details(error: Exception) -> dict[str, Any]:
    """A domain error's details as `Refused.extra` predicts them."""
    extra: Mapping[str, Any] = getattr(error, "extra", {})
    return {
        name: sorted(value) if isinstance(value, Mapping) else value
        for name, value in extra.items()
    }


def documents_refusal(definition: Definition, documents: Mapping[str, str]) -> Refused | None:
    """Why documents given with a filing or a step cannot be recorded: a key the definition does
    not declare, or a reference blank or over 200 characters."""
    refused = sorted(
        key
        for key, reference in documents.items()
        if key not in definition.documents or not 0 < len(reference.strip()) <= 200
    )
    if refused:
        return Refused(
            FilingRefused, f"documents {refused} cannot be recorded", {"errors": refused}
        )
    return None


def minimum_months(definition: Definition, entry: CatalogueEntry) -> int:
    """How long a record must have been published before its repair can be applied for: the
    catalogue entry's minimum, or the definition's for its severity when longer (for penalties,
    the definition's penalty tiers where it has them)."""
    tiers = definition.guards.get("min_publication_months_by_severity")
    if entry.information_kind == CatalogueEntry.InformationKind.PENALTY:
        tiers = definition.guards.get("penalty_min_publication_months_by_severity", tiers)
    by_severity = int(tiers.get(entry.severity, 0)) if isinstance(tiers, Mapping) else 0
    return max(entry.publication_min_months, by_severity)


def machine_for(key: str) -> type[RuleBasedStateMachine]:
    definition: Definition = BUILTIN[key]
    filing = FILINGS[key]
    names = sorted({t.name for t in definition.transitions})
    marked_by_state = MARKED[key]
    max_reviews = definition.guards.get("max_reviews")
    wait_guard = definition.guards.get("wait_for_timer")
    waits = dict(wait_guard) if isinstance(wait_guard, Mapping) else {}
    document_keys = sorted(definition.documents)
    # Documents given with any step: none, or a mix of declared and undeclared keys with good,
    # blank and over-long references.
    documents_given: st.SearchStrategy[dict[str, str]] = st.one_of(
        st.just({}),
        st.dictionaries(
            st.sampled_from([*document_keys, UNLISTED_DOCUMENT]),
            st.sampled_from((REFERENCE, REFERENCE, *BAD_REFERENCES)),
            min_size=1,
            max_size=len(document_keys) + 1,
        ),
    )
    # Documents given at filing: mostly none, so that steps must bring them.
    filed_documents = (
        st.one_of(st.just(frozenset[str]()), st.frozensets(st.sampled_from(document_keys)))
        if document_keys
        else st.just(frozenset[str]())
    )
    # What makes a filing fail, tried before the filing that succeeds ("": nothing tried).
    repair = definition.case_kind == Case.Kind.REPAIR
    deletion = definition.case_kind == Case.Kind.DELETION
    filing_refusals = ["", "unlisted_document", "blank_reference"]
    if deletion:
        filing_refusals.append("not_the_providing_unit")

    class CaseMachine(RuleBasedStateMachine):
        world: ClassVar[World]
        staff: ClassVar[dict[str, Staff]]
        categories: ClassVar[dict[str, CatalogueEntry]]

        def __init__(self) -> None:
            super().__init__()
            self.savepoint: str | None = None
            self.clock_patch: Any = None
            self.days = 0

        # --- set-up and tear-down: one record and one case per example, rolled back after

        @initialize(
            holding=st.sampled_from(filing.records),
            filer=st.sampled_from(filing.filers),
            documents=filed_documents,
            refusal=st.sampled_from(filing_refusals),
            # Who tries to notify a revocation without being the providing unit's staff.
            outsider=st.sampled_from(("applicant", "centre_caseworker", "drc_supervisor"))
            if deletion
            else st.just(""),
            recent=st.booleans() if repair else st.just(False),
            newer_record=st.booleans() if repair else st.just(False),
            remedy=st.sampled_from(Case.Remedy.values),
            with_correction=st.booleans(),
        )
        def file_and_route(
            self,
            holding: tuple[str, str],
            filer: str,
            documents: frozenset[str],
            refusal: str,
            outsider: str,
            recent: bool,
            newer_record: bool,
            remedy: str,
            with_correction: bool,
        ) -> None:
            self.savepoint = transaction.savepoint()
            self.clock_patch = time_machine.travel(self.now(), tick=False)
            self.clock = self.clock_patch.start()
            world = self.world
            self.people: dict[str, User] = {
                "applicant": world.citizen,
                **self.staff[holding[0]].people(),
                "unrelated_citizen": world.other_citizen,
            }
            self.held = roles_held(definition, filer)
            subject = SubjectFactory()
            subject_access_grant(subject=subject, user=world.citizen, actor=None)
            agency, entry = Agency.objects.get(code=holding[0]), self.categories[holding[1]]
            # A repair of a record decided half a year ago waits for a longer minimum period.
            decided = self.today() - timedelta(days=183) if recent else date(2024, 1, 10)
            record = CreditRecordFactory(
                agency=agency,
                subject=subject,
                record_number=f"MACHINE-{key}-{next(_record_numbers)}",
                category=entry,
                decision_date=decided,
                conduct_ended_on=date(2024, 1, 1),
                publication_start=decided,
                publication_end=date(2027, 1, 10),
                retention_end=date(2029, 1, 1),
            )
            self.remedy = remedy
            self.correction = dict(CORRECTION) if with_correction else {}
            # The decision in force: the remedy and the values it decided.
            self.decided_remedy = ""
            self.decided_correction: dict[str, str] = {}
            given = dict.fromkeys(documents, REFERENCE)

            def file(who: str, given: dict[str, str]) -> Case:
                return case_file(
                    actor=self.people[who],
                    record=record,
                    kind=definition.case_kind,
                    grounds=GROUNDS[Case.Kind(definition.case_kind)],
                    statement="记录有误",
                    requested_remedy=remedy,
                    correction=self.correction,
                    documents=given,
                )

            def refused(who: str, given: dict[str, str], expected: Refused) -> None:
                events = AuditEvent.objects.count()
                with pytest.raises(FilingRefused) as error:
                    file(who, given)
                if expected.extra is not None:
                    assert details(error.value) == expected.extra, (error.value, expected)
                assert not Case.objects.filter(record=record).exists()
                assert AuditEvent.objects.count() == events

            # What the filing must get past first, each refused and then put right.
            if newer_record:
                newer = CreditRecordFactory(
                    agency=record.agency,
                    subject=subject,
                    record_number=f"MACHINE-{key}-{next(_record_numbers)}",
                    category=entry,
                    decision_date=decided + timedelta(days=30),
                    conduct_ended_on=decided,
                    publication_start=decided + timedelta(days=30),
                )
                # Only where the definition declares the guard (otherwise the filing reports it
                # as not enforced).
                if definition.guards.get("no_new_record_of_same_type"):
                    refused(filer, given, Refused(FilingRefused, "a newer record of that type"))
                    newer.delete()
            if recent and minimum_months(definition, entry) > 6:
                refused(filer, given, Refused(FilingRefused, "the minimum period has not run"))
                CreditRecord.objects.filter(pk=record.pk).update(
                    decision_date=date(2024, 1, 10), publication_start=date(2024, 1, 10)
                )
            if refusal == "not_the_providing_unit":
                refused(outsider, given, Refused(FilingRefused, "not the providing unit", {}))
            elif refusal:
                wrong = dict(given)
                if refusal == "unlisted_document" or not document_keys:
                    wrong[UNLISTED_DOCUMENT] = REFERENCE
                else:
                    wrong[document_keys[0]] = " "
                expected = documents_refusal(definition, wrong)
                assert expected is not None
                refused(filer, wrong, expected)

            case = file(filer, given)

            self.case_id, self.record_id, self.reference = case.pk, record.pk, case.reference
            self.marked, self.record_version = False, record.version
            self.record_status, self.repaired = record.status, False
            self.reviews = 0
            self.due_seen: dict[int, date] = {}
            self.visited: set[str] = set()
            self.state = Case.FILED
            # The case's checklist: document key -> (reference, recorded with, recorded by).
            self.checklist: dict[str, tuple[str, str, int]] = {
                document: (REFERENCE, "filed", self.people[filer].pk) for document in documents
            }
            filed = AuditEvent.objects.filter(case_reference=self.reference).order_by("sequence")
            assert [e.action for e in filed] == ["case.filed"]
            assert filed[0].payload.get("documents", []) == sorted(documents)
            unenforced = [guard for guard in REPAIR_GUARDS if guard not in definition.guards]
            assert filed[0].payload.get("guards_not_enforced", []) == (unenforced if repair else [])
            sequence = self.last_event_sequence()

            case = case_route(case_id=case.pk)

            # The route led here, and the responsible agency is the one the definition names.
            assert case.workflow is not None
            assert case.workflow.key == key
            responsible = (
                agency.code
                if definition.responsible == "record_agency"
                else f"{case.jurisdiction.code}-credit-centre"
            )
            assert case.responsible_agency is not None
            assert case.responsible_agency.code == responsible
            steps = self.automatic_from(definition.initial)
            expected_events = [("case.routed", None, None, None)]
            expected_events += self.effects_and_events(steps)
            assert self.events_since(sequence) == expected_events
            self.state = steps[-1].target if steps else definition.initial
            assert case.state == self.state
            for who, person in self.people.items():
                assert case_roles_for(user=person, case=case) == self.held[who], who

        def teardown(self) -> None:
            if self.clock_patch is not None:
                self.clock_patch.stop()
            if self.savepoint is not None:
                transaction.savepoint_rollback(self.savepoint)

        def now(self) -> datetime:
            return filing.start + timedelta(days=self.days)

        def today(self) -> date:
            return timezone.localdate()

        # --- reading the database

        def case(self) -> Case:
            return Case.objects.select_related("record").get(pk=self.case_id)

        def last_event_sequence(self) -> int:
            found = AuditEvent.objects.filter(case_reference=self.reference).order_by("-sequence")
            return found.values_list("sequence", flat=True).first() or 0

        def events_since(self, sequence: int) -> list[tuple[str, str | None, Any, Any]]:
            found = AuditEvent.objects.filter(
                case_reference=self.reference, sequence__gt=sequence
            ).order_by("sequence")
            events = []
            for event in found:
                if event.action == "case.transitioned":
                    payload = event.payload
                    events.append(
                        (event.action, payload["transition"], payload["from"], payload["to"])
                    )
                else:
                    events.append((event.action, None, None, None))
            return events

        def clocks(self) -> list[tuple[Any, ...]]:
            """The case's clocks with their escalation and their pauses (all, open)."""
            return list(
                Clock.objects.filter(case_id=self.case_id)
                .annotate(
                    pauses_count=Count("pauses"),
                    pauses_open=Count("pauses", filter=Q(pauses__ended_at__isnull=True)),
                )
                .order_by("id")
                .values_list(
                    "id",
                    "timer",
                    "status",
                    "due_on",
                    "extended_by",
                    "on_expiry",
                    "reminded_at",
                    "escalated_at",
                    "escalation__id",
                    "pauses_count",
                    "pauses_open",
                )
            )

        def snapshot(self) -> dict[str, Any]:
            case = self.case()
            record = case.record
            return {
                "case": (
                    case.state,
                    case.lock_version,
                    case.is_open,
                    case.outcome,
                    case.reasons,
                    case.next_due_on,
                    case.closed_at,
                ),
                "record": (
                    record.under_objection,
                    record.version,
                    record.status,
                    record.repaired_at,
                    record.title,
                ),
                "events": AuditEvent.objects.filter(case_reference=self.reference).aggregate(
                    count=Count("sequence"), last=Max("sequence")
                ),
                "clocks": self.clocks(),
                "approvals": list(
                    PendingApproval.objects.filter(case_id=self.case_id)
                    .order_by("id")
                    .values_list("id", "approved", "decided_by_id")
                ),
                "documents": self.documents(),
            }

        def documents(self) -> dict[str, tuple[str, str, int | None]]:
            """The case's checklist, as `self.checklist` models it."""
            found = CaseDocument.objects.filter(case_id=self.case_id).values_list(
                "key", "reference", "transition", "recorded_by_id"
            )
            return {key: (reference, step, by) for key, reference, step, by in found}

        # --- what the definition implies

        def automatic_from(self, state: str) -> list[Transition]:
            """The system steps the service takes by itself from `state` (remedy tells apart)."""
            steps: list[Transition] = []
            for _ in definition.states:
                if definition.is_terminal(state):
                    break
                system = [t for t in definition.transitions_from(state) if "system" in t.roles]
                if len(system) > 1:
                    wanted = REMEDY_EFFECT.get(Case.Remedy(self.decided_remedy or "correct"))
                    if not self.decided_remedy:
                        wanted = None
                    system = [t for t in system if wanted in t.effects]
                if len(system) != 1:
                    break
                steps.append(system[0])
                state = system[0].target
            return steps

        def effects_and_events(self, steps: list[Transition]) -> list[tuple[Any, ...]]:
            """Apply the steps' record effects to the model; the audit events they imply."""
            events: list[tuple[Any, ...]] = []
            for step in steps:
                for effect in step.effects:
                    if effect == "mark_record" and not self.marked:
                        self.marked = True
                        events.append(("record.marked", None, None, None))
                    elif effect == "unmark_record" and self.marked:
                        self.marked = False
                        events.append(("record.unmarked", None, None, None))
                    elif effect == "apply_correction" and self.decided_remedy == "correct":
                        # A new version; only a published record becomes "corrected": one whose
                        # publication ended or that was deleted (by a decision a review then
                        # revised) keeps its status.
                        self.record_version += 1
                        if self.record_status == CreditRecord.Status.PUBLISHED:
                            self.record_status = CreditRecord.Status.CORRECTED
                        events.append(("record.corrected", None, None, None))
                    elif effect in ("delete_record", "end_publication"):
                        status = (
                            CreditRecord.Status.DELETED
                            if effect == "delete_record"
                            else CreditRecord.Status.PUBLICATION_ENDED
                        )
                        if self.record_status != status:
                            self.record_status = status
                            events.append((f"record.{status}", None, None, None))
                    elif effect == "annotate_repaired" and not self.repaired:
                        self.repaired = True
                        self.record_status = CreditRecord.Status.PUBLICATION_ENDED
                        events.append(("record.repaired", None, None, None))
                events.append(("case.transitioned", step.name, step.source, step.target))
            return events

        def extension_refusal(self, days: int) -> Refused | None:
            running = Clock.objects.filter(case_id=self.case_id, status=Clock.Status.RUNNING)
            capped = [c for c in running if c.extension_cap is not None]
            if days < 1 or not capped:
                return Refused(ExtensionRefused, "no extendable clock or no days")
            if any(c.amount + c.extended_by + days > (c.extension_cap or 0) for c in capped):
                return Refused(ExtensionRefused, "over the cap")
            return None

        def expect_transition(self, name: str, who: str, data: TransitionInput) -> Expected:
            held = self.held[who]
            matches = [t for t in definition.transitions_from(self.state) if t.name == name]
            if not matches:
                return Refused(TransitionNotAvailable, f"no '{name}' from {self.state}")
            step = matches[0]
            if not set(held) & step.roles:
                return Refused(RoleNotAllowed, f"{who} {held} not in {sorted(step.roles)}")
            carries_out = {e for e in step.effects if e in REMEDY_EFFECT.values()}
            if carries_out and not step.outcomes:
                chosen = REMEDY_EFFECT.get(Case.Remedy(self.decided_remedy or "correct"))
                if not self.decided_remedy or chosen not in carries_out:
                    return Refused(TransitionNotAvailable, "not the remedy decided")
            if any(not data.value(field) for field in step.requires):
                return Refused(MissingFields, f"'{name}' needs {step.requires}")
            if data.outcome and data.outcome not in step.outcomes:
                return Refused(MissingFields, f"'{name}' records one of {step.outcomes}")
            decision = self.decision_for(step, data)
            if isinstance(decision, Refused):
                return decision
            refusal = documents_refusal(definition, data.documents)
            if refusal is not None:
                return refusal
            missing = [
                document
                for document in step.documents
                if document not in self.checklist and document not in data.documents
            ]
            if missing:
                return Refused(
                    MissingFields,
                    f"'{name}' needs documents {missing}",
                    {"fields": ["documents"], "documents": missing},
                )
            if name in waits:
                clock = (
                    Clock.objects.filter(case_id=self.case_id, timer=waits[name])
                    .order_by("-id")
                    .first()
                )
                if clock is not None and self.today() <= clock.due_on:
                    return Refused(TransitionNotAvailable, f"waits for {clock.timer}")
            # Refused like the other guard the service enforces (wait_for_timer).
            if (
                name == "request_review"
                and isinstance(max_reviews, int)
                and self.reviews >= max_reviews
            ):
                return Refused(TransitionNotAvailable, f"guard max_reviews={max_reviews}")
            if step.extends_clock:
                refusal = self.extension_refusal(data.extension_days)
                if refusal is not None:
                    return refusal
            if step.second_person:
                # Only an approval for this very state can be awaited: one requested before the
                # case moved on can never be approved, so it must not block a new request.
                live = PendingApproval.objects.filter(
                    case_id=self.case_id, approved__isnull=True, from_state=self.state
                )
                if live.exists():
                    return Refused(CaseConflict, "an approval is pending")
                return Requested(step)
            return self.expect_apply(step, data)

        def decision_for(
            self, step: Transition, data: TransitionInput
        ) -> Refused | tuple[str, dict[str, str]] | None:
            """What a step decides (remedy, decided values), None for a step that decides
            nothing, or why the service refuses it."""
            outcome = data.outcome or (step.outcomes[0] if len(step.outcomes) == 1 else "")
            if not step.outcomes or outcome not in GRANTING:
                if data.remedy or data.correction:
                    return Refused(MissingFields, "no remedy or correction without a grant")
                return ("", {}) if step.outcomes and outcome else None
            allowed = remedies_of(definition, step)
            remedy = data.remedy or (
                allowed[0] if len(allowed) == 1 else self.remedy if self.remedy in allowed else ""
            )
            if allowed and remedy not in allowed:
                return Refused(MissingFields, f"remedy {remedy!r} not in {allowed}")
            if remedy == "correct" and not data.correction:
                return Refused(MissingFields, "a correction needs decided values")
            if remedy != "correct" and data.correction:
                return Refused(MissingFields, "decided values without a correction")
            return remedy, dict(data.correction)

        def expect_apply(self, step: Transition, data: TransitionInput) -> Expected:
            if step.extends_clock:
                refusal = self.extension_refusal(data.extension_days)
                if refusal is not None:
                    return refusal
            decision = self.decision_for(step, data)
            assert not isinstance(decision, Refused), decision
            if decision is not None:
                self.decided_remedy, self.decided_correction = decision
            steps = [step]
            if not definition.is_terminal(step.target):
                steps += self.automatic_from(step.target)
            return Applied(tuple(steps))

        # --- calling the services and checking the result

        def call(
            self,
            expected: Expected,
            call: Any,
            *,
            describe: str,
            approval_id: int | None = None,
            documents: Mapping[str, str] | None = None,
        ) -> None:
            before = self.snapshot()
            sequence = before["events"]["last"]
            refusal: Exception | None = None
            try:
                call()
            except DOMAIN_ERRORS as error:
                refusal = error
            if refusal is not None:
                assert isinstance(expected, Refused), f"{describe}: refused ({refusal!r})"
                if expected.error is not None:
                    assert type(refusal) is expected.error, f"{describe}: {refusal!r}, {expected}"
                if expected.extra is not None:
                    assert details(refusal) == expected.extra, (
                        f"{describe}: {refusal!r}, {expected}"
                    )
                assert self.snapshot() == before, f"{describe}: a refusal changed something"
                return
            assert not isinstance(expected, Refused), f"{describe}: succeeded; {expected}"
            case_before = before["case"]
            if isinstance(expected, Requested | Rejected):
                after = self.snapshot()
                case_after = after["case"]
                assert case_after[0] == self.state
                assert case_after[1] == case_before[1] + 1
                action = (
                    "case.approval_requested"
                    if isinstance(expected, Requested)
                    else "case.approval_rejected"
                )
                assert self.events_since(sequence) == [(action, None, None, None)]
                assert after["record"] == before["record"]
                assert after["clocks"] == before["clocks"]
                assert after["documents"] == before["documents"]
                return
            case_after = Case.objects.values_list("state", "lock_version").get(pk=self.case_id)
            steps = list(expected.steps)
            if definition.is_terminal(self.state):
                assert steps[0].name in definition.reopen_by_review, describe
            if steps[0].name == "request_review":
                self.reviews += 1
            # A step that leaves the state lapses the approvals still awaited in it, first.
            lapsed = (
                [("case.approval_lapsed", None, None, None)]
                * sum(
                    1
                    for approval in before["approvals"]
                    if approval[1] is None and approval[0] != approval_id
                )
                if steps[0].source != steps[0].target
                else []
            )
            expected_events = lapsed + self.effects_and_events(steps)
            assert self.events_since(sequence) == expected_events, describe
            taken = AuditEvent.objects.filter(
                case_reference=self.reference, sequence__gt=sequence, action="case.transitioned"
            ).order_by("sequence")[0]
            assert taken.payload.get("documents", []) == sorted(documents or {}), describe
            self.state = steps[-1].target
            assert case_after[0] == self.state, describe
            assert case_after[1] == case_before[1] + len(steps)

        def attempt(self, name: str, who: str, data: TransitionInput) -> None:
            expected = self.expect_transition(name, who, data)
            extendable = self.extendable_clocks()
            self.call(
                expected,
                lambda: case_transition(
                    case_id=self.case_id, transition=name, actor=self.people[who], data=data
                ),
                describe=f"{name} by {who} from {self.state} with {data}",
                documents=data.documents,
            )
            if isinstance(expected, Applied):
                self.check_applied(expected, data, extendable)
                self.documents_recorded(data.documents, name, self.people[who])
            if isinstance(expected, Requested):
                approval = PendingApproval.objects.filter(case_id=self.case_id).latest("id")
                assert (approval.transition, approval.from_state, approval.approved) == (
                    name,
                    self.state,
                    None,
                )
                assert approval.requested_by_id == self.people[who].pk
                # The documents wait with the step; the checklist has them once it is approved.
                given = {document: text.strip() for document, text in data.documents.items()}
                assert approval.payload["documents"] == given

        def documents_recorded(self, documents: Mapping[str, str], step: str, by: User) -> None:
            for document, reference in documents.items():
                self.checklist[document] = (reference.strip(), step, by.pk)

        def extendable_clocks(self) -> dict[int, int]:
            running = Clock.objects.filter(
                case_id=self.case_id, status=Clock.Status.RUNNING, extension_cap__isnull=False
            )
            return dict(running.values_list("id", "extended_by"))

        def check_applied(
            self, expected: Applied, data: TransitionInput, extendable: dict[int, int]
        ) -> None:
            case = self.case()
            outcomes = expected.steps[0].outcomes
            outcome = data.outcome or (outcomes[0] if len(outcomes) == 1 else "")
            if outcome:  # chosen, or implied by a step that can record only one
                assert case.outcome == outcome
            if data.reasons:
                assert case.reasons == data.reasons
            if expected.steps[0].extends_clock:
                extended = dict(
                    Clock.objects.filter(pk__in=extendable).values_list("id", "extended_by")
                )
                assert extended == {
                    pk: days + data.extension_days for pk, days in extendable.items()
                }

        # --- rules

        @rule(
            name=st.sampled_from(names),
            who=st.sampled_from(PEOPLE),
            reasons=st.booleans(),
            outcome=st.sampled_from(["", *Case.Outcome.values]),
            material_request=st.booleans(),
            statement=st.booleans(),
            extension_reason=st.booleans(),
            extension_days=st.integers(min_value=0, max_value=10),
            remedy=st.sampled_from(["", *Case.Remedy.values]),
            correction=st.booleans(),
            documents=documents_given,
        )
        def try_any_transition(self, name: str, who: str, **fields: Any) -> None:
            self.attempt(name, who, transition_input(**fields))

        @rule(data=st.data())
        def take_an_offered_step(self, data: st.DataObject) -> None:
            # Prefer states this case has not been in, so runs reach execution and review.
            offered = [
                (t, who)
                for t in definition.transitions_from(self.state)
                for who in PEOPLE
                if set(self.held[who]) & t.roles
            ]
            if not offered:
                return
            fresh = [
                (t, who)
                for t, who in offered
                if t.target not in self.visited and not definition.is_terminal(t.target)
            ]
            step, who = data.draw(st.sampled_from(fresh or offered))
            outcome = data.draw(
                st.sampled_from(
                    step.outcomes if "outcome" in step.requires else ("", *step.outcomes)
                )
            )
            days = data.draw(st.integers(min_value=1, max_value=10))
            implied = outcome or (step.outcomes[0] if len(step.outcomes) == 1 else "")
            remedy = ""
            if implied in GRANTING and (allowed := remedies_of(definition, step)):
                remedy = data.draw(st.sampled_from(allowed))
            # The documents the step needs, mostly; else some of them, every one the definition
            # declares, or those it needs and one the service must refuse.
            documents = dict.fromkeys(step.documents, REFERENCE)
            variant = data.draw(st.sampled_from(("needed", "needed", "some", "all", "wrong")))
            if variant == "some" and step.documents:
                some = data.draw(st.lists(st.sampled_from(step.documents), unique=True))
                documents = dict.fromkeys(some, REFERENCE)
            elif variant == "all":
                documents = dict.fromkeys(document_keys, REFERENCE)
            elif variant == "wrong":
                wrong = [(UNLISTED_DOCUMENT, REFERENCE)]
                wrong += [(document, bad) for document in document_keys for bad in BAD_REFERENCES]
                document, reference = data.draw(st.sampled_from(wrong))
                documents[document] = reference
            self.attempt(
                step.name,
                who,
                TransitionInput(
                    reasons="经核查，理由如下",
                    outcome=outcome,
                    material_request="请补充缴款凭证",
                    statement="对处理结果有异议",
                    extension_reason="案情复杂",
                    extension_days=days,
                    remedy=remedy,
                    correction=dict(CORRECTION) if remedy == "correct" else {},
                    documents=documents,
                ),
            )

        @rule(data=st.data(), approve=st.booleans())
        def decide_an_approval(self, data: st.DataObject, approve: bool) -> None:
            approvals = list(PendingApproval.objects.filter(case_id=self.case_id).order_by("id"))
            if not approvals:
                return
            approval = data.draw(st.sampled_from(approvals))
            # Anyone, or, as often, someone holding a role that approves the step.
            approver_roles = next(
                (
                    t.approver_roles
                    for t in definition.transitions_from(approval.from_state)
                    if t.name == approval.transition
                ),
                frozenset[str](),
            )
            approvers = [who for who in PEOPLE if set(self.held[who]) & approver_roles]
            who = data.draw(
                st.one_of(st.sampled_from(PEOPLE), st.sampled_from(approvers))
                if approvers
                else st.sampled_from(PEOPLE)
            )
            person = self.people[who]
            held = self.held[who]
            expected: Expected
            step = next(
                (
                    t
                    for t in definition.transitions_from(self.state)
                    if t.name == approval.transition
                ),
                None,
            )
            if approval.approved is not None:
                expected = Refused(CaseConflict, "already decided")
            elif approval.requested_by_id == person.pk:
                expected = Refused(RoleNotAllowed, "the requester cannot decide")
            elif approval.from_state != self.state or step is None:
                expected = Refused(None, "the case has left the state it was requested in")
            elif not set(held) & step.approver_roles:
                expected = Refused(RoleNotAllowed, f"{who} {held} may not approve")
            elif not approve:
                expected = Rejected()
            else:
                payload = approval.payload
                expected = self.expect_apply(
                    step,
                    TransitionInput(
                        outcome=payload.get("outcome", ""),
                        extension_days=int(payload.get("extension_days") or 0),
                        remedy=payload.get("remedy", ""),
                        correction=payload.get("correction") or {},
                    ),
                )
            extendable = self.extendable_clocks()
            self.call(
                expected,
                lambda: case_approval_decide(
                    approval_id=approval.pk, actor=person, approve=approve, reasons="意见"
                ),
                describe=f"{'approve' if approve else 'reject'} {approval.transition} by {who}",
                approval_id=approval.pk,
                documents=approval.payload.get("documents") if approve else None,
            )
            if isinstance(expected, Rejected | Applied):
                approval.refresh_from_db()
                assert (approval.approved, approval.decided_by_id) == (approve, person.pk)
            if isinstance(expected, Applied):
                payload = approval.payload
                self.check_applied(
                    expected,
                    TransitionInput(
                        reasons=payload.get("reasons", ""),
                        outcome=payload.get("outcome", ""),
                        extension_days=int(payload.get("extension_days") or 0),
                    ),
                    extendable,
                )
                self.documents_recorded(
                    payload.get("documents") or {}, approval.transition, approval.requested_by
                )

        @rule(days=st.integers(min_value=1, max_value=10))
        def time_passes_and_the_clocks_are_swept(self, days: int) -> None:
            self.days += days
            self.clock.move_to(self.now())
            today = self.today()
            before = self.snapshot()
            sequence = before["events"]["last"]
            running = list(
                Clock.objects.filter(case_id=self.case_id, status=Clock.Status.RUNNING).order_by(
                    "id"
                )
            )
            overdue = [c for c in running if c.escalated_at is None and c.due_on < today]
            escalate = [c for c in overdue if c.on_expiry == "escalate"]
            remind = [
                c for c in running if c.reminded_at is None and c.remind_on <= today <= c.due_on
            ]
            # Whether a remind-only clock is reminded once it is past due is not fixed.
            may_remind = [c for c in overdue if c.on_expiry == "remind" and c.reminded_at is None]

            reminded, escalated = clocks_sweep()

            after = self.snapshot()
            assert after["case"] == before["case"]
            assert after["record"] == before["record"]
            assert after["approvals"] == before["approvals"]
            new = AuditEvent.objects.filter(
                case_reference=self.reference, sequence__gt=sequence
            ).order_by("sequence")
            escalated_timers = [e.payload["timer"] for e in new if e.action == "case.escalated"]
            reminded_timers = [e.payload["timer"] for e in new if e.action == "case.reminded"]
            assert {e.action for e in new} <= {"case.escalated", "case.reminded"}
            assert escalated_timers == [c.timer for c in escalate], (
                f"escalated {escalated_timers}, expected {[c.timer for c in escalate]} "
                f"(remind-only clocks must not escalate) on {today}"
            )
            assert escalated == len(escalate)
            assert {c.timer for c in remind} <= set(reminded_timers)
            assert set(reminded_timers) <= {c.timer for c in remind + may_remind}
            assert reminded == len(reminded_timers)
            escalations = [c[8] for c in after["clocks"] if c[8] is not None]
            assert len(escalations) == len(set(escalations))
            assert len(escalations) == len([c for c in before["clocks"] if c[8] is not None]) + len(
                escalate
            )

            assert clocks_sweep() == (0, 0)
            assert self.snapshot() == after

        # --- what holds after every step

        @invariant()
        def the_case_matches_the_definition(self) -> None:
            self.visited.add(self.state)
            case = self.case()
            record = case.record
            assert case.state == self.state
            terminal = definition.is_terminal(self.state)
            assert case.is_open is not terminal
            assert (case.closed_at is not None) is terminal

            clocks = self.clocks()
            running = [c for c in clocks if c[2] == Clock.Status.RUNNING]
            paused = [c for c in clocks if c[2] == Clock.Status.PAUSED]
            if terminal:
                assert (running, paused) == ([], [])
            elif definition.states[self.state].untimed:
                assert running == []
                assert paused != []
                assert all(c[10] == 1 for c in paused)  # each waits on its one open pause
            else:
                assert sorted(c[1] for c in running) == sorted(
                    t.name for t in definition.timers_for(self.state)
                )
                assert paused == []
            assert case.next_due_on == min((c[3] for c in running), default=None)
            for pk, timer, _, due_on, _, on_expiry, _, escalated_at, escalation, *_ in clocks:
                assert due_on >= self.due_seen.get(pk, due_on), f"{timer} moved earlier"
                self.due_seen[pk] = due_on
                assert (escalated_at is None) is (escalation is None)
                if escalation is not None:
                    assert on_expiry == "escalate", f"remind-only {timer} was escalated"

            assert (record.under_objection, record.version, record.status) == (
                self.marked,
                self.record_version,
                self.record_status,
            )
            if self.state in marked_by_state:
                assert record.under_objection is marked_by_state[self.state], self.state
            assert self.documents() == self.checklist

    CaseMachine.__name__ = CaseMachine.__qualname__ = f"CaseMachine[{key}]"
    return CaseMachine


MACHINES = {key: machine_for(key) for key in sorted(BUILTIN)}
# Derandomized, so that each definition's run is the same on every machine and database; no
# shrinking, so that a failing run reports within seconds the program of at most 12 steps that
# broke it.
SETTINGS = settings(
    max_examples=15,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(BUILTIN))
def test_case_services_follow_the_definition(world: World, key: str) -> None:
    machine = MACHINES[key]
    machine.world = world
    machine.staff = {agency: staff_for(world, agency) for agency in FILINGS[key].agencies}
    machine.categories = {code: catalogue_entry(code) for code in FILINGS[key].categories}

    run_state_machine_as_test(machine, settings=SETTINGS)


def test_every_definition_key_has_a_machine() -> None:
    routed = {route.workflow for entry in builtin_routes().values() for route in entry.routes}
    superseded = {d.supersedes for d in BUILTIN.values() if d.supersedes}
    assert set(MACHINES) == set(BUILTIN) == set(FILINGS) == routed | superseded


def test_every_role_of_every_definition_is_held_by_someone_around_its_cases() -> None:
    for key, definition in BUILTIN.items():
        for filer in FILINGS[key].filers:
            held = roles_held(definition, filer)
            holders = {role for roles in held.values() for role in roles}
            for step in definition.transitions:
                assert step.roles - {"system"} <= holders, (key, step.name)
                assert step.approver_roles <= holders, (key, step.name)
                # Whoever asks for a second-person step, someone else may approve it.
                for who in PEOPLE:
                    if step.second_person and set(held[who]) & step.roles:
                        assert any(
                            set(roles) & step.approver_roles
                            for other, roles in held.items()
                            if other != who
                        ), (key, step.name, who)


def test_every_state_of_every_definition_has_its_mark_stated() -> None:
    history_dependent = {
        ("pboc-objection", state) for state in ("closed", "complaint_review", "correction_ordered")
    }

    for key, definition in BUILTIN.items():
        stated = {(key, state) for state in MARKED[key]}
        assert stated | history_dependent >= {(key, state) for state in definition.states}
        assert set(MARKED[key]) <= set(definition.states)


# --- the bugs the machines found, each on its shortest path ----------------------------------


def _routed(world: World, record: CreditRecord) -> Case:
    case = case_file(
        actor=world.citizen,
        record=record,
        kind="objection",
        grounds="inaccurate",
        statement="记录有误",
        requested_remedy="correct",
        correction=dict(CORRECTION),
    )
    return case_route(case_id=case.pk)


def _step(case: Case, transition: str, actor: User, **data: Any) -> Case:
    return case_transition(
        case_id=case.pk, transition=transition, actor=actor, data=TransitionInput(**data)
    )


@pytest.mark.django_db
def test_sweep_does_not_escalate_a_clock_whose_timer_only_reminds(
    world: World, time_machine: TimeMachineFixture
) -> None:
    # given a Hubei objection, marked on routing, whose placeholder deadlines only remind
    time_machine.move_to(START, tick=False)
    case = _routed(world, world.hb_record)
    running = Clock.objects.filter(case=case, status=Clock.Status.RUNNING)
    assert sorted(running.values_list("timer", "on_expiry")) == [
        ("forward_deadline", "remind"),
        ("platform_decision_deadline", "remind"),
    ]
    after_all = max(running.values_list("due_on", flat=True)) + timedelta(days=1)

    # when the sweep runs after every deadline
    escalated = clocks_sweep(today=after_all)[1]

    # then nothing is escalated
    assert escalated == 0
    assert not Escalation.objects.filter(case=case).exists()
    assert not AuditEvent.objects.filter(
        case_reference=case.reference, action="case.escalated"
    ).exists()


@pytest.mark.django_db
def test_a_closed_zhejiang_case_is_reviewed_at_most_once(
    world: World, time_machine: TimeMachineFixture
) -> None:
    # given a refused Zhejiang objection whose DRC review upheld the refusal
    time_machine.move_to(START, tick=False)
    case = _routed(world, world.zj_record)
    _step(case, "refuse", world.zj_caseworker, reasons="记录准确")
    _step(case, "notify_refusal", world.zj_caseworker)
    _step(case, "request_review", world.citizen, statement="处理结果有误，申请复核")
    drc_caseworker = staff_for(world, "zhejiang-market").drc_caseworker
    case = _step(case, "uphold", drc_caseworker, reasons="维持原决定")
    assert (case.state, definition_of(case.workflow).guards["max_reviews"]) == ("closed", 1)
    lock_version = case.lock_version
    events = AuditEvent.objects.filter(case_reference=case.reference).count()

    # when the applicant asks for a second review
    with pytest.raises(TransitionNotAvailable):
        _step(case, "request_review", world.citizen, statement="再次申请复核")

    # then the case stays closed
    case.refresh_from_db()
    assert (case.state, case.is_open, case.lock_version) == ("closed", False, lock_version)
    assert AuditEvent.objects.filter(case_reference=case.reference).count() == events


@pytest.mark.django_db
def test_an_extension_left_pending_does_not_block_the_review_extension(
    world: World, time_machine: TimeMachineFixture
) -> None:
    # given a Zhejiang objection decided while its caseworker's extension awaited approval,
    # then closed and sent to the DRC
    time_machine.move_to(START, tick=False)
    case = _routed(world, world.zj_record)
    _step(case, "extend", world.zj_caseworker, extension_reason="案情复杂", extension_days=5)
    _step(case, "refuse", world.zj_caseworker, reasons="记录准确")
    _step(case, "notify_refusal", world.zj_caseworker)
    case = _step(case, "request_review", world.citizen, statement="处理结果有误，申请复核")
    assert case.state == "drc_review"
    drc_supervisor = staff_for(world, "zhejiang-market").drc_supervisor

    # when the DRC supervisor asks for an extension of the review
    case = _step(case, "extend", drc_supervisor, extension_reason="需调取材料", extension_days=5)

    # then it awaits another DRC supervisor's approval
    approval = PendingApproval.objects.get(case=case, approved__isnull=True)
    assert (approval.transition, approval.from_state, approval.requested_by) == (
        "extend",
        "drc_review",
        drc_supervisor,
    )
