"""The credit-record registry: jurisdictions, agencies, the lawful catalogue, subjects, records."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from guardian.models import UserObjectPermissionBase

from scs_cases.models import BaseModel


class Jurisdiction(BaseModel):
    class RetentionStart(models.TextChoices):
        CONDUCT_ENDED = "conduct_ended", _("end of the conduct")
        DECIDED = "decided", _("date of the decision")

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=100)
    name_en = models.CharField(_("name (English)"), max_length=100)
    retention_years = models.PositiveSmallIntegerField(
        _("retention (years)"),
        default=5,
        help_text=_(
            "How long adverse information may be queried (Shanghai Art 35, Zhejiang Art 16)."
        ),
    )
    retention_starts_from = models.CharField(
        _("retention counted from"),
        max_length=16,
        choices=RetentionStart.choices,
        default=RetentionStart.CONDUCT_ENDED,
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name_zh


class Agency(BaseModel):
    class Kind(models.TextChoices):
        CREDIT_CENTRE = "credit_centre", _("credit centre")
        PROVIDING_UNIT = "providing_unit", _("information-providing unit")
        CREDIT_SERVICE = "credit_service", _("credit service agency")
        # Bodies that review or supervise others' decisions (Zhejiang Regulations Arts 30–31;
        # Credit Reporting Regulation Art 26).
        DRC = "drc", _("development and reform commission")
        PBOC_BRANCH = "pboc_branch", _("People's Bank of China branch")

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200)
    jurisdiction = models.ForeignKey(
        Jurisdiction, on_delete=models.PROTECT, related_name="agencies"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "agencies"
        permissions = [("import_records", "May push credit records for this agency")]

    def __str__(self) -> str:
        return self.name_zh


class CatalogueEntry(BaseModel):
    """One category of the lawful catalogue. A record outside the active catalogue is refused."""

    class Severity(models.TextChoices):
        MINOR = "minor", _("minor")
        GENERAL = "general", _("general")
        SERIOUS = "serious", _("serious")

    jurisdiction = models.ForeignKey(
        Jurisdiction, on_delete=models.PROTECT, related_name="catalogue_entries"
    )
    code = models.SlugField(_("code"), max_length=64)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200)
    legal_basis = models.TextField(_("legal basis"))
    severity = models.CharField(_("severity tier"), max_length=10, choices=Severity.choices)
    applies_to_persons = models.BooleanField(_("applies to natural persons"), default=True)
    applies_to_organisations = models.BooleanField(_("applies to organisations"), default=True)
    publication_min_months = models.PositiveSmallIntegerField(_("minimum publication (months)"))
    publication_max_months = models.PositiveSmallIntegerField(_("maximum publication (months)"))

    class InformationKind(models.TextChoices):
        # What the information is decides which procedure an objection or a repair follows
        # (objections.WorkflowRoute): penalties published on Credit China, serious-dishonesty
        # lists, credit-reporting data under the PBoC regulation, other adverse information.
        PENALTY = "penalty", _("administrative penalty")
        DISHONESTY_LIST = "dishonesty_list", _("serious-dishonesty list")
        CREDIT_REPORTING = "credit_reporting", _("credit-reporting information")
        OTHER = "other", _("other adverse information")

    information_kind = models.CharField(
        _("kind of information"),
        max_length=20,
        choices=InformationKind.choices,
        default=InformationKind.OTHER,
    )
    repairable = models.BooleanField(_("repairable"), default=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["jurisdiction__code", "code"]
        verbose_name_plural = "catalogue entries"
        constraints = [
            models.UniqueConstraint(
                fields=["jurisdiction", "code"], name="catalogue_code_unique_per_jurisdiction"
            ),
            models.CheckConstraint(
                condition=Q(publication_min_months__lte=F("publication_max_months")),
                name="catalogue_publication_min_le_max",
            ),
            models.CheckConstraint(
                condition=Q(applies_to_persons=True) | Q(applies_to_organisations=True),
                name="catalogue_applies_to_someone",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name_zh}"


class Subject(BaseModel):
    """A natural person or an organisation that records are about.

    The identifier is never stored in clear: `identifier_encrypted` holds AES-GCM ciphertext,
    `identifier_hash` a keyed hash to find the subject, `identifier_masked` what screens show.
    """

    class Kind(models.TextChoices):
        PERSON = "person", _("natural person")
        ORGANISATION = "organisation", _("organisation")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=200)
    identifier_encrypted = models.BinaryField(editable=False)
    # Unique through Meta.constraints rather than unique=True, which on PostgreSQL would add a
    # second (pattern-matching) index that no query uses and every new subject pays for.
    identifier_hash = models.CharField(max_length=64, editable=False)
    identifier_masked = models.CharField(_("identifier"), max_length=18, editable=False)
    on_serious_dishonesty_list = models.BooleanField(
        _("on a serious-dishonesty list"), default=False
    )

    class Meta:
        ordering = ["id"]
        permissions = [("act_for_subject", "May see and act for this credit subject")]
        constraints = [
            models.UniqueConstraint(fields=["identifier_hash"], name="subject_identifier_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier_masked})"


class SubjectUserObjectPermission(UserObjectPermissionBase):
    """Direct-foreign-key guardian grants on subjects (a citizen for themself, representatives)."""

    content_object = models.ForeignKey(Subject, on_delete=models.CASCADE)


class CreditRecord(BaseModel):
    class Status(models.TextChoices):
        PUBLISHED = "published", _("published")
        CORRECTED = "corrected", _("corrected")
        PUBLICATION_ENDED = "publication_ended", _("publication ended")
        DELETED = "deleted", _("deleted")
        EXPIRED = "expired", _("expired")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Referential integrity without a per-row check on every imported record (PostgreSQL's
    # foreign-key triggers cost the bulk import more than the insert itself): agencies, subjects
    # and catalogue entries that a record refers to cannot be deleted, enforced by triggers on
    # those tables (migration 0002_referenced_rows_kept), and the import only writes ids it has
    # just read from them. No single-column indexes either: (agency, record_number) and
    # (subject, decision_date) lead with these columns.
    agency = models.ForeignKey(
        Agency,
        on_delete=models.PROTECT,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    record_number = models.CharField(_("agency record number"), max_length=64)
    subject = models.ForeignKey(
        Subject,
        on_delete=models.PROTECT,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    category = models.ForeignKey(
        CatalogueEntry,
        on_delete=models.PROTECT,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    title = models.CharField(_("title"), max_length=300)
    facts = models.TextField(_("facts"))
    decision_document_number = models.CharField(_("decision document number"), max_length=100)
    decision_date = models.DateField(_("decision date"))
    conduct_ended_on = models.DateField(_("conduct ended on"), null=True, blank=True)
    publication_start = models.DateField(_("publication start"))
    publication_end = models.DateField(_("publication end"))
    retention_end = models.DateField(_("retention end"))
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PUBLISHED
    )
    under_objection = models.BooleanField(_("under objection"), default=False)
    repaired_at = models.DateTimeField(_("repaired on"), null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    content_hash = models.CharField(max_length=64, editable=False)
    # Fields a decided case set, by name, with that case's reference: an import may not change
    # them (it is held as an ImportConflict). NULL, not {}, when none, so the bulk import's COPY
    # can leave the column out.
    decided_fields = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-decision_date", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agency", "record_number"], name="record_number_unique_per_agency"
            ),
            models.CheckConstraint(
                condition=Q(publication_end__gte=F("publication_start")),
                name="record_publication_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(retention_end__gte=F("decision_date")),
                name="record_retention_end_after_decision",
            ),
        ]
        indexes = [
            models.Index(fields=["subject", "decision_date"], name="record_subject_date"),
            # The publication sweep reads only what is still published (corrected or not).
            models.Index(
                fields=["publication_end"],
                condition=Q(status__in=["published", "corrected"]),
                name="record_published_until",
            ),
            models.Index(fields=["retention_end"], name="record_retention_end"),
            # Imports look up the agency's records that carry decided fields (few).
            models.Index(
                fields=["agency", "record_number"],
                condition=Q(decided_fields__isnull=False),
                name="record_decided",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agency_id}:{self.record_number}"


class CreditRecordVersion(models.Model):
    """The content a record had before a change. Nothing is overwritten without one of these."""

    record = models.ForeignKey(CreditRecord, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    category = models.ForeignKey(CatalogueEntry, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=300)
    facts = models.TextField()
    decision_document_number = models.CharField(max_length=100)
    decision_date = models.DateField()
    conduct_ended_on = models.DateField(null=True, blank=True)
    publication_start = models.DateField()
    publication_end = models.DateField()
    retention_end = models.DateField()
    content_hash = models.CharField(max_length=64)
    superseded_at = models.DateTimeField(auto_now_add=True)
    superseded_by_batch = models.ForeignKey(
        "records.ImportBatch", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["record_id", "version"]
        constraints = [
            models.UniqueConstraint(fields=["record", "version"], name="record_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.record_id} v{self.version}"


class ImportBatch(BaseModel):
    class Source(models.TextChoices):
        COMMAND = "command", _("management command")
        API = "api", _("agency API")

    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="import_batches")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    file_name = models.CharField(max_length=255)
    file_format = models.CharField(max_length=10)
    sha256 = models.CharField(max_length=64)
    rows_total = models.PositiveIntegerField(default=0)
    rows_inserted = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    rows_held = models.PositiveIntegerField(
        default=0, help_text="Rows that would have changed fields a decided case set."
    )
    errors = models.JSONField(
        default=list, help_text="The first rejected rows: line, field, reason."
    )
    held = models.JSONField(
        default=list,
        help_text="The first held rows: line, record number, case, fields, conflict.",
    )
    refusals = models.JSONField(
        default=dict,
        help_text="Rejected rows by kind: outside_catalogue, prohibited_data, "
        "invalid_identifier, other.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "import batches"


class ImportConflict(BaseModel):
    """An import row that would have changed fields a decided case set. The decided values
    stay until a caseworker accepts the agency's content (with reasons) or keeps the decision."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        ACCEPTED = "accepted", _("agency's content accepted")
        KEPT = "kept", _("decision kept")

    batch = models.ForeignKey(ImportBatch, on_delete=models.PROTECT, related_name="conflicts")
    record = models.ForeignKey(CreditRecord, on_delete=models.PROTECT, related_name="conflicts")
    line = models.PositiveIntegerField(help_text="The row's line in the imported file.")
    case_reference = models.CharField(max_length=32)
    fields = models.JSONField(
        help_text="Per field held back: the agency's value and the decided value."
    )
    agency_content_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    reasons = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The same agency content held twice against one decision is one conflict.
            models.UniqueConstraint(
                fields=["record", "agency_content_hash", "case_reference"],
                name="import_conflict_once_per_content",
            )
        ]

    def __str__(self) -> str:
        return f"conflict on record {self.record_id} ({self.status})"


