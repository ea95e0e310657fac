"""Cases (objection, repair, review), their clocks, and the data the workflow engine runs on."""

from __future__ import annotations

import uuid
from datetime import date

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _
from guardian.models import UserObjectPermissionBase

from records.models import Agency, CatalogueEntry
from scs_cases.models import BaseModel


class WorkflowDefinition(BaseModel):
    """One version of a workflow definition. Rows are never edited: a change is a new version."""

    key = models.SlugField(max_length=64)
    version = models.PositiveIntegerField()
    jurisdiction = models.ForeignKey(
        "records.Jurisdiction", on_delete=models.PROTECT, related_name="workflow_definitions"
    )
    case_kind = models.CharField(max_length=16)
    source_text = models.TextField(help_text=_("The definition in YAML."))
    source_hash = models.CharField(max_length=64)
    parameters_verified = models.BooleanField(default=False)
    is_current = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["key", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="workflow_key_version_unique"),
            models.UniqueConstraint(
                fields=["key"], condition=Q(is_current=True), name="workflow_one_current_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"


class CalendarOverride(BaseModel):
    """An administrator's correction or addition to the statutory holiday schedule."""

    day = models.DateField(unique=True)
    working = models.BooleanField(help_text=_("Checked: a working day (e.g. a make-up Saturday)."))
    source = models.CharField(
        max_length=200, help_text=_("The State Council notice it comes from.")
    )

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day} {'working' if self.working else 'day off'}"


class CalendarYear(BaseModel):
    """A year whose schedule an administrator has entered completely as overrides."""

    year = models.PositiveSmallIntegerField(unique=True)
    source = models.CharField(
        max_length=200, help_text=_("The State Council notice the year's overrides come from.")
    )

    class Meta:
        ordering = ["year"]

    def __str__(self) -> str:
        return str(self.year)


def _queue_due() -> Coalesce:
    """The queue's first ordering key, as the dashboard's selector writes it: a case without a
    running deadline sorts last."""
    return Coalesce("next_due_on", Value(date(9999, 12, 31)))


