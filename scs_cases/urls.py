from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from audit.views import public_key_view, public_keys_view

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("i18n/", include("django.conf.urls.i18n")),
    # login (staff go on to the second factor), second_factor, recovery_codes
    path("accounts/", include("accounts.urls")),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("portal/", include("records.urls", namespace="portal")),
    path("portal/cases/", include("objections.portal.urls", namespace="portal_cases")),
    path("dashboard/", include("objections.dashboard.urls", namespace="dashboard")),
    path("api/v1/", include("records.api_urls")),
    path("api/v1/", include("objections.api_urls")),
    path("api/v1/", include("transparency.api_urls")),
    path("api/v1/", include("audit.api_urls")),
    path("api/v1/", include("accounts.api_urls")),
    path("transparency/", include("transparency.urls", namespace="transparency")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("audit/public-key.pem", public_key_view, name="audit-public-key"),
    path("audit/public-keys.pem", public_keys_view, name="audit-public-keys"),
    path("audit/", include("audit.urls", namespace="audit")),
    path("admin/", admin.site.urls),
]
