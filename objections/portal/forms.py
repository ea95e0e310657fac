"""Forms of the citizen's case pages. They check the shape of what was typed; every rule about
cases (which grounds, which fields may be corrected and to what, who may take a step) is the
services' to apply, and their refusals are shown as they come."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from objections.models import Case
from records.content import DATE_FIELDS, FIELD_LABELS, MAX_LENGTHS, TEXT_FIELDS

KIND_CHOICES = [
    (Case.Kind.OBJECTION.value, _("Object: the record is wrong or should not be published")),
    (
        Case.Kind.REPAIR.value,
        _("Apply for credit repair: the record is right, the obligation is met"),
    ),
]

# The grounds a citizen chooses from, per kind of case (the model's fixed list).
GROUNDS_BY_KIND: dict[str, list[str]] = {
    Case.Kind.OBJECTION: [
        Case.Grounds.INACCURATE,
        Case.Grounds.NOT_ME,
        Case.Grounds.INCOMPLETE,
        Case.Grounds.OUTSIDE_CATALOGUE,
        Case.Grounds.PERIOD_ENDED,
        Case.Grounds.PRIVACY,
        Case.Grounds.OTHER,
    ],
    Case.Kind.REPAIR: [Case.Grounds.OBLIGATION_FULFILLED, Case.Grounds.DECISION_REVOKED],
}

FIELD_ORDER = tuple(name for name in FIELD_LABELS if name in TEXT_FIELDS + DATE_FIELDS)


class KindForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("What do you want to do?"), choices=KIND_CHOICES, widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, allowed: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed = allowed

    def clean_kind(self) -> str:
        kind: str = self.cleaned_data["kind"]
        if kind not in self.allowed:
            raise forms.ValidationError(
                _("This cannot be filed about this record now (see why above).")
            )
        return kind


class GroundsForm(forms.Form):
    grounds = forms.ChoiceField(label=_("Grounds"), widget=forms.RadioSelect)

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = dict(Case.Grounds.choices)
        field = self.fields["grounds"]
        assert isinstance(field, forms.ChoiceField)  # noqa: S101 (narrows the type)
        field.choices = [(str(g), names[g]) for g in GROUNDS_BY_KIND[kind]]


class FieldsForm(forms.Form):
    """The fields objected to, each with the value proposed; a date as YYYY-MM-DD."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in FIELD_ORDER:
            self.fields[f"object_{name}"] = forms.BooleanField(
                label=_("I object to: %(field)s") % {"field": FIELD_LABELS[name]}, required=False
            )
            if name in DATE_FIELDS:
                field: forms.Field = forms.DateField(
                    label=_("Proposed %(field)s") % {"field": FIELD_LABELS[name]},
                    required=False,
                    input_formats=["%Y-%m-%d"],
                    help_text=_("As YYYY-MM-DD."),
                    widget=forms.DateInput(attrs={"type": "date"}),
                )
            else:
                field = forms.CharField(
                    label=_("Proposed %(field)s") % {"field": FIELD_LABELS[name]},
                    required=False,
                    max_length=MAX_LENGTHS[name],
                    widget=forms.Textarea(attrs={"rows": 3}) if name == "facts" else None,
                )
            self.fields[f"proposed_{name}"] = field

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in FIELD_ORDER:
            if cleaned.get(f"object_{name}") and cleaned.get(f"proposed_{name}") in (None, ""):
                self.add_error(
                    f"proposed_{name}",
                    _("Give the value you propose for %(field)s, or untick it.")
                    % {"field": FIELD_LABELS[name]},
                )
        return cleaned

    def selection(self) -> tuple[list[str], dict[str, str]]:
        """(fields objected to, the proposed values as JSON text) from a valid form."""
        names = [n for n in FIELD_ORDER if self.cleaned_data.get(f"object_{n}")]
        values = {}
        for name in names:
            value = self.cleaned_data[f"proposed_{name}"]
            values[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return names, values


class StatementForm(forms.Form):
    statement = forms.CharField(
        label=_("Your statement"),
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("What is wrong, and how you know. At most 10,000 characters."),
    )
    requested_remedy = forms.ChoiceField(
        label=_("What should happen to the record?"),
        choices=Case.Remedy.choices,
        widget=forms.RadioSelect,
    )


class EvidenceForm(forms.Form):
    """The last step: files go with the submission itself, so the filing stays all or nothing."""

    confirm = forms.BooleanField(
        label=_("I confirm that what I have written is true to the best of my knowledge."),
    )


class MaterialForm(forms.Form):
    statement = forms.CharField(
        label=_("Your answer"),
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class ReviewForm(forms.Form):
    statement = forms.CharField(
        label=_("Why the decision should be reviewed"),
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class WithdrawForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("Yes, withdraw this case. It cannot be reopened; you may file a new one later.")
    )


class DisputeForm(forms.Form):
    text = forms.CharField(
        label=_("Your statement of dispute"),
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("It is kept with the record and shown wherever the record is shown."),
    )
