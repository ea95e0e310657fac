"""How the OpenAPI schema describes the API's session sign-in (drf-spectacular extension)."""

from drf_spectacular.authentication import SessionScheme


class SecondFactorSessionScheme(SessionScheme):
    target_class = "accounts.authentication.SecondFactorSessionAuthentication"
