import copy
import functools
from typing import Any, cast

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    AdminUserCreationForm,
    UsernameField,
)
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from rest_framework.authtoken.admin import TokenAdmin as BaseTokenAdmin
from rest_framework.authtoken.models import TokenProxy

from accounts.models import User
from accounts.services import (
    api_token_issue,
    api_token_revoke,
    role_permissions_set,
    user_create,
    user_details_set,
    user_membership_set,
    user_password_set,
)
from records.admin import KeptRowsAdmin, ServiceErrorsShown


def _actor(request: HttpRequest) -> User:
    return cast(User, request.user)  # the admin site only admits signed-in staff


class UserCreationForm(AdminUserCreationForm):
    """A new account with its roles and agency, so that a caseworker is made in one step."""

    class Meta:
        model = User
        field_classes = {"username": UsernameField}
        fields = ("username", "email", "groups", "agency", "is_staff", "preferred_language")
        labels = {"groups": _("roles")}


class PasswordForm(AdminPasswordChangeForm):
    """Sets the password through the audited service (the event says that it changed, never
    what it is)."""

    def __init__(self, user: User, *args: Any, actor: User, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.actor = actor

    def save(self, commit: bool = True) -> User:
        usable = self.cleaned_data["set_usable_password"]
        user_password_set(
            user_id=self.user.pk,
            actor=self.actor,
            password=self.cleaned_data["password1"] if usable else None,
        )
        self.user.refresh_from_db(fields=["password"])
        return cast(User, self.user)


@admin.register(User)
class UserAdmin(KeptRowsAdmin, BaseUserAdmin):  # type: ignore[misc]
    """Accounts are created and changed through the audited services: details, roles and rights
    (`user_membership_set`), password. They are never deleted: cases and the audit log name
    them; an account that should no longer sign in is made inactive."""

    add_form = UserCreationForm
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "usable_password", "password1", "password2"),
            },
        ),
        (
            _("Roles and agency"),
            {"fields": ("groups", "agency", "is_staff", "email", "preferred_language")},
        ),
    )
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        (
            _("Roles and agency"),
            {"fields": ("groups", "agency", "is_active", "is_staff", "is_superuser")},
        ),
        (_("Preferences"), {"fields": ("preferred_language",)}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("last_login", "date_joined")
    filter_horizontal = ("groups",)
    list_display = ("username", "email", "agency", "is_staff", "is_active")
    list_filter = ("groups", "agency", "is_staff", "is_active")
    list_select_related = ("agency",)
    kept_reason = _(
        "Accounts are not deleted: cases and the audit log name them. Clear “active” instead: "
        "the account can then no longer sign in."
    )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            created = user_create(
                actor=_actor(request),
                username=obj.username,
                password=data["password1"] if data.get("set_usable_password") else None,
                groups=data.get("groups", ()),
                agency=obj.agency,
                is_staff=obj.is_staff,
                email=obj.email,
                preferred_language=obj.preferred_language,
            )
            obj.pk = created.pk
            obj._state.adding = False
            return
        user_details_set(
            user_id=obj.pk,
            actor=_actor(request),
            username=obj.username,
            first_name=obj.first_name,
            last_name=obj.last_name,
            email=obj.email,
            preferred_language=obj.preferred_language,
        )
        user_membership_set(
            user=obj,
            actor=_actor(request),
            groups=data["groups"],
            agency=obj.agency,
            is_staff=obj.is_staff,
            is_superuser=obj.is_superuser,
            is_active=obj.is_active,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The roles were set by the services in save_model; there are no inlines.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        # Django's view builds the form itself; this copy of the admin gives it the actor.
        for_request = copy.copy(self)
        for_request.change_password_form = functools.partial(  # type: ignore[assignment]
            PasswordForm, actor=_actor(request)
        )
        return BaseUserAdmin.user_change_password(for_request, request, id, form_url)


admin.site.unregister(Group)


@admin.register(Group)
class RoleAdmin(KeptRowsAdmin, BaseGroupAdmin):  # type: ignore[misc]
    """Roles are the groups the code names (citizen, caseworker, supervisor, auditor,
    administrator, agency system): their permissions change through the audited service; none
    is added or removed here."""

    readonly_fields = ("name",)
    kept_reason = _("Roles are not deleted: the application refers to each of them by name.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass  # the permissions are the only thing that changes: see save_related

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        role_permissions_set(
            group_id=form.instance.pk,
            permissions=form.cleaned_data["permissions"],
            actor=_actor(request),
        )


admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class ApiTokenAdmin(ServiceErrorsShown, BaseTokenAdmin):  # type: ignore[misc]
    """Agency systems' API tokens, issued and withdrawn through the audited services. The key is
    shown once, to the administrator who issued it, and never listed (an auditor reads these
    pages too), nor kept in the admin's own log."""

    list_display = ("user", "created")
    list_display_links = None

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Nothing to see but the account and the date, both listed; the page would title the
        # token with its key.
        if not self.has_view_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("admin:authtoken_tokenproxy_changelist"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a token is replaced by a new one, never edited

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        key = api_token_issue(user_id=obj.user_id, actor=_actor(request))
        self.message_user(
            request,
            _("The API token of %(user)s is %(key)s. It is shown only this once.")
            % {"user": obj.user, "key": key},
        )

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        # Django's own message would name the token by its key.
        return HttpResponseRedirect(reverse("admin:authtoken_tokenproxy_changelist"))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        api_token_revoke(user_id=obj.user_id, actor=_actor(request))

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None  # its text would be the key; the audit event records the issue

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        return None  # as above; the audit event records the withdrawal
