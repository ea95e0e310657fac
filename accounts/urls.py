"""Sign-in pages, under /accounts/. The names are global: `login`, `second_factor`,
`recovery_codes` (Django and django-otp find the first two by name in settings); the citizen
account pages `register`, `register_done`, `verify_email` and Django's `password_reset*` names."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import registration, second_factor

urlpatterns = [
    path("login/", second_factor.SignInView.as_view(), name="login"),
    path("second-factor/", second_factor.second_factor, name="second_factor"),
    path(
        "second-factor/recovery-codes/",
        second_factor.recovery_codes,
        name="recovery_codes",
    ),
    path("register/", registration.register, name="register"),
    path("register/done/", registration.register_done, name="register_done"),
    path("verify/<str:token>/", registration.verify, name="verify_email"),
    path(
        "password-reset/",
        registration.PasswordResetView.as_view(),
        name="password_reset",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        registration.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
]
