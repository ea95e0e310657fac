from django.urls import path

from objections import apis, evidence_apis, queue_apis, supervision_apis
from objections.portal import apis as portal_apis

urlpatterns = [
    path("import-conflicts/", apis.ImportConflictListApi.as_view(), name="api-import-conflicts"),
    path(
        "import-conflicts/<int:conflict_id>/resolve/",
        apis.ImportConflictResolveApi.as_view(),
        name="api-import-conflict-resolve",
    ),
    path("queue/", queue_apis.QueueApi.as_view(), name="api-queue"),
    path("queue/assign/", queue_apis.QueueAssignApi.as_view(), name="api-queue-assign"),
    path("cases/", apis.CaseListCreateApi.as_view(), name="api-cases"),
    path("cases/<str:reference>/", apis.CaseDetailApi.as_view(), name="api-case"),
    path(
        "cases/<str:reference>/transitions/",
        apis.CaseTransitionApi.as_view(),
        name="api-case-transitions",
    ),
    path(
        "cases/<str:reference>/dispute-statement/",
        apis.CaseDisputeStatementApi.as_view(),
        name="api-case-dispute-statement",
    ),
    path(
        "cases/<str:reference>/approvals/<int:approval_id>/",
        apis.CaseApprovalApi.as_view(),
        name="api-case-approval",
    ),
    path("supervision/", supervision_apis.SupervisionApi.as_view(), name="api-supervision"),
    path(
        "escalations/<int:escalation_id>/handle/",
        supervision_apis.EscalationHandleApi.as_view(),
        name="api-escalation-handle",
    ),
    path(
        "supervision/series/",
        supervision_apis.SupervisionSeriesApi.as_view(),
        name="api-supervision-series",
    ),
]
urlpatterns += [
    path(
        "cases/<str:reference>/evidence/",
        evidence_apis.CaseEvidenceApi.as_view(),
        name="api-case-evidence",
    ),
    path(
        "cases/<str:reference>/evidence/<uuid:public_id>/",
        evidence_apis.CaseEvidenceFileApi.as_view(),
        name="api-case-evidence-file",
    ),
]
urlpatterns += [
    path("notices/", portal_apis.NoticeListApi.as_view(), name="api-notices"),
    path(
        "cases/<str:reference>/timeline/",
        portal_apis.CaseTimelineApi.as_view(),
        name="api-case-timeline",
    ),
]
