"""Django's admin on a site that asks staff for the second factor.

Installed through the admin's documented `default_site` (INSTALLED_APPS names
SecondFactorAdminConfig in place of django.contrib.admin), so `admin.site` and `@admin.register`
everywhere are this site. Staff who signed in but have not passed the second factor are sent to
the second-factor page (enrolment or verification) and come back to the admin page they asked for.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.urls import reverse


def _verified(user: Any) -> bool:
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


class SecondFactorAdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and _verified(request.user)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # Imported here: this module is loaded with the app registry, before models may be.
        from django.contrib.auth.views import redirect_to_login

        user = request.user
        if request.method == "GET" and user.is_active and user.is_staff and not _verified(user):
            wanted = request.GET.get(REDIRECT_FIELD_NAME) or reverse(
                "admin:index", current_app=self.name
            )
            response: HttpResponse = redirect_to_login(
                wanted, login_url=settings.OTP_LOGIN_URL, redirect_field_name=REDIRECT_FIELD_NAME
            )
            return response
        return super().login(request, extra_context)


class SecondFactorAdminConfig(AdminConfig):
    default_site = "scs_cases.admin_site.SecondFactorAdminSite"
