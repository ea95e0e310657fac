from django.urls import path

from accounts import apis

urlpatterns = [
    path("accounts/register/", apis.AccountRegisterApi.as_view(), name="api-account-register"),
    path("accounts/verify/", apis.AccountVerifyApi.as_view(), name="api-account-verify"),
    path(
        "accounts/password-reset/",
        apis.PasswordResetApi.as_view(),
        name="api-password-reset",
    ),
    path(
        "accounts/password-reset/confirm/",
        apis.PasswordResetConfirmApi.as_view(),
        name="api-password-reset-confirm",
    ),
]
