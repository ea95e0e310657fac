"""The queue (being built)."""

from django.http import HttpRequest, HttpResponse

from objections.dashboard.access import dashboard_page


@dashboard_page
def queue(request: HttpRequest) -> HttpResponse:
    return HttpResponse("")


@dashboard_page
def bulk_assign(request: HttpRequest) -> HttpResponse:
    return HttpResponse("")
