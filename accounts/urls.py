"""Sign-in pages, under /accounts/. The names are global: `login`, `second_factor`,
`recovery_codes` (Django and django-otp find the first two by name in settings)."""

from django.urls import path

from accounts import second_factor

urlpatterns = [
    path("login/", second_factor.SignInView.as_view(), name="login"),
    path("second-factor/", second_factor.second_factor, name="second_factor"),
    path(
        "second-factor/recovery-codes/",
        second_factor.recovery_codes,
        name="recovery_codes",
    ),
]
