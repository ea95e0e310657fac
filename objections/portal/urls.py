from django.urls import path

from objections.portal import views

app_name = "portal_cases"

urlpatterns = [
    path("", views.case_list, name="list"),
    path("notices/", views.notice_list, name="notices"),
    path("new/<uuid:public_id>/", views.case_new, name="new"),
    path("<str:reference>/", views.case_detail, name="case"),
    path("<str:reference>/notice/", views.case_notice, name="notice"),
    path("<str:reference>/withdraw/", views.case_withdraw, name="withdraw"),
    path("<str:reference>/review/", views.case_review, name="review"),
    path("<str:reference>/dispute/", views.case_dispute, name="dispute"),
    path("<str:reference>/material/", views.case_material, name="material"),
]
