from django.urls import path

from records import views

app_name = "portal"

urlpatterns = [
    path("records/", views.my_records, name="records"),
    path("subjects/<uuid:public_id>/", views.subject_records, name="subject"),
    path("records/<uuid:public_id>/", views.record_detail, name="record"),
]
