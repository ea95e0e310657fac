"""REST API for proving who you are, as the portal pages do it, and the identity-check queue
for credit-centre staff, as the dashboard does it. Thin: `records.binding` decides."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from records.binding import (
    BindingInvalid,
    binding_confirm_code,
    binding_decide,
    binding_request,
    binding_revoke,
    queued_message,
    sent_message,
)
from records.binding_selectors import (
    binding_get_for_user,
    binding_list_for_user,
    identity_check_get,
    identity_check_list,
    identity_checker,
)
from records.models import Subject, SubjectBinding
from records.uploads import CappedUploadHandler

LIST_LIMIT = 100


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    field = serializers.CharField(required=False)


@extend_schema_serializer(component_name="Binding")
class BindingOutput(serializers.Serializer):
    """A request to act for a subject. The subject is named only once the request is verified:
    before that, nothing says whether the details matched a subject."""

    id = serializers.UUIDField(source="public_id")
    kind = serializers.CharField()
    name = serializers.CharField(source="claimed_name")
    identifier = serializers.CharField(source="identifier_masked")
    method = serializers.ChoiceField(choices=SubjectBinding.Method.choices)
    status = serializers.CharField(
        help_text="pending, verified, refused, expired (a code not used in time, or five wrong "
        "codes) or revoked."
    )
    reason = serializers.CharField(help_text="Why a caseworker refused the request.")
    subject = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_subject(self, binding: SubjectBinding) -> str | None:
        if binding.status != SubjectBinding.Status.VERIFIED or binding.subject is None:
            return None
        return str(binding.subject.public_id)


@extend_schema_serializer(component_name="BindingAccepted")
class BindingAcceptedOutput(BindingOutput):
    detail = serializers.CharField(help_text="The same answer whether the details matched.")


class CheckSubjectOutput(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()
    identifier = serializers.CharField(source="identifier_masked")
    kind = serializers.CharField()


@extend_schema_serializer(component_name="IdentityCheck")
class IdentityCheckOutput(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    account = serializers.CharField(source="user.username")
    kind = serializers.CharField()
    name = serializers.CharField(source="claimed_name")
    identifier = serializers.CharField(source="identifier_masked")
    subject = CheckSubjectOutput(allow_null=True, help_text="The subject the details matched.")
    status = serializers.CharField()
    letter = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    @extend_schema_serializer(component_name="IdentityCheckLetter")
    class LetterOutput(serializers.Serializer):
        name = serializers.CharField()
        content_type = serializers.CharField()
        size = serializers.IntegerField()
        download = serializers.CharField(help_text="The dashboard's download (an attachment).")

    @extend_schema_field(LetterOutput)
    def get_letter(self, binding: SubjectBinding) -> dict[str, Any]:
        return {
            "name": binding.letter_name,
            "content_type": binding.letter_content_type,
            "size": binding.letter_size or 0,
            "download": reverse("dashboard:identity_letter", args=[binding.public_id]),
        }


class BindingListApi(APIView):
    """The caller's own requests to act for a subject (GET), or a new one (POST): a person's
    name and resident ID number (a code goes to the contact we hold for the subject), or a
    company's name, unified social credit code and authorisation letter (multipart, `letter`;
    a caseworker checks it)."""

    @extend_schema_serializer(component_name="BindingInput")
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Subject.Kind.choices)
        name = serializers.CharField(max_length=200)
        identifier = serializers.CharField(
            max_length=40, help_text="Resident ID number or unified social credit code."
        )
        letter = serializers.FileField(
            required=False, help_text="The authorisation letter (companies): PDF, JPEG or PNG."
        )

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # A letter past the cap stops the upload while it streams: it is never stored.
        if request.method == "POST":
            request.upload_handlers = [
                CappedUploadHandler(request, limit=settings.SCS_EVIDENCE_MAX_BYTES),
                *request.upload_handlers,
            ]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(operation_id="v1_bindings_list", responses=BindingOutput(many=True))
    def get(self, request: Request) -> Response:
        bindings = binding_list_for_user(user=cast(User, request.user))[:LIST_LIMIT]
        return Response(BindingOutput(bindings, many=True).data)

    @extend_schema(
        operation_id="v1_bindings_create",
        request={
            "application/json": InputSerializer,
            "multipart/form-data": InputSerializer,
        },
        responses={
            202: BindingAcceptedOutput,
            400: OpenApiResponse(ErrorOutput, description="A malformed identifier or letter."),
            429: OpenApiResponse(ErrorOutput, description="Too many requests."),
        },
    )
    def post(self, request: Request) -> Response:
        capped = next(
            (h for h in request.upload_handlers if isinstance(h, CappedUploadHandler)), None
        )
        data = self.InputSerializer(data=request.data)
        if capped is not None and capped.exceeded:
            raise BindingInvalid(
                "The authorisation letter may be at most "
                f"{settings.SCS_EVIDENCE_MAX_BYTES // (1024 * 1024)} MB.",
                field="letter",
            )
        data.is_valid(raise_exception=True)
        values = data.validated_data
        binding = binding_request(
            user=cast(User, request.user),
            kind=values["kind"],
            name=values["name"],
            identifier=values["identifier"],
            letter=values.get("letter"),
            address=str(request.META.get("REMOTE_ADDR", "")),
        )
        body = dict(BindingOutput(binding).data)
        body["detail"] = (
            sent_message()
            if binding.method == SubjectBinding.Method.ONE_TIME_CODE
            else queued_message()
        )
        return Response(
            body,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": reverse("api-binding", args=[binding.public_id])},
        )


class BindingApi(APIView):
    @extend_schema(operation_id="v1_bindings_retrieve", responses=BindingOutput)
    def get(self, request: Request, public_id: str) -> Response:
        binding = binding_get_for_user(user=cast(User, request.user), public_id=public_id)
        return Response(BindingOutput(binding).data)


class BindingConfirmApi(APIView):
    """The code sent to the subject's contact. Five wrong codes lock the request (429)."""

    @extend_schema_serializer(component_name="BindingConfirmInput")
    class InputSerializer(serializers.Serializer):
        code = serializers.RegexField(r"^\s*\d{6}\s*$", help_text="The 6-digit code.")

    @extend_schema(
        request=InputSerializer,
        responses={
            200: BindingOutput,
            400: OpenApiResponse(ErrorOutput, description="A wrong or expired code."),
            409: OpenApiResponse(ErrorOutput, description="The request is not waiting."),
            429: OpenApiResponse(ErrorOutput, description="Too many wrong codes."),
        },
    )
    def post(self, request: Request, public_id: str) -> Response:
        user = cast(User, request.user)
        binding = binding_get_for_user(user=user, public_id=public_id)  # 404 first
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        binding = binding_confirm_code(
            user=user, public_id=binding.public_id, code=data.validated_data["code"]
        )
        return Response(BindingOutput(binding).data)


