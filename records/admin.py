from typing import Any, cast

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import User
from records.models import (
    Agency,
    CatalogueEntry,
    CreditRecord,
    CreditRecordVersion,
    ImportBatch,
    ImportConflict,
    Jurisdiction,
    Subject,
    SubjectUserObjectPermission,
)
from records.services import (
    subject_access_grant,
    subject_access_revoke,
    subject_dishonesty_flag_set,
)
from scs_cases.admin import ReadOnlyAdmin


@admin.register(Jurisdiction)
class JurisdictionAdmin(admin.ModelAdmin):
    list_display = ("code", "name_zh", "name_en", "retention_years", "retention_starts_from")


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    list_display = ("code", "name_zh", "name_en", "jurisdiction", "kind")
    list_filter = ("jurisdiction", "kind")
    search_fields = ("code", "name_zh", "name_en")


@admin.register(CatalogueEntry)
class CatalogueEntryAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name_zh",
        "jurisdiction",
        "severity",
        "information_kind",
        "publication_min_months",
        "publication_max_months",
        "repairable",
        "active",
    )
    list_filter = ("jurisdiction", "severity", "information_kind", "active")
    search_fields = ("code", "name_zh", "name_en", "legal_basis")


class SubjectGrantInline(admin.TabularInline):
    """Grants of 'act for this subject'. Saved through the service so each one is audited."""

    model = SubjectUserObjectPermission
    fields = ("user",)
    raw_id_fields = ("user",)
    extra = 1
    verbose_name = "user who may act for this subject"
    verbose_name_plural = "users who may act for this subject"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(permission__codename="act_for_subject")


@admin.register(Subject)
class SubjectAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "identifier_masked", "on_serious_dishonesty_list")
    list_filter = ("kind", "on_serious_dishonesty_list")
    search_fields = ("name",)
    # The name comes from the agencies' imports; only the dishonesty flag is decided here, and
    # it goes through its audited service.
    readonly_fields = ("public_id", "kind", "name", "identifier_masked")
    fields = ("public_id", "kind", "name", "identifier_masked", "on_serious_dishonesty_list")
    inlines = [SubjectGrantInline]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # subjects arrive through imports, which validate and encrypt identifiers

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if "on_serious_dishonesty_list" in form.changed_data:
            subject_dishonesty_flag_set(
                subject=obj,
                flagged=form.cleaned_data["on_serious_dishonesty_list"],
                actor=cast(User, request.user),
                reason="set in the admin",
            )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not SubjectUserObjectPermission:
            super().save_formset(request, form, formset, change)
            return
        subject = form.instance
        actor = cast(User, request.user)  # the admin site only admits signed-in staff
        formset.save(commit=False)
        for grant in formset.deleted_objects:
            subject_access_revoke(subject=subject, user=grant.user, actor=actor)
        for grant in formset.new_objects:
            subject_access_grant(subject=subject, user=grant.user, actor=actor)
        # The admin's change message names each added row: the rows the service stored, not the
        # unsaved form instances, which have no permission yet.
        formset.new_objects = list(
            SubjectUserObjectPermission.objects.filter(
                content_object=subject,
                permission__codename="act_for_subject",
                user__in=[grant.user for grant in formset.new_objects],
            ).select_related("permission", "user")
        )


@admin.register(CreditRecord)
class CreditRecordAdmin(admin.ModelAdmin):
    list_display = (
        "record_number",
        "agency",
        "category",
        "decision_date",
        "status",
        "under_objection",
    )
    list_filter = ("status", "under_objection", "agency__jurisdiction")
    search_fields = ("record_number", "decision_document_number")
    list_select_related = ("agency", "category")
    show_full_result_count = False
    raw_id_fields = ("subject",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # records change only through imports and case decisions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CreditRecordVersion)
class CreditRecordVersionAdmin(ReadOnlyAdmin):
    """Read-only: a version is written by the import or a decided correction, never by hand."""

    list_display = ("record", "version", "superseded_at")
    raw_id_fields = ("record",)


@admin.register(ImportConflict)
class ImportConflictAdmin(ReadOnlyAdmin):
    """Read-only: conflicts are held by imports and resolved by caseworkers (API, dashboard)."""

    list_display = ("id", "record", "case_reference", "status", "created_at", "resolved_at")
    list_filter = ("status",)
    raw_id_fields = ("record", "batch")


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "agency",
        "source",
        "file_name",
        "rows_total",
        "rows_inserted",
        "rows_updated",
        "rows_rejected",
        "created_at",
    )
    list_filter = ("agency", "source")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