class ImportJob(BaseModel):
    """A file pushed through the API, imported by a worker; the caller polls its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    file_name = models.CharField(max_length=255)
    file_format = models.CharField(max_length=10, blank=True)
    # Relative to MEDIA_ROOT (private, never served); removed once the import has run.
    stored_path = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    rows_estimated = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    batch = models.OneToOneField(
        ImportBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="job"
    )
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import job {self.pk} ({self.status})"


class SubjectContact(BaseModel):
    """The contact the platform holds for a subject, where a one-time code proving who someone
    is goes. A table of its own: the bulk import writes `records_subject` column by column.

    The address is personal data: stored encrypted like the identifier, shown masked, never
    logged or audited.
    """

    subject = models.OneToOneField(Subject, on_delete=models.CASCADE, related_name="contact")
    email_encrypted = models.BinaryField(editable=False)
    email_masked = models.CharField(_("email (masked)"), max_length=254, editable=False)

    def __str__(self) -> str:
        return self.email_masked


class SubjectBinding(BaseModel):
    """A user's request to act for a credit subject, and how it was decided.

    The identifier the user typed is kept only as its keyed hash and masked form; `subject` is
    the subject it matched (name and identifier), NULL when nothing matched: the user is told
    the same either way. A verified binding is a guardian grant on the subject
    (`records.services.subject_access_grant`); revoking the binding removes the grant.
    """

    class Method(models.TextChoices):
        ONE_TIME_CODE = "one_time_code", _("one-time code sent to the contact we hold")
        DOCUMENTS = "documents", _("documents checked by a caseworker")

    class Status(models.TextChoices):
        # A context of their own: the same English words name other things elsewhere (a
        # notice waiting to be sent, a refused objection, a record past its retention).
        PENDING = "pending", pgettext_lazy("identity check", "pending")
        VERIFIED = "verified", pgettext_lazy("identity check", "verified")
        REFUSED = "refused", pgettext_lazy("identity check", "refused")
        EXPIRED = "expired", pgettext_lazy("identity check", "expired")
        REVOKED = "revoked", pgettext_lazy("identity check", "revoked")

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subject_bindings"
    )
    subject = models.ForeignKey(
        Subject, on_delete=models.PROTECT, null=True, blank=True, related_name="bindings"
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Subject.Kind.choices)
    claimed_name = models.CharField(_("name given"), max_length=200)
    identifier_hash = models.CharField(max_length=64, editable=False)
    identifier_masked = models.CharField(_("identifier"), max_length=18, editable=False)
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    code_hash = models.CharField(max_length=64, blank=True, editable=False)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(default=0)
    # The authorisation letter of a company's representative, checked and stored as evidence
    # files are (SCS_DATA_DIR/evidence, a random name).
    letter_stored_name = models.CharField(max_length=32, blank=True, editable=False)
    letter_name = models.CharField(_("authorisation letter"), max_length=200, blank=True)
    letter_content_type = models.CharField(max_length=50, blank=True)
    letter_size = models.PositiveIntegerField(null=True, blank=True)
    letter_sha256 = models.CharField(max_length=64, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("decided on"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="binding_user_created"),
            # The identity-check queue: pending document checks, oldest first.
            models.Index(
                fields=["created_at"],
                condition=Q(status="pending", method="documents"),
                name="binding_document_queue",
            ),
        ]

    def __str__(self) -> str:
        return f"binding {self.public_id} ({self.status})"
