"""The supervisor's view (placeholder until it is built)."""

from django.http import HttpRequest, HttpResponse

from objections.dashboard.access import supervisor_page


@supervisor_page
def overview(request: HttpRequest) -> HttpResponse:
    return HttpResponse("")
