"""REST API of a case's evidence files: list, add (multipart), download.

Anyone who may see the case lists and downloads what `evidence_list_for_user` gives them (staff:
every file; the applicant: those shared with them and their own); anything else is a 404, a
guessed id included. A download is always an attachment of the sniffed type, never rendered by
the browser; staff downloads are recorded as reads.
"""

from __future__ import annotations

import uuid
from typing import cast

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from audit.reads import read_by_staff
from objections.evidence.selectors import evidence_get_for_user, evidence_list_for_user
from objections.evidence.serving import evidence_file_response, evidence_read_record
from objections.evidence.uploads import (
    EvidenceRestMultiPartParser,
    EvidenceUploads,
    evidence_uploaded,
)
from objections.models import Evidence
from objections.selectors import case_get_for_user
from objections.services.evidence import evidence_attach


def _user(request: Request) -> User:
    return cast(User, request.user)


class EvidenceOutput(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField(source="original_name")
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    visibility = serializers.CharField()
    uploaded_by = serializers.CharField(source="uploaded_by.username")
    uploaded_at = serializers.DateTimeField(source="created_at")


class CaseEvidenceApi(EvidenceUploads):
    parser_classes = [EvidenceRestMultiPartParser]

    @extend_schema_serializer(component_name="EvidenceInput")
    class InputSerializer(serializers.Serializer):
        evidence = serializers.ListField(
            child=serializers.FileField(),
            allow_empty=False,
            help_text="PDF, JPEG or PNG files (checked by their content), up to 20 MB each and "
            "10 per case.",
        )
        visibility = serializers.ChoiceField(
            choices=Evidence.Visibility.choices,
            required=False,
            help_text="Staff only (default internal); the applicant's files are shared.",
        )

    @extend_schema(responses=EvidenceOutput(many=True))
    def get(self, request: Request, reference: str) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        files = evidence_list_for_user(user=_user(request), case=case)
        return Response(EvidenceOutput(files, many=True).data)

    @extend_schema(
        request={"multipart/form-data": InputSerializer}, responses={201: EvidenceOutput(many=True)}
    )
    def post(self, request: Request, reference: str) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        files = evidence_uploaded(request)
        data = self.InputSerializer(data={**request.POST.dict(), "evidence": files})
        data.is_valid(raise_exception=True)
        rows = evidence_attach(
            case=case,
            files=files,
            actor=_user(request),
            visibility=data.validated_data.get("visibility"),
        )
        return Response(EvidenceOutput(rows, many=True).data, status=status.HTTP_201_CREATED)


class CaseEvidenceFileApi(APIView):
    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        description="The file as an attachment, of its sniffed type (PDF, JPEG or PNG).",
    )
    def get(self, request: Request, reference: str, public_id: uuid.UUID) -> FileResponse:
        user = _user(request)
        case = case_get_for_user(user=user, reference=reference)
        evidence = evidence_get_for_user(user=user, case=case, public_id=public_id)
        response = evidence_file_response(evidence)
        if read_by_staff(user):
            # Before the file leaves: no record of the read, no file.
            try:
                evidence_read_record(user=user, case=case, evidence=evidence)
            except BaseException:
                response.close()
                raise
        return response
