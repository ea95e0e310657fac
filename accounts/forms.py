"""Forms of the sign-in pages."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from accounts.models import User

# Spaces and hyphens people type or paste between groups of a code.
_SEPARATORS = re.compile(r"[\s-]+")


class SecondFactorCodeForm(forms.Form):
    """One code: six digits from an authenticator app or, when verifying, a recovery code."""

    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )

    def __init__(self, *args: object, recovery_codes: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["code"]
        if recovery_codes:
            field.label = _("Code from your authenticator app, or a recovery code")
            field.help_text = _(
                "Six digits from the app, or one of your recovery codes (eight characters)."
            )
        else:
            field.label = _("Code from your authenticator app")
            field.help_text = _("The six digits the app shows now.")
            field.widget.attrs["inputmode"] = "numeric"

    def clean_code(self) -> str:
        code = _SEPARATORS.sub("", self.cleaned_data["code"]).lower()
        if not code.isalnum():
            raise forms.ValidationError(
                _("Enter the code with letters and digits only."), code="invalid"
            )
        return code


class RegistrationForm(forms.Form):
    """A citizen's new account: e-mail address, password twice, and the language of the portal
    and of the e-mails."""

    email = forms.EmailField(
        label=_("Email address"),
        max_length=150,
        help_text=_("We send a link to this address. It is also your username."),
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        help_text=_("At least 12 characters, not a common password."),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    preferred_language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        help_text=_("The language of the portal and of our e-mails to you."),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        email = cleaned.get("email")
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords are not the same."))
        elif first and email:
            try:
                password_validation.validate_password(first, User(username=email, email=email))
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class SignInForm(AuthenticationForm):
    """Django's sign-in form; a citizen's user name is their e-mail address, stored in lower
    case, so an address typed with capitals signs in too."""

    def clean_username(self) -> str:
        username = str(self.cleaned_data.get("username", "")).strip()
        return username.lower() if "@" in username else username
