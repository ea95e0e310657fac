"""The dashboard queue through the API: the same selector and the same services as the pages."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from objections.apis import CaseSummaryOutput
from objections.dashboard.access import DashboardApi
from objections.dashboard.selectors import (
    QUEUE_KEYS,
    QueueFilterInvalid,
    clock_badge,
    queue_filters_from,
    queue_for_user,
    staff_case_list,
)
from objections.services.assignment import case_assign
from scs_cases.pagination import page_parameters, paged


def _user(request: Request) -> User:
    return cast("User", request.user)


class BadgeOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["on_track", "at_risk", "overdue", "paused", "none"],
        help_text="at_risk: 80 % of the earliest running deadline used; paused: only paused "
        "clocks remain.",
    )
    due_on = serializers.DateField(allow_null=True)
    provisional = serializers.BooleanField()


class QueueRowOutput(CaseSummaryOutput):
    """A queue row as the schema describes it; `queue_row` writes it (see there)."""

    assignee = serializers.CharField(source="assignee.username", allow_null=True, default=None)
    subject_masked = serializers.CharField(source="subject.identifier_masked")
    category = serializers.CharField(source="record.category.code")
    badge = BadgeOutput()


def queue_row(case: Any, *, today: date) -> dict[str, Any]:
    """One row of the queue API, as `QueueRowOutput` describes it. Written out by hand: at 50
    rows a page the serializer's field machinery was a quarter of the request's time."""
    badge = clock_badge(case, today=today)
    record = case.record
    return {
        "reference": case.reference,
        "kind": case.kind,
        "state": case.state,
        "is_open": case.is_open,
        "record": str(record.public_id),
        "record_title": record.title,
        "agency": record.agency.code,
        "responsible_agency": case.responsible_agency.code if case.responsible_agency else None,
        "next_due_on": case.next_due_on.isoformat() if case.next_due_on else None,
        "filed_at": serializers.DateTimeField().to_representation(case.filed_at),
        "lock_version": case.lock_version,
        "assignee": case.assignee.username if case.assignee else None,
        "subject_masked": case.subject.identifier_masked,
        "category": record.category.code,
        "badge": {
            "status": badge.status,
            "due_on": badge.due_on.isoformat() if badge.due_on else None,
            "provisional": badge.provisional,
        },
    }


QUEUE_PARAMETERS = [
    OpenApiParameter("view", str, enum=["mine", "team", "agency"], description="Default mine."),
    OpenApiParameter("state", str),
    OpenApiParameter("kind", str, enum=["objection", "repair", "review", "deletion"]),
    OpenApiParameter("jurisdiction", str, description="A jurisdiction code."),
    OpenApiParameter("agency", int, description="The agency that provided the record."),
    OpenApiParameter("category", int, description="A catalogue entry id."),
    OpenApiParameter("assignee", str, description="A user id, or `none` for unassigned."),
    OpenApiParameter(
        "q", str, description="A case reference, or a subject's full identifier (exact match)."
    ),
]


class QueueApi(APIView):
    """Open cases of one of the caller's queues, by remaining statutory time."""

    permission_classes = [DashboardApi]

    @extend_schema_serializer(component_name="QueuePage")
    class PageOutput(serializers.Serializer):
        results = QueueRowOutput(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="v1_queue_list",
        parameters=QUEUE_PARAMETERS + page_parameters("Cases"),
        responses=PageOutput,
    )
    def get(self, request: Request) -> Response:
        try:
            filters = queue_filters_from(request.query_params)
        except QueueFilterInvalid as error:
            raise ValidationError({error.field: str(error)}) from error
        cases = queue_for_user(user=_user(request), filters=filters)
        today = timezone.localdate()
        return Response(
            paged(
                request,
                cases,
                keys=QUEUE_KEYS,
                output=lambda rows: [queue_row(case, today=today) for case in rows],
            )
        )


class QueueAssignApi(APIView):
    """Assign cases to a person (supervisors), or take a case (a caseworker, to themself)."""

    permission_classes = [DashboardApi]

    @extend_schema_serializer(component_name="QueueAssignInput")
    class InputSerializer(serializers.Serializer):
        cases = serializers.ListField(
            child=serializers.CharField(max_length=32), min_length=1, max_length=200
        )
        assignee = serializers.IntegerField(
            allow_null=True, help_text="A user id; null unassigns (supervisors)."
        )
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema_serializer(component_name="QueueAssignOutput")
    class OutputSerializer(serializers.Serializer):
        assigned = serializers.ListField(child=serializers.CharField())

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        references = [value.strip().upper() for value in data.validated_data["cases"]]
        cases = list(staff_case_list(user=_user(request)).filter(reference__in=references))
        if len(cases) != len(set(references)):
            found = {case.reference for case in cases}
            missing = sorted(set(references) - found)
            raise ValidationError({"cases": [f"Not in your queue: {', '.join(missing)}."]})
        assignee_id = data.validated_data["assignee"]
        assignee = None
        if assignee_id is not None:
            assignee = User.objects.filter(pk=assignee_id).first()
            if assignee is None:
                raise ValidationError({"assignee": ["No such user."]})
        changed = case_assign(
            case_ids=[case.pk for case in cases],
            assignee=assignee,
            actor=_user(request),
            reason=data.validated_data["reason"],
        )
        return Response({"assigned": [case.reference for case in changed]})