class Case(BaseModel):
    class Kind(models.TextChoices):
        OBJECTION = "objection", _("objection")
        REPAIR = "repair", _("credit repair")
        REVIEW = "review", _("review of a decision")
        # Started by the providing unit when the act a record rests on was revoked (Shanghai
        # Regulations Art 37).
        DELETION = "deletion", _("deletion after revocation")

    class Grounds(models.TextChoices):
        INACCURATE = "inaccurate", _("the record is wrong")
        NOT_ME = "not_me", _("the record is not about me")
        INCOMPLETE = "incomplete", _("the record is incomplete")
        OUTSIDE_CATALOGUE = "outside_catalogue", _("the record is outside the lawful catalogue")
        PERIOD_ENDED = "period_ended", _("the publication or retention period has ended")
        PRIVACY = "privacy", _("the record infringes privacy or trade secrets")
        OBLIGATION_FULFILLED = "obligation_fulfilled", _("the obligation has been fulfilled")
        DECISION_REVOKED = "decision_revoked", _("the underlying decision was revoked or changed")
        OTHER = "other", _("other grounds, given in the statement")

    class Remedy(models.TextChoices):
        CORRECT = "correct", _("correct the record")
        DELETE = "delete", _("delete the record")
        END_PUBLICATION = "end_publication", _("end its publication")
        ANNOTATE = "annotate", _("annotate the record")

    class Outcome(models.TextChoices):
        GRANTED = "granted", _("granted")
        PARTLY_GRANTED = "partly_granted", _("partly granted")
        REFUSED = "refused", _("refused")
        KEPT_WITH_NOTE = "kept_with_note", _("kept with a note")

    FILED = "filed"  # before routing has chosen a workflow

    reference = models.CharField(max_length=32, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    subject = models.ForeignKey("records.Subject", on_delete=models.PROTECT, related_name="cases")
    record = models.ForeignKey(
        "records.CreditRecord", on_delete=models.PROTECT, related_name="cases"
    )
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reviews"
    )
    fields_objected = models.JSONField(default=list, blank=True)
    grounds = models.CharField(max_length=24, choices=Grounds.choices)
    statement = models.TextField()
    requested_remedy = models.CharField(max_length=16, choices=Remedy.choices)
    correction = models.JSONField(
        default=dict, blank=True, help_text=_("Corrected field values the applicant asks for.")
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cases_filed"
    )
    representative = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases_represented",
    )
    jurisdiction = models.ForeignKey(
        "records.Jurisdiction", on_delete=models.PROTECT, related_name="+"
    )
    workflow = models.ForeignKey(
        WorkflowDefinition, on_delete=models.PROTECT, null=True, blank=True, related_name="cases"
    )
    state = models.CharField(max_length=32, default=FILED)
    is_open = models.BooleanField(default=True)
    responsible_agency = models.ForeignKey(
        "records.Agency", on_delete=models.PROTECT, null=True, blank=True, related_name="cases"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases_assigned",
    )
    reviews_requested = models.PositiveSmallIntegerField(default=0)
    review_statement = models.TextField(
        blank=True, help_text=_("Why the applicant asks for review of the decision.")
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    reasons = models.TextField(blank=True)
    filed_at = models.DateTimeField()
    routed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    next_due_on = models.DateField(null=True, blank=True, help_text=_("Earliest running deadline."))
    lock_version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-filed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["record", "kind"],
                condition=Q(is_open=True),
                name="case_one_open_per_record_and_kind",
            ),
        ]
        indexes = [
            models.Index(
                fields=["responsible_agency", "is_open", "next_due_on"], name="case_queue"
            ),
            models.Index(fields=["state", "routed_at"], name="case_state_routed"),
            # The dashboard queue: open cases in its order (the earliest running deadline first,
            # then id), alone and after each equality filter, so that a page reads its 50 rows
            # from an index instead of sorting every open case in scope.
            models.Index(_queue_due(), "id", condition=Q(is_open=True), name="case_queue_due"),
            models.Index(
                "assignee",
                _queue_due(),
                "id",
                condition=Q(is_open=True),
                name="case_queue_assignee",
            ),
            models.Index(
                "responsible_agency",
                _queue_due(),
                "id",
                condition=Q(is_open=True),
                name="case_queue_agency",
            ),
            models.Index(
                "state", _queue_due(), "id", condition=Q(is_open=True), name="case_queue_state"
            ),
            models.Index(
                "kind", _queue_due(), "id", condition=Q(is_open=True), name="case_queue_kind"
            ),
        ]

    def __str__(self) -> str:
        return self.reference


class WorkflowRoute(BaseModel):
    """Which workflow runs a jurisdiction's cases of one kind: a row an administrator edits
    (seeded from objections/routes.yaml)."""

    jurisdiction = models.ForeignKey(
        "records.Jurisdiction", on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(
        max_length=12,
        choices=[
            (Case.Kind.OBJECTION, _("objection")),
            (Case.Kind.REPAIR, _("credit repair")),
            (Case.Kind.DELETION, _("deletion after revocation")),
        ],
    )
    # Narrower routes win: a row naming the kind of information or the kind of agency holding
    # the record applies to those records only; blank means any.
    information_kind = models.CharField(
        max_length=20,
        blank=True,
        default="",
        choices=CatalogueEntry.InformationKind.choices,
        help_text=_("Only records of this kind of information (blank: any)."),
    )
    holder_kind = models.CharField(
        max_length=20,
        blank=True,
        default="",
        choices=Agency.Kind.choices,
        help_text=_("Only records held by an agency of this kind (blank: any)."),
    )
    workflow_key = models.SlugField(max_length=64, help_text=_("The key of a workflow definition."))

    class Meta:
        ordering = ["jurisdiction__code", "kind", "information_kind", "holder_kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["jurisdiction", "kind", "information_kind", "holder_kind"],
                name="workflow_route_unique",
            )
        ]

    def __str__(self) -> str:
        narrower = "/".join(filter(None, (self.information_kind, self.holder_kind)))
        return f"{self.jurisdiction_id} {self.kind}{' ' + narrower if narrower else ''} -> " + (
            self.workflow_key
        )


