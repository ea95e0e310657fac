from django.urls import path

from objections import apis

urlpatterns = [
    path("cases/", apis.CaseListCreateApi.as_view(), name="api-cases"),
    path("cases/<str:reference>/", apis.CaseDetailApi.as_view(), name="api-case"),
    path(
        "cases/<str:reference>/transitions/",
        apis.CaseTransitionApi.as_view(),
        name="api-case-transitions",
    ),
    path(
        "cases/<str:reference>/approvals/<int:approval_id>/",
        apis.CaseApprovalApi.as_view(),
        name="api-case-approval",
    ),
]
