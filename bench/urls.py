"""The URLconf and WSGI application that `bench.dashboard_queue` serves with gunicorn.

The URLs are the project's plus a bare view that reads one case by primary key: the least a
Django page can do with the database, served by the same process, middleware and session as the
pages it is compared with. The WSGI application wraps Django's and adds to every response what
the server spent on it (`Server-Timing: app;dur=<ms>, db;dur=<ms>`, measured around Django's
handler: every middleware, the view and the template, not the network) and how many statements
it ran (`X-Bench-Statements`), of which how many counted rows (`X-Bench-Counts`: COUNT(*), what
`QuerySet.count()` and a paginator run). Nothing here is
part of the project's own URLs or settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path


def bare_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One case's reference, read by primary key."""
    from objections.models import Case

    case = Case.objects.only("reference").get(pk=pk)
    return HttpResponse(case.reference, content_type="text/plain; charset=utf-8")


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/bare/<int:pk>/", bare_view),
    path("", include("scs_cases.urls")),
]


class _Statements:
    """An execute wrapper that counts statements, COUNT(*)s among them, and their time."""

    def __init__(self) -> None:
        self.count = 0
        self.counts = 0
        self.seconds = 0.0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        self.count += 1
        if "COUNT(*)" in sql.upper():
            self.counts += 1
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - start


StartResponse = Callable[..., Any]
_django: Callable[[dict[str, Any], StartResponse], Iterable[bytes]] | None = None


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    global _django
    if _django is None:
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application

        _django = get_wsgi_application()  # django.setup()
        settings.ROOT_URLCONF = __name__  # before the first request resolves a URL
    from django.db import connections

    statements = _Statements()
    held: list[Any] = []

    def hold(status: str, headers: list[tuple[str, str]], *rest: Any) -> Callable[..., Any]:
        held[:] = [status, headers, *rest]
        return lambda data: None  # Django never uses write()

    start = time.perf_counter()
    with connections["default"].execute_wrapper(statements):
        body = _django(environ, hold)
    spent = (time.perf_counter() - start) * 1000
    status, headers, *rest = held
    headers = [
        *headers,
        ("Server-Timing", f"app;dur={spent:.3f}, db;dur={statements.seconds * 1000:.3f}"),
        ("X-Bench-Statements", str(statements.count)),
        ("X-Bench-Counts", str(statements.counts)),
    ]
    start_response(status, headers, *rest)
    return body
