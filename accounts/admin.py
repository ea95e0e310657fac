from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (
        *BaseUserAdmin.fieldsets,  # type: ignore[misc]
        ("scs-cases", {"fields": ("agency", "preferred_language")}),
    )
    list_display = ("username", "email", "agency", "is_staff", "is_active")
    list_filter = ("groups", "agency", "is_staff", "is_active")
    list_select_related = ("agency",)
