from django.urls import path

from objections.dashboard import case_page, evidence_views, identity, queue, supervision

app_name = "dashboard"

urlpatterns = [
    path("", queue.queue, name="queue"),
    path("assign/", queue.bulk_assign, name="bulk_assign"),
    path("cases/<str:reference>/", case_page.case_detail, name="case"),
    path("cases/<str:reference>/act/", case_page.case_act, name="case_act"),
    path("supervision/", supervision.overview, name="supervision"),
    path("supervision/reassign/", supervision.reassign, name="supervision_reassign"),
    path(
        "supervision/escalations/<int:pk>/handle/",
        supervision.handle_escalation,
        name="supervision_escalation_handle",
    ),
]
urlpatterns += [
    path(
        "cases/<str:reference>/evidence/<uuid:public_id>/",
        evidence_views.evidence_file,
        name="evidence_file",
    ),
    path(
        "cases/<str:reference>/evidence/<uuid:public_id>/view/",
        evidence_views.evidence_view,
        name="evidence_view",
    ),
]
urlpatterns += [
    path("identity/", identity.identity_queue, name="identity"),
    path("identity/<uuid:public_id>/decide/", identity.identity_decide, name="identity_decide"),
    path("identity/<uuid:public_id>/letter/", identity.identity_letter, name="identity_letter"),
]
