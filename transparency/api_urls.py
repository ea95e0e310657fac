from django.urls import path

from transparency import apis

urlpatterns = [
    path("stats/", apis.StatsApi.as_view(), name="api-stats"),
    path("stats/oversight/", apis.OversightApi.as_view(), name="api-stats-oversight"),
]
