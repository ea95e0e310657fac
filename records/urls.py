from django.urls import path

from records import binding_views, views

app_name = "portal"

urlpatterns = [
    path("records/", views.my_records, name="records"),
    path("subjects/<uuid:public_id>/", views.subject_records, name="subject"),
    path("records/<uuid:public_id>/", views.record_detail, name="record"),
]

urlpatterns += [
    path("bind/", binding_views.bind, name="bind"),
    path("bindings/", binding_views.binding_list, name="bindings"),
    path("bindings/<uuid:public_id>/", binding_views.binding_detail, name="binding"),
    path("bindings/<uuid:public_id>/end/", binding_views.binding_end, name="binding_end"),
]
