from django.urls import path

from records import apis, binding_apis

urlpatterns = [
    path("me/subjects/", apis.MySubjectsApi.as_view(), name="api-my-subjects"),
    path("me/records/", apis.MyRecordsApi.as_view(), name="api-my-records"),
    path("imports/", apis.ImportCreateApi.as_view(), name="api-imports"),
    path("imports/<int:job_id>/", apis.ImportJobApi.as_view(), name="api-import-job"),
]

urlpatterns += [
    path("bindings/", binding_apis.BindingListApi.as_view(), name="api-bindings"),
    path("bindings/<uuid:public_id>/", binding_apis.BindingApi.as_view(), name="api-binding"),
    path(
        "bindings/<uuid:public_id>/confirm/",
        binding_apis.BindingConfirmApi.as_view(),
        name="api-binding-confirm",
    ),
    path(
        "bindings/<uuid:public_id>/revoke/",
        binding_apis.BindingRevokeApi.as_view(),
        name="api-binding-revoke",
    ),
    path(
        "identity-checks/",
        binding_apis.IdentityCheckListApi.as_view(),
        name="api-identity-checks",
    ),
    path(
        "identity-checks/<uuid:public_id>/decide/",
        binding_apis.IdentityCheckDecideApi.as_view(),
        name="api-identity-check-decide",
    ),
]
