"""The supervisor's view through the API: the same selectors and the same service as the page."""

from __future__ import annotations

from typing import Any, cast

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from objections.dashboard.access import SupervisorApi
from objections.dashboard.supervision_selectors import (
    cases_at_risk_for_user,
    escalation_get_for_user,
    escalations_for_user,
    series_for_user,
    series_range,
    workload_for_user,
)
from objections.services.assignment import assignable_users
from objections.services.escalations import (
    NOTE_MAX_LENGTH,
    EscalationAction,
    EscalationInvalid,
    escalation_handle,
)


def _user(request: Request) -> User:
    return cast("User", request.user)


class WorkloadRowOutput(serializers.Serializer):
    id = serializers.IntegerField(source="key", allow_null=True)
    name = serializers.CharField(source="label")
    agency = serializers.CharField()
    open = serializers.IntegerField()
    at_risk = serializers.IntegerField()
    overdue = serializers.IntegerField()


class AgencyWorkloadOutput(serializers.Serializer):
    id = serializers.IntegerField(source="key", allow_null=True, help_text="null: not routed.")
    code = serializers.CharField(source="label")
    open = serializers.IntegerField()
    unassigned = serializers.IntegerField()
    at_risk = serializers.IntegerField()
    overdue = serializers.IntegerField()


class CaseAtRiskOutput(serializers.Serializer):
    reference = serializers.CharField()
    state = serializers.CharField()
    responsible_agency = serializers.CharField(
        source="responsible_agency.code", allow_null=True, default=None
    )
    assignee = serializers.CharField(source="assignee.username", allow_null=True, default=None)
    next_due_on = serializers.DateField(allow_null=True)
    risk = serializers.ChoiceField(choices=["overdue", "at_risk"])
    days_late = serializers.IntegerField()


class EscalationClockOutput(serializers.Serializer):
    timer = serializers.CharField()
    due_on = serializers.DateField()
    legal_source = serializers.CharField(source="source_citation")
    source_verified = serializers.BooleanField()


class EscalationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    case = serializers.CharField(source="case.reference")
    state = serializers.CharField(source="case.state")
    assignee = serializers.CharField(source="case.assignee.username", allow_null=True, default=None)
    clock = EscalationClockOutput()
    raised_at = serializers.DateTimeField(source="created_at")
    handled_at = serializers.DateTimeField(source="resolved_at", allow_null=True)
    handled_by = serializers.CharField(source="resolved_by.username", allow_null=True, default=None)


class HandledEscalationOutput(EscalationOutput):
    action = serializers.CharField(help_text="acknowledge or reassign.")
    note = serializers.CharField()


class SupervisionApi(APIView):
    """Workload per caseworker and agency, cases at risk and overdue, escalations."""

    permission_classes = [SupervisorApi]

    @extend_schema_serializer(component_name="Supervision")
    class Output(serializers.Serializer):
        today = serializers.DateField()
        caseworkers = WorkloadRowOutput(many=True)
        agencies = AgencyWorkloadOutput(many=True)
        at_risk = CaseAtRiskOutput(
            many=True, help_text="Overdue and at-risk open cases, most urgent first (at most 50)."
        )
        escalations_open = EscalationOutput(many=True)
        escalations_open_total = serializers.IntegerField()
        escalations_handled = HandledEscalationOutput(many=True)

    @extend_schema(operation_id="v1_supervision_read", responses=Output)
    def get(self, request: Request) -> Response:
        user = _user(request)
        today = timezone.localdate()
        workload = workload_for_user(user=user, today=today)
        escalations = escalations_for_user(user=user)
        data: dict[str, Any] = {
            "today": today,
            "caseworkers": workload.caseworkers,
            "agencies": workload.agencies,
            "at_risk": cases_at_risk_for_user(user=user, today=today),
            "escalations_open": escalations.open,
            "escalations_open_total": escalations.open_total,
            "escalations_handled": escalations.handled,
        }
        return Response(self.Output(data).data)


class EscalationHandleApi(APIView):
    """Handle an escalation once: acknowledge it with a note, or reassign its case."""

    permission_classes = [SupervisorApi]

    @extend_schema_serializer(component_name="EscalationHandleInput")
    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=EscalationAction.choices)
        note = serializers.CharField(max_length=NOTE_MAX_LENGTH)
        assignee = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="reassign: a user id."
        )

    @extend_schema(
        operation_id="v1_escalation_handle", request=InputSerializer, responses=EscalationOutput
    )
    def post(self, request: Request, escalation_id: int) -> Response:
        user = _user(request)
        escalation = escalation_get_for_user(user=user, escalation_id=escalation_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        assignee = None
        if values["assignee"] is not None:
            agency_id = escalation.case.responsible_agency_id or 0
            assignee = next(
                (w for w in assignable_users(agency_id=agency_id) if w.pk == values["assignee"]),
                None,
            )
            if assignee is None:
                raise EscalationInvalid("That person may not work this case.")
        handled = escalation_handle(
            escalation=escalation,
            actor=user,
            action=values["action"],
            note=values["note"],
            assignee=assignee,
        )
        handled = escalation_get_for_user(user=user, escalation_id=handled.pk)
        return Response(EscalationOutput(handled).data)


class SupervisionSeriesApi(APIView):
    """The charts' figures: per day, the open cases at its end and the running deadlines
    overdue and at risk on it (the last 90 days by default, at most 366)."""

    permission_classes = [SupervisorApi]

    class RangeInput(serializers.Serializer):
        start = serializers.DateField(required=False, default=None)
        end = serializers.DateField(required=False, default=None)

    @extend_schema_serializer(component_name="SupervisionSeries")
    class Output(serializers.Serializer):
        days = serializers.ListField(child=serializers.DateField())
        backlog = serializers.ListField(child=serializers.IntegerField())
        overdue = serializers.ListField(child=serializers.IntegerField())
        at_risk = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(
        operation_id="v1_supervision_series",
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATE),
            OpenApiParameter("end", OpenApiTypes.DATE),
        ],
        responses=Output,
    )
    def get(self, request: Request) -> Response:
        chosen = self.RangeInput(data=request.query_params)
        chosen.is_valid(raise_exception=True)
        start, end = series_range(**chosen.validated_data)
        series = series_for_user(user=_user(request), start=start, end=end)
        return Response(self.Output(series).data)