class CaseReferencePrefix(BaseModel):
    """The prefix of a jurisdiction's case references (SH-2026-000123)."""

    jurisdiction = models.OneToOneField(
        "records.Jurisdiction", on_delete=models.PROTECT, related_name="+"
    )
    prefix = models.CharField(
        max_length=8,
        unique=True,
        validators=[RegexValidator(r"^[A-Z]{2,8}\Z", _("Two to eight capital letters."))],
    )

    class Meta:
        ordering = ["prefix"]

    def __str__(self) -> str:
        return self.prefix


class CaseReferenceCounter(models.Model):
    """Per jurisdiction and year, the last number used in case references (SH-2026-000123)."""

    prefix = models.CharField(max_length=8)
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prefix", "year"], name="case_reference_counter_unique")
        ]

    def __str__(self) -> str:
        return f"{self.prefix}-{self.year}: {self.last}"


class Clock(BaseModel):
    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        PAUSED = "paused", _("paused")
        STOPPED = "stopped", _("stopped")
        # The period stopped applying (the workflow's `cancelled_by`): neither kept nor missed.
        CANCELLED = "cancelled", _("no longer applies")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="clocks")
    timer = models.CharField(max_length=64)
    state = models.CharField(max_length=32)
    unit = models.CharField(max_length=10)
    amount = models.PositiveIntegerField()
    extended_by = models.PositiveIntegerField(default=0)
    extension_cap = models.PositiveIntegerField(null=True, blank=True)
    started_on = models.DateField()
    due_on = models.DateField()
    remind_on = models.DateField()
    trace = models.TextField()
    on_expiry = models.CharField(max_length=10)
    source_citation = models.CharField(max_length=300)
    source_verified = models.BooleanField()
    # Years the deadline was counted in without a known State Council schedule (Monday to Friday
    # less computed statutory holidays); empty once every year it touches is known.
    provisional_years = models.JSONField(default=list, blank=True)
    provisional = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["case_id", "id"]
        indexes = [
            models.Index(fields=["status", "due_on"], name="clock_status_due"),
            models.Index(
                fields=["provisional"], condition=Q(provisional=True), name="clock_provisional"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.timer} due {self.due_on}"


class ClockPause(models.Model):
    clock = models.ForeignKey(Clock, on_delete=models.PROTECT, related_name="pauses")
    started_at = models.DateTimeField()
    started_on = models.DateField()
    ended_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["clock_id", "started_at"]

    def __str__(self) -> str:
        return f"pause of clock {self.clock_id} from {self.started_on}"


class PendingApproval(BaseModel):
    """A transition that needs a second person, waiting for one."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="approvals")
    transition = models.CharField(max_length=64)
    from_state = models.CharField(max_length=32)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    payload = models.JSONField(default=dict)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved = models.BooleanField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(approved__isnull=True),
                name="approval_one_pending_per_case",
            )
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.transition}"


class Escalation(BaseModel):
    """A supervisor's task raised by a missed deadline. The case keeps its state."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="escalations")
    clock = models.OneToOneField(Clock, on_delete=models.PROTECT, related_name="escalation")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"escalation of {self.case_id}"


class Decision(BaseModel):
    """What a decision step decided about the case's record: the outcome, the reasons, what
    happens to the record (`remedy`) and, for a correction, the exact values to apply, which
    the decider took from the applicant's proposal, amended or wrote. Execution applies this,
    never the request. A review that decides again adds a new one; the latest is in force."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    record = models.ForeignKey("records.CreditRecord", on_delete=models.PROTECT, related_name="+")
    transition = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Case.Outcome.choices)
    remedy = models.CharField(
        max_length=16,
        choices=Case.Remedy.choices,
        blank=True,
        help_text=_("What happens to the record; empty when nothing changes."),
    )
    reasons = models.TextField()
    proposed = models.JSONField(
        default=dict, blank=True, help_text=_("The applicant's proposed values when decided.")
    )
    correction = models.JSONField(
        default=dict, blank=True, help_text=_("The decided values, applied as a new version.")
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_(
            "Empty for a case decided before decisions were recorded (see migration 0004)."
        ),
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["case_id", "id"]

    def __str__(self) -> str:
        return f"{self.outcome} on case {self.case_id}"


class CaseDocument(BaseModel):
    """One entry of a case's document checklist: a document the workflow requires before a step
    (a credit commitment, proof of performance, a repair certificate), with the reference of the
    document the person taking the step relied on (an evidence file's id or the document's own
    number)."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="documents")
    key = models.SlugField(max_length=64)
    reference = models.CharField(max_length=200)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    transition = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["case", "key"], name="case_document_once_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.key}: {self.reference}"


class DisputeStatement(BaseModel):
    """The applicant's statement of dispute, kept with the record after a refusal."""

    record = models.ForeignKey(
        "records.CreditRecord", on_delete=models.PROTECT, related_name="dispute_statements"
    )
    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="dispute_statement")
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"dispute on record {self.record_id}"


