"""REST API of the registry: disclosure to subjects and bulk import for agency systems."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.models import User
from accounts.roles import ADMINISTRATOR, AGENCY_SYSTEM, has_role
from records.import_jobs import import_job_create, import_job_get_for_user, import_job_rows_read
from records.imports import ImportFileInvalid
from records.models import ImportJob
from records.selectors import record_list_for_user, subject_get_for_user, subject_list_for_user
from records.uploads import CappedUploadHandler
from scs_cases.pagination import Key, page_parameters, paged

RECORD_KEYS = (Key("decision_date", descending=True), Key("id", descending=True))


class SubjectOutput(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    kind = serializers.CharField()
    name = serializers.CharField()
    identifier = serializers.CharField(source="identifier_masked")


class DisputeStatementOutput(serializers.Serializer):
    case = serializers.CharField(source="case.reference")
    text = serializers.CharField()
    created_at = serializers.DateTimeField()


class RecordOutput(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    subject = serializers.UUIDField(source="subject.public_id")
    agency = serializers.SerializerMethodField()
    record_number = serializers.CharField()
    category = serializers.SerializerMethodField()
    title = serializers.CharField()
    facts = serializers.CharField()
    decision_document_number = serializers.CharField()
    decision_date = serializers.DateField()
    conduct_ended_on = serializers.DateField(allow_null=True)
    publication_start = serializers.DateField()
    publication_end = serializers.DateField()
    retention_end = serializers.DateField()
    status = serializers.CharField()
    under_objection = serializers.BooleanField()
    version = serializers.IntegerField()
    dispute_statements = serializers.SerializerMethodField(
        help_text="The applicant's statements of dispute after refused objections, shown "
        "wherever the record is shown."
    )

    @extend_schema_field(DisputeStatementOutput(many=True))
    def get_dispute_statements(self, record: Any) -> list[dict[str, Any]]:
        return list(DisputeStatementOutput(record.dispute_statements.all(), many=True).data)

    def get_agency(self, record: Any) -> dict[str, str]:
        agency = record.agency
        return {
            "code": agency.code,
            "name_zh": agency.name_zh,
            "name_en": agency.name_en,
            "jurisdiction": agency.jurisdiction.code,
        }

    def get_category(self, record: Any) -> dict[str, str]:
        category = record.category
        return {
            "code": category.code,
            "name_zh": category.name_zh,
            "name_en": category.name_en,
            "severity": category.severity,
            "legal_basis": category.legal_basis,
        }


class MySubjectsApi(APIView):
    @extend_schema(responses=SubjectOutput(many=True))
    def get(self, request: Request) -> Response:
        subjects = subject_list_for_user(user=request.user)  # type: ignore[arg-type]
        return Response(SubjectOutput(subjects, many=True).data)


class MyRecordsApi(APIView):
    @extend_schema_serializer(component_name="RecordPage")
    class PageOutput(serializers.Serializer):
        results = RecordOutput(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="v1_me_records_list",
        parameters=[
            OpenApiParameter("subject", str, description="A subject's id (optional)."),
            *page_parameters("Records"),
        ],
        responses=PageOutput,
    )
    def get(self, request: Request) -> Response:
        user = cast(User, request.user)
        subject = None
        if subject_id := request.query_params.get("subject"):
            subject = subject_get_for_user(user=user, public_id=subject_id)
        return Response(
            paged(
                request,
                record_list_for_user(user=user, subject=subject),
                keys=RECORD_KEYS,
                output=lambda rows: RecordOutput(rows, many=True).data,
            )
        )


class CanImportRecords(BasePermission):
    message = "Only an agency system or an administrator belonging to an agency may import."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.agency_id is not None  # type: ignore[union-attr]
            and (has_role(user, AGENCY_SYSTEM) or has_role(user, ADMINISTRATOR))  # type: ignore[arg-type]
        )


class ImportOutput(serializers.Serializer):
    batch = serializers.IntegerField(source="batch_id")
    sha256 = serializers.CharField()
    rows_total = serializers.IntegerField()
    rows_inserted = serializers.IntegerField()
    rows_updated = serializers.IntegerField()
    rows_unchanged = serializers.IntegerField()
    rows_rejected = serializers.IntegerField()
    rows_held = serializers.IntegerField(
        help_text="Rows that would have changed fields a decided case set: those fields were "
        "kept and the row is held as an import conflict."
    )
    # Declared fields are taken off the class, so Serializer.errors is not shadowed at run time.
    errors = serializers.SerializerMethodField()  # type: ignore[assignment]
    errors_not_listed = serializers.IntegerField()
    held = serializers.SerializerMethodField()

    def get_errors(self, report: Any) -> list[dict[str, Any]]:
        return [error.as_dict() for error in report.errors[:1_000]]

    def get_held(self, report: Any) -> list[dict[str, Any]]:
        return [row.as_dict() for row in report.held[:1_000]]


class ImportJobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    file_name = serializers.CharField()
    size = serializers.IntegerField()
    rows_estimated = serializers.IntegerField()
    rows_read = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.SerializerMethodField()
    report = serializers.SerializerMethodField()

    def get_rows_read(self, job: Any) -> int:
        return import_job_rows_read(job)

    def get_error(self, job: Any) -> dict[str, str] | None:
        if job.status != ImportJob.Status.FAILED:
            return None
        return {"code": job.error_code, "detail": job.error}

    def get_report(self, job: Any) -> dict[str, Any] | None:
        batch = job.batch
        if batch is None:
            return None
        listed = len({error.get("line") for error in batch.errors})
        return {
            "batch": batch.pk,
            "sha256": batch.sha256,
            "rows_total": batch.rows_total,
            "rows_inserted": batch.rows_inserted,
            "rows_updated": batch.rows_updated,
            "rows_unchanged": batch.rows_unchanged,
            "rows_rejected": batch.rows_rejected,
            "rows_held": batch.rows_held,
            "errors": batch.errors,
            "errors_not_listed": max(batch.rows_rejected - listed, 0),
            "held": batch.held,
        }


class ImportCreateApi(APIView):
    """Push a CSV or NDJSON file of records for the caller's agency: 202 and a job to poll."""

    permission_classes = [CanImportRecords]
    parser_classes = [MultiPartParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "import"

    @extend_schema_serializer(component_name="ImportInput")
    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(choices=["csv", "ndjson"], required=False)

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # The cap is enforced while the body is read: an oversized file is never stored.
        if request.method == "POST":
            request.upload_handlers = [
                CappedUploadHandler(request, limit=settings.IMPORT_MAX_UPLOAD_BYTES),
                *request.upload_handlers,
            ]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request=InputSerializer, responses={202: ImportJobOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        capped = next(
            (h for h in request.upload_handlers if isinstance(h, CappedUploadHandler)), None
        )
        if capped is not None and capped.exceeded:
            raise ImportFileInvalid(
                f"The file is larger than {settings.IMPORT_MAX_UPLOAD_BYTES} bytes; split it."
            )
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        job = import_job_create(
            actor=cast(User, request.user),
            stream=upload,
            file_name=upload.name or "upload",
            file_format=data.validated_data.get("format", ""),
        )
        return Response(
            ImportJobOutput(job).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": reverse("api-import-job", kwargs={"job_id": job.pk})},
        )


class ImportJobApi(APIView):
    """An import's progress (rows read of those estimated) and, once done, its row report."""

    permission_classes = [CanImportRecords]

    @extend_schema(responses=ImportJobOutput)
    def get(self, request: Request, job_id: int) -> Response:
        job = import_job_get_for_user(user=cast(User, request.user), job_id=job_id)
        return Response(ImportJobOutput(job).data)
