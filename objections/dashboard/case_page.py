"""The case page (being built)."""

from django.http import HttpRequest, HttpResponse

from objections.dashboard.access import dashboard_page


@dashboard_page
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    return HttpResponse("")


@dashboard_page
def case_act(request: HttpRequest, reference: str) -> HttpResponse:
    return HttpResponse("")