class BindingRevokeApi(APIView):
    """End the caller's verified link: the subject is not shown from the next request on."""

    @extend_schema(
        request=None,
        responses={
            200: BindingOutput,
            409: OpenApiResponse(ErrorOutput, description="The link is not verified."),
        },
    )
    def post(self, request: Request, public_id: str) -> Response:
        user = cast(User, request.user)
        binding = binding_get_for_user(user=user, public_id=public_id)
        binding = binding_revoke(public_id=binding.public_id, actor=user)
        return Response(BindingOutput(binding).data)


class IdentityChecker(BasePermission):
    """Credit-centre caseworkers and supervisors, and administrators; a 404 for anyone else.
    A staff session counts only once it passed the second factor (the authentication class)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = cast(User, request.user)
        if not getattr(user, "is_authenticated", False):
            return False
        if not identity_checker(user):
            raise NotFound()
        return True


class IdentityCheckListApi(APIView):
    """Pending document checks, oldest first."""

    permission_classes = [IdentityChecker]

    @extend_schema(responses=IdentityCheckOutput(many=True))
    def get(self, request: Request) -> Response:
        checks = identity_check_list(user=cast(User, request.user))[:LIST_LIMIT]
        return Response(IdentityCheckOutput(checks, many=True).data)


class IdentityCheckDecideApi(APIView):
    permission_classes = [IdentityChecker]

    @extend_schema_serializer(component_name="IdentityCheckDecision")
    class InputSerializer(serializers.Serializer):
        approve = serializers.BooleanField()
        reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=2000,
            help_text="Required to refuse; shown to the representative.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: IdentityCheckOutput,
            400: OpenApiResponse(ErrorOutput, description="A refusal without a reason."),
            409: OpenApiResponse(ErrorOutput, description="Already decided, or no subject."),
        },
    )
    def post(self, request: Request, public_id: str) -> Response:
        user = cast(User, request.user)
        check = identity_check_get(user=user, public_id=public_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        binding = binding_decide(public_id=check.public_id, actor=user, **data.validated_data)
        return Response(IdentityCheckOutput(binding).data)
