from typing import Any, cast

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from accounts.models import User
from accounts.services import user_membership_set

# What decides what a user may do: saved through the audited service, not by the form.
MEMBERSHIP_FIELDS = ("groups", "agency", "is_staff", "is_superuser", "is_active")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (
        *BaseUserAdmin.fieldsets,  # type: ignore[misc]
        ("scs-cases", {"fields": ("agency", "preferred_language")}),
    )
    list_display = ("username", "email", "agency", "is_staff", "is_active")
    list_filter = ("groups", "agency", "is_staff", "is_active")
    list_select_related = ("agency",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            # The form has set the new values on the instance; store the old ones here and let
            # save_related apply the new ones through the service.
            stored = User.objects.get(pk=obj.pk)
            for name in MEMBERSHIP_FIELDS[1:]:
                setattr(obj, name, getattr(stored, name))
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        groups = form.cleaned_data.pop("groups", None)
        super().save_related(request, form, formsets, change)
        if not change or groups is None:
            return
        user_membership_set(
            user=form.instance,
            actor=cast(User, request.user),
            groups=groups,
            agency=form.cleaned_data.get("agency"),
            is_staff=form.cleaned_data.get("is_staff", False),
            is_superuser=form.cleaned_data.get("is_superuser", False),
            is_active=form.cleaned_data.get("is_active", True),
        )
