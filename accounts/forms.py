"""Forms of the sign-in pages."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

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
