from django.urls import path

from audit import pages

app_name = "audit"

urlpatterns = [
    path("", pages.events, name="events"),
    path("cases/<str:reference>/", pages.case_history, name="case"),
    path("cases/<str:reference>/dossier/", pages.case_dossier, name="dossier"),
    path("integrity/", pages.integrity, name="integrity"),
    path("exports/", pages.exports, name="exports"),
]
