"""Portal pages for proving who you are: the request, the code, the list of one's links, ending
a link. As thin as the API: the decisions are in `records.binding`."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from records.binding import (
    CODE_DIGITS,
    BindingCodeExpired,
    BindingCodeWrong,
    BindingInvalid,
    BindingNotPending,
    BindingThrottled,
    binding_confirm_code,
    binding_request,
    binding_revoke,
    queued_message,
    sent_message,
)
from records.binding_selectors import (
    binding_get_for_user,
    binding_list_for_user,
    code_expired,
)
from records.models import Subject, SubjectBinding

TOO_MANY_REQUESTS = 429


class BindForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Who are you proving to be?"),
        choices=[
            (Subject.Kind.PERSON, gettext_lazy("Myself (a natural person)")),
            (Subject.Kind.ORGANISATION, gettext_lazy("A company I represent")),
        ],
        widget=forms.RadioSelect,
        initial=Subject.Kind.PERSON,
    )
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=200,
        help_text=gettext_lazy("Your full name, or the company's registered name."),
    )
    identifier = forms.CharField(
        label=gettext_lazy("Resident ID number or unified social credit code"),
        max_length=40,
        help_text=gettext_lazy("18 characters."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    letter = forms.FileField(
        label=gettext_lazy("Authorisation letter (companies only)"),
        required=False,
        help_text=gettext_lazy(
            "A PDF, JPEG or PNG of the letter by which the company authorises you, with its "
            "seal. A caseworker checks it."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png"}),
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=12,
        help_text=gettext_lazy("The 6 digits in the message we sent."),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean_code(self) -> str:
        code = "".join(str(self.cleaned_data["code"]).split())
        if len(code) != CODE_DIGITS or not code.isdigit():
            raise forms.ValidationError(_("Enter the 6 digits of the code."))
        return code


def _user(request: HttpRequest) -> User:
    return cast("User", request.user)


def _address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def bind(request: HttpRequest) -> HttpResponse:
    """Ask to be linked to a credit subject."""
    status = 200
    if request.method == "POST":
        form = BindForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                binding = binding_request(
                    user=_user(request),
                    kind=data["kind"],
                    name=data["name"],
                    identifier=data["identifier"],
                    letter=data.get("letter"),
                    address=_address(request),
                )
            except BindingInvalid as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            except BindingThrottled as error:
                form.add_error(None, error.message)
                status = TOO_MANY_REQUESTS
            else:
                messages.info(
                    request,
                    sent_message()
                    if binding.method == SubjectBinding.Method.ONE_TIME_CODE
                    else queued_message(),
                )
                return HttpResponseRedirect(reverse("portal:binding", args=[binding.public_id]))
    else:
        form = BindForm()
    return render(request, "portal/binding_request.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def binding_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    """One request: its status, and the code form while a code is awaited."""
    user = _user(request)
    binding = binding_get_for_user(user=user, public_id=public_id)
    status = 200
    form = CodeForm()
    if request.method == "POST":
        form = CodeForm(request.POST)
        if form.is_valid():
            try:
                binding_confirm_code(
                    user=user, public_id=binding.public_id, code=form.cleaned_data["code"]
                )
            except (BindingCodeWrong, BindingCodeExpired, BindingNotPending) as error:
                form.add_error("code", error.message)
            except BindingThrottled as error:
                form.add_error("code", error.message)
                status = TOO_MANY_REQUESTS
            else:
                messages.success(
                    request,
                    _("You have proved who you are. The records about this subject are shown now."),
                )
                return HttpResponseRedirect(reverse("portal:binding", args=[binding.public_id]))
        binding.refresh_from_db()
    context: dict[str, Any] = {
        "binding": binding,
        "form": form,
        "awaiting_code": binding.status == SubjectBinding.Status.PENDING
        and binding.method == SubjectBinding.Method.ONE_TIME_CODE
        and not code_expired(binding),
    }
    return render(request, "portal/binding_detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD"])
def binding_list(request: HttpRequest) -> HttpResponse:
    bindings = list(binding_list_for_user(user=_user(request))[:100])
    return render(request, "portal/binding_list.html", {"bindings": bindings})


@login_required
@require_POST
def binding_end(request: HttpRequest, public_id: str) -> HttpResponse:
    """End one's own verified link: the subject is no longer shown from the next page on."""
    user = _user(request)
    binding = binding_get_for_user(user=user, public_id=public_id)
    try:
        binding_revoke(public_id=binding.public_id, actor=user)
    except BindingNotPending as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The link has been ended."))
    return HttpResponseRedirect(reverse("portal:bindings"))
