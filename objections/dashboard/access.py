"""Who may open the dashboard: staff who passed the second factor (django-otp)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse
from django_otp.decorators import otp_required
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts import roles
from accounts.models import User

View = Callable[..., HttpResponse]

# Roles that work in the dashboard. An auditor sees there only the cases granted to them.
DASHBOARD_ROLES = frozenset(
    {roles.CASEWORKER, roles.SUPERVISOR, roles.ADMINISTRATOR, roles.AUDITOR}
)


def is_dashboard_user(user: User) -> bool:
    return user.is_authenticated and bool(roles.role_names(user) & DASHBOARD_ROLES)


def is_supervisor(user: User) -> bool:
    names = roles.role_names(user)
    return roles.SUPERVISOR in names or roles.ADMINISTRATOR in names


def dashboard_page(view: View) -> View:
    """Login required; a 404 for anyone who is not staff; then the second factor."""

    verified = otp_required(view)

    @login_required
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_dashboard_user(cast("User", request.user)):
            raise Http404("No such page.")
        return verified(request, *args, **kwargs)

    return checked


def supervisor_page(view: View) -> View:
    """As `dashboard_page`, and a 404 for anyone but supervisors and administrators."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_supervisor(cast("User", request.user)):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return dashboard_page(checked)


class DashboardApi(BasePermission):
    """The dashboard's API: staff only (anyone else: 404, as for the pages). A browser session
    must have passed the second factor (`accounts.authentication` refuses it otherwise); an API
    token is its own credential."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = cast("User", request.user)
        if not getattr(user, "is_authenticated", False):
            return False
        if not is_dashboard_user(user):
            raise NotFound()
        return True


class SupervisorApi(DashboardApi):
    def has_permission(self, request: Request, view: Any) -> bool:
        allowed = super().has_permission(request, view)
        if allowed and not is_supervisor(cast("User", request.user)):
            raise NotFound()
        return allowed


DASHBOARD_SESSION_KEY = "scs_dashboard"


@receiver(user_logged_in, dispatch_uid="objections.remember_dashboard")
def remember_dashboard(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Keep in the session whether the user works in the dashboard, so that the navigation
    offers the link without a query on every page. Only the link depends on it: the pages
    check the role themselves on every request."""
    if request is not None and hasattr(request, "session"):
        request.session[DASHBOARD_SESSION_KEY] = is_dashboard_user(user)
