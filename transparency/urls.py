from django.urls import path

from transparency import views

app_name = "transparency"

urlpatterns = [
    path("", views.index, name="index"),
    path("figures.json", views.figures_json, name="json"),
    path("figures.csv", views.figures_csv, name="csv"),
    path("oversight/", views.oversight, name="oversight"),
]
