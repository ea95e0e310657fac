"""Open data under the API: the public figures, and the oversight report for staff."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from transparency.selectors import oversight_visible_to, publication_latest


def _not_computed() -> Response:
    return Response(
        {"detail": "The figures have not been computed yet.", "code": "not_computed"}, status=404
    )


class StatsApi(APIView):
    """The public figures (no login): per month and jurisdiction, agency or category; counts
    below the threshold and those that would reveal them are null. See docs/statistics.md."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        publication = publication_latest()
        if publication is None:
            return _not_computed()
        return Response(publication.figures)


class OversightApi(APIView):
    """Import refusals by reason, records published too long, import conflicts and upheld
    objections per category: for supervisors, auditors and administrators."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        if not oversight_visible_to(request.user):  # type: ignore[arg-type]
            return Response({"detail": "Not found.", "code": "not_found"}, status=404)
        publication = publication_latest(oversight=True)
        if publication is None:
            return _not_computed()
        return Response(
            {"computed_at": publication.computed_at.isoformat(), **publication.oversight}
        )