class Notification(BaseModel):
    """One email about a case to one person: an outbox row written in the transaction of the
    change it reports, sent after commit by a worker, re-driven by beat until sent."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notifications")
    event = models.CharField(max_length=32)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notifications"
    )
    email = models.EmailField()
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(status="pending"),
                name="notification_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.event} to {self.recipient_id} ({self.status})"


class CaseNote(BaseModel):
    """Something staff wrote on a case: an internal note, kept from the applicant, or a message
    to the applicant, shown on their case page. The two are never mixed in one list."""

    class Kind(models.TextChoices):
        INTERNAL = "internal", _("internal note")
        MESSAGE = "message", _("message to the applicant")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notes")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["case_id", "id"]
        indexes = [models.Index(fields=["case", "kind", "id"], name="casenote_case_kind")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.case_id}"


class CaseUserObjectPermission(UserObjectPermissionBase):
    """Direct-foreign-key guardian grants on single cases, where access is truly per object: a
    case shared with another agency's caseworker for consultation, an auditor's grant. Each
    grant ends at `expires_at` (none: until revoked). Written only by `objections.services.grants`.
    """

    content_object = models.ForeignKey(Case, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)


class Evidence(BaseModel):
    """A file a case rests on (a PDF, JPEG or PNG, checked by its content), stored outside the
    web root under a random name (`objections.evidence.storage`). URLs name it by `public_id`;
    images are kept re-encoded, without their metadata. Written only by
    `objections.services.evidence`."""

    class Visibility(models.TextChoices):
        INTERNAL = "internal", _("internal")
        SHARED = "shared", _("shared with the applicant")

    class ContentType(models.TextChoices):
        PDF = "application/pdf", _("PDF document")
        JPEG = "image/jpeg", _("JPEG image")
        PNG = "image/png", _("PNG image")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="evidence")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    stored_name = models.CharField(max_length=64, unique=True, editable=False)
    original_name = models.CharField(
        max_length=200, help_text=_("The name the file was sent with, for display only.")
    )
    content_type = models.CharField(max_length=20, choices=ContentType.choices)
    size = models.PositiveBigIntegerField(help_text=_("Bytes stored."))
    sha256 = models.CharField(max_length=64, help_text=_("Of the bytes stored."))
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.INTERNAL
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["case_id", "id"]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return f"{self.case_id} {self.public_id} ({self.content_type})"
