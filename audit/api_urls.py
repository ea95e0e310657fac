from django.urls import path

from audit import apis

urlpatterns = [
    path("audit/exports/", apis.AuditExportListApi.as_view(), name="api-audit-exports"),
    path("audit/exports/<int:export_id>/", apis.AuditExportApi.as_view(), name="api-audit-export"),
    path(
        "audit/exports/<int:export_id>/download/",
        apis.AuditExportDownloadApi.as_view(),
        name="api-audit-export-download",
    ),
]
