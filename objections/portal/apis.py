"""REST API of the citizen's pages that the case API does not already give: their notices and a
case's public timeline."""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from objections.portal.selectors import case_timeline, notice_list_for_user, state_label
from objections.selectors import case_get_for_user
from scs_cases.pagination import Key, page_parameters, paged

NOTICE_KEYS = (Key("id", descending=True),)


def _user(request: Request) -> User:
    return cast(User, request.user)


class NoticeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    case = serializers.CharField(source="case.reference")
    event = serializers.CharField()
    subject = serializers.CharField()
    body = serializers.CharField()
    status = serializers.CharField(help_text="pending, sent or failed: the email's delivery.")
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)


class NoticeListApi(APIView):
    """The caller's own notices, newest first: the emails about their cases, as sent."""

    @extend_schema_serializer(component_name="NoticePage")
    class PageOutput(serializers.Serializer):
        results = NoticeOutput(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="v1_notices_list", parameters=page_parameters("Notices"), responses=PageOutput
    )
    def get(self, request: Request) -> Response:
        notices = notice_list_for_user(user=_user(request)).order_by("-id")
        return Response(
            paged(
                request,
                notices,
                keys=NOTICE_KEYS,
                output=lambda rows: NoticeOutput(rows, many=True).data,
            )
        )


class TimelineEntryOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    text = serializers.CharField(help_text="What happened, in the request's language.")


class CaseTimelineOutput(serializers.Serializer):
    reference = serializers.CharField()
    state = serializers.CharField(help_text="Where the case stands, in the request's language.")
    events = TimelineEntryOutput(many=True)


class CaseTimelineApi(APIView):
    """What happened on a case that its applicant may see: no internal notes, no staff names."""

    @extend_schema(operation_id="v1_cases_timeline", responses=CaseTimelineOutput)
    def get(self, request: Request, reference: str) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        body: dict[str, Any] = {
            "reference": case.reference,
            "state": state_label(case),
            "events": case_timeline(case=case),
        }
        return Response(CaseTimelineOutput(body).data)
