from django.urls import path

from records import apis

urlpatterns = [
    path("me/subjects/", apis.MySubjectsApi.as_view(), name="api-my-subjects"),
    path("me/records/", apis.MyRecordsApi.as_view(), name="api-my-records"),
    path("imports/", apis.ImportCreateApi.as_view(), name="api-imports"),
    path("imports/<int:job_id>/", apis.ImportJobApi.as_view(), name="api-import-job"),
]
