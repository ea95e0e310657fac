"""The auditors' export API: request an export, follow it, download its bundle (audit.exports).

Only auditors and administrators use it; to anyone else every endpoint answers 404, as does an
export another user requested, so that neither the feature nor an export's existence leaks.
"""

from __future__ import annotations

from typing import cast

from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from audit.exports import (
    audit_export_allowed,
    audit_export_download,
    audit_export_get_for_user,
    audit_export_list_for_user,
    audit_export_request,
)
from scs_cases.pagination import Key, page_parameters, paged

EXPORT_KEYS = (Key("id", descending=True),)


def _auditor(request: Request) -> User:
    user = cast(User, request.user)
    if not audit_export_allowed(user):
        raise Http404("Not found.")
    return user


class AuditExportOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    filters = serializers.JSONField()
    progress = serializers.IntegerField(help_text="Events written so far.")
    total = serializers.IntegerField(help_text="Events to write, counted before writing.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    sha256 = serializers.CharField(help_text="The zip's sha256, once done.")
    size = serializers.IntegerField(help_text="The zip's size in bytes, once done.")
    error = serializers.CharField()
    download = serializers.SerializerMethodField()

    def get_download(self, export: object) -> str | None:
        if getattr(export, "status", "") != "done":
            return None
        return reverse("api-audit-export-download", kwargs={"export_id": export.pk})  # type: ignore[attr-defined]


class AuditExportListApi(APIView):
    """An auditor's exports, newest first; POST requests a new one (202, built by a worker)."""

    @extend_schema_serializer(component_name="AuditExportInput")
    class InputSerializer(serializers.Serializer):
        filters = serializers.JSONField(
            help_text='Exactly one of {"case_reference": ...}, {"from": "YYYY-MM-DD", "to": '
            '"YYYY-MM-DD"} (Asia/Shanghai days, inclusive), {"agency": code}, {"actor_id": id}.'
        )

    @extend_schema_serializer(component_name="AuditExportPage")
    class PageOutput(serializers.Serializer):
        results = AuditExportOutput(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="v1_audit_exports_list",
        parameters=page_parameters("Exports"),
        responses=PageOutput,
    )
    def get(self, request: Request) -> Response:
        user = _auditor(request)
        return Response(
            paged(
                request,
                audit_export_list_for_user(user=user),
                keys=EXPORT_KEYS,
                output=lambda rows: AuditExportOutput(rows, many=True).data,
            )
        )

    @extend_schema(request=InputSerializer, responses={202: AuditExportOutput})
    def post(self, request: Request) -> Response:
        user = _auditor(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        export = audit_export_request(actor=user, filters=data.validated_data["filters"])
        return Response(
            AuditExportOutput(export).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": reverse("api-audit-export", kwargs={"export_id": export.pk})},
        )


class AuditExportApi(APIView):
    """One of the caller's exports: its status and progress."""

    @extend_schema(responses=AuditExportOutput)
    def get(self, request: Request, export_id: int) -> Response:
        export = audit_export_get_for_user(user=_auditor(request), export_id=export_id)
        return Response(AuditExportOutput(export).data)


class AuditExportDownloadApi(APIView):
    """The finished bundle, as an attachment (409 until the export is done). Each download is
    recorded in the audit log."""

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY),
            409: OpenApiResponse(description="The export is not done."),
        }
    )
    def get(self, request: Request, export_id: int) -> FileResponse:
        export, path = audit_export_download(actor=_auditor(request), export_id=export_id)
        response = FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"audit-export-{export.pk}.zip",
            content_type="application/zip",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response
