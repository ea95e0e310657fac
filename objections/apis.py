"""REST API of cases: file, list, read (with what the caller may do now), transition, approve."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django.db.models import Value
from django.db.models.functions import Coalesce
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.models import User
from objections.models import Case, PendingApproval
from objections.selectors import (
    case_clocks,
    case_get_for_user,
    case_list_for_user,
    case_pending_approval,
)
from objections.services import (
    TransitionInput,
    case_approval_decide,
    case_file,
    case_transition,
    case_transitions_available,
)
from records.selectors import record_get_for_user
from scs_cases.pagination import Key, page_parameters, paged

# Remaining statutory time first; a case without a running deadline after those with one.
CASE_KEYS = (Key("is_open", descending=True), Key("due_key"), Key("id"))
NO_DEADLINE = date(9999, 12, 31)


def _user(request: Request) -> User:
    return cast(User, request.user)


class ClockOutput(serializers.Serializer):
    timer = serializers.CharField()
    state = serializers.CharField()
    unit = serializers.CharField()
    amount = serializers.IntegerField()
    extended_by = serializers.IntegerField()
    started_on = serializers.DateField()
    due_on = serializers.DateField()
    status = serializers.CharField()
    provisional = serializers.BooleanField(
        help_text="The deadline reaches a year whose State Council schedule is not known yet: "
        "it was counted Monday to Friday less the computed statutory holidays, and is "
        "recomputed when the year is completed."
    )
    provisional_years = serializers.ListField(child=serializers.IntegerField())
    trace = serializers.CharField()
    legal_source = serializers.CharField(source="source_citation")
    source_verified = serializers.BooleanField()
    escalated = serializers.SerializerMethodField()

    def get_escalated(self, clock: Any) -> bool:
        return clock.escalated_at is not None


class CaseSummaryOutput(serializers.Serializer):
    reference = serializers.CharField()
    kind = serializers.CharField()
    state = serializers.CharField()
    is_open = serializers.BooleanField()
    record = serializers.UUIDField(source="record.public_id")
    record_title = serializers.CharField(source="record.title")
    agency = serializers.CharField(source="record.agency.code")
    responsible_agency = serializers.CharField(
        source="responsible_agency.code", allow_null=True, default=None
    )
    next_due_on = serializers.DateField(allow_null=True)
    filed_at = serializers.DateTimeField()
    lock_version = serializers.IntegerField()


class CaseDetailOutput(CaseSummaryOutput):
    grounds = serializers.CharField()
    statement = serializers.CharField()
    requested_remedy = serializers.CharField()
    fields_objected = serializers.ListField(child=serializers.CharField())
    outcome = serializers.CharField()
    reasons = serializers.CharField()
    workflow = serializers.SerializerMethodField()
    available_transitions = serializers.SerializerMethodField()
    clocks = serializers.SerializerMethodField()
    pending_approval = serializers.SerializerMethodField()

    def get_workflow(self, case: Any) -> dict[str, Any] | None:
        if case.workflow is None:
            return None
        return {
            "key": case.workflow.key,
            "version": case.workflow.version,
            "parameters_verified": case.workflow.parameters_verified,
        }

    def get_available_transitions(self, case: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": step.name,
                "to": step.target,
                "requires": list(step.requires),
                "second_person": step.second_person,
            }
            for step in case_transitions_available(user=self.context["user"], case=case)
        ]

    def get_clocks(self, case: Any) -> list[dict[str, Any]]:
        return list(ClockOutput(case_clocks(case=case), many=True).data)

    def get_pending_approval(self, case: Any) -> dict[str, Any] | None:
        approval = case_pending_approval(case=case)
        if approval is None:
            return None
        return {"id": approval.pk, "transition": approval.transition}


class CaseListCreateApi(APIView):
    throttle_scope = "filing"

    @extend_schema_serializer(component_name="CaseFilingInput")
    class InputSerializer(serializers.Serializer):
        record = serializers.UUIDField()
        kind = serializers.ChoiceField(choices=[Case.Kind.OBJECTION, Case.Kind.REPAIR])
        grounds = serializers.ChoiceField(choices=Case.Grounds.choices)
        statement = serializers.CharField(max_length=10_000)
        requested_remedy = serializers.ChoiceField(choices=Case.Remedy.choices)
        fields_objected = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, default=list
        )
        correction = serializers.DictField(required=False, default=dict)

    def get_throttles(self) -> list[Any]:
        return [ScopedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema_serializer(component_name="CasePage")
    class PageOutput(serializers.Serializer):
        results = CaseSummaryOutput(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="v1_cases_list", parameters=page_parameters("Cases"), responses=PageOutput
    )
    def get(self, request: Request) -> Response:
        cases = case_list_for_user(user=_user(request)).annotate(
            due_key=Coalesce("next_due_on", Value(NO_DEADLINE))
        )
        return Response(
            paged(
                request,
                cases,
                keys=CASE_KEYS,
                output=lambda rows: CaseSummaryOutput(rows, many=True).data,
            )
        )

    @extend_schema(request=InputSerializer, responses={201: CaseDetailOutput})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        record = record_get_for_user(user=_user(request), public_id=values.pop("record"))
        case = case_file(actor=_user(request), record=record, **values)
        case = case_get_for_user(user=_user(request), reference=case.reference)
        return Response(
            CaseDetailOutput(case, context={"user": _user(request)}).data,
            status=status.HTTP_201_CREATED,
        )


class CaseDetailApi(APIView):
    @extend_schema(responses=CaseDetailOutput)
    def get(self, request: Request, reference: str) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        return Response(CaseDetailOutput(case, context={"user": _user(request)}).data)


class CaseTransitionApi(APIView):
    @extend_schema_serializer(component_name="CaseTransitionInput")
    class InputSerializer(serializers.Serializer):
        transition = serializers.CharField(max_length=64)
        reasons = serializers.CharField(required=False, allow_blank=True, default="")
        outcome = serializers.ChoiceField(
            choices=Case.Outcome.choices, required=False, allow_blank=True, default=""
        )
        material_request = serializers.CharField(required=False, allow_blank=True, default="")
        statement = serializers.CharField(required=False, allow_blank=True, default="")
        extension_reason = serializers.CharField(required=False, allow_blank=True, default="")
        extension_days = serializers.IntegerField(required=False, min_value=0, default=0)
        lock_version = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(request=InputSerializer, responses=CaseDetailOutput)
    def post(self, request: Request, reference: str) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        transition = values.pop("transition")
        lock_version = values.pop("lock_version", None)
        case_transition(
            case_id=case.pk,
            transition=transition,
            actor=_user(request),
            data=TransitionInput(**values),
            expected_lock_version=lock_version,
        )
        case = case_get_for_user(user=_user(request), reference=reference)
        return Response(CaseDetailOutput(case, context={"user": _user(request)}).data)


class CaseApprovalApi(APIView):
    @extend_schema_serializer(component_name="CaseApprovalInput")
    class InputSerializer(serializers.Serializer):
        approve = serializers.BooleanField()
        reasons = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=CaseDetailOutput)
    def post(self, request: Request, reference: str, approval_id: int) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        approval = PendingApproval.objects.filter(pk=approval_id, case=case).first()
        if approval is None:
            return Response({"detail": "No such approval."}, status=status.HTTP_404_NOT_FOUND)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case_approval_decide(approval_id=approval.pk, actor=_user(request), **data.validated_data)
        case = case_get_for_user(user=_user(request), reference=reference)
        return Response(CaseDetailOutput(case, context={"user": _user(request)}).data)
