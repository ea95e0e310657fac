import dataclasses
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from records.configuration import (
    AgencyFields,
    CatalogueEntryFields,
    JurisdictionFields,
    agency_create,
    agency_update,
    catalogue_entry_create,
    catalogue_entry_update,
    jurisdiction_create,
    jurisdiction_delete,
    jurisdiction_update,
    referenced_by,
)
from records.models import (
    Agency,
    CatalogueEntry,
    CreditRecord,
    CreditRecordVersion,
    ImportBatch,
    ImportConflict,
    Jurisdiction,
    Subject,
    SubjectBinding,
    SubjectUserObjectPermission,
)
from records.services import (
    subject_access_grant,
    subject_access_revoke,
    subject_dishonesty_flag_set,
)
from scs_cases.admin import ReadOnlyAdmin
from scs_cases.errors import DomainError


class ServiceErrorsShown(admin.ModelAdmin):  # type: ignore[type-arg]
    """An admin whose writes go through audited services. A domain error a service raises after
    the form was accepted (a row changed meanwhile) is shown as a message on the page it came
    from, with nothing changed, rather than as a server error."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            self.message_user(request, error.message, level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as error:
            self.message_user(request, error.message, level=messages.ERROR)
            return HttpResponseRedirect(self._change_url(object_id))

    def _change_url(self, object_id: str) -> str:
        opts = self.opts
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=(object_id,))


class KeptRowsAdmin(ServiceErrorsShown):
    """Rows never deleted, because their history refers to them: the delete page says why
    (`kept_reason`) to anyone who could otherwise delete, and refuses the others."""

    kept_reason: Any = ""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not admin.ModelAdmin.has_delete_permission(self, request):
            raise PermissionDenied
        self.message_user(request, self.kept_reason, level=messages.WARNING)
        return HttpResponseRedirect(self._change_url(object_id))


def _actor(request: HttpRequest) -> User:
    return cast(User, request.user)  # the admin site only admits signed-in staff


def _fields(kind: Any, obj: Any) -> Any:
    # The form has put its cleaned values on the instance (and left read-only ones as stored).
    return kind(**{field.name: getattr(obj, field.name) for field in dataclasses.fields(kind)})


class JurisdictionForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Jurisdiction
        fields = ["code", "name_zh", "name_en", "retention_years", "retention_starts_from"]

    def clean_code(self) -> str:
        code: str = self.cleaned_data["code"]
        if self.instance.pk is not None and code != self.instance.code:
            users = referenced_by(self.instance)
            if users:
                raise forms.ValidationError(
                    _("The code cannot change while %(users)s refer to it."),
                    params={"users": ", ".join(users)},
                )
        return code


@admin.register(Jurisdiction)
class JurisdictionAdmin(ServiceErrorsShown):
    """Saved and deleted through the audited services; a jurisdiction anything refers to is
    kept."""

    form = JurisdictionForm
    list_display = ("code", "name_zh", "name_en", "retention_years", "retention_starts_from")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        fields = _fields(JurisdictionFields, obj)
        if change:
            jurisdiction_update(jurisdiction_id=obj.pk, fields=fields, actor=_actor(request))
        else:
            obj.pk = jurisdiction_create(fields=fields, actor=_actor(request)).pk

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each checked and audited
        return actions

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        jurisdiction = self.get_object(request, object_id)
        if jurisdiction is not None and self.has_delete_permission(request, jurisdiction):
            users = referenced_by(jurisdiction)
            if users:
                self.message_user(
                    request,
                    _("The jurisdiction %(code)s cannot be deleted: %(users)s refer to it.")
                    % {"code": jurisdiction.code, "users": ", ".join(users)},
                    level=messages.ERROR,
                )
                return HttpResponseRedirect(self._change_url(object_id))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        jurisdiction_delete(jurisdiction_id=obj.pk, actor=_actor(request))


@admin.register(Agency)
class AgencyAdmin(KeptRowsAdmin):
    """The kind says which body the agency is: credit centre, providing unit, credit service
    agency, development and reform commission or PBoC branch. Saved through the audited
    services."""

    list_display = ("code", "name_zh", "name_en", "jurisdiction", "kind")
    list_filter = ("jurisdiction", "kind")
    list_select_related = ("jurisdiction",)
    search_fields = ("code", "name_zh", "name_en")
    fields = ("code", "name_zh", "name_en", "jurisdiction", "kind")
    kept_reason = _(
        "Agencies are not deleted: their records, cases, staff and audit history refer to them."
    )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        fields = _fields(AgencyFields, obj)
        if change:
            agency_update(agency_id=obj.pk, fields=fields, actor=_actor(request))
        else:
            obj.pk = agency_create(fields=fields, actor=_actor(request)).pk


class CatalogueEntryForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = CatalogueEntry
        fields = [field.name for field in dataclasses.fields(CatalogueEntryFields)]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        shortest = cleaned.get("publication_min_months")
        longest = cleaned.get("publication_max_months")
        if shortest is not None and longest is not None and shortest > longest:
            raise forms.ValidationError(
                _("The minimum publication period cannot be longer than the maximum.")
            )
        return cleaned


@admin.register(CatalogueEntry)
class CatalogueEntryAdmin(KeptRowsAdmin):
    """Saved through the audited services. An entry is made inactive rather than deleted."""

    form = CatalogueEntryForm
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
    list_select_related = ("jurisdiction",)
    search_fields = ("code", "name_zh", "name_en", "legal_basis")
    kept_reason = _(
        "Catalogue entries are not deleted: records and their history refer to them. Clear "
        "“active” instead: imports then refuse records of this category."
    )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        fields = _fields(CatalogueEntryFields, obj)
        if change:
            catalogue_entry_update(entry_id=obj.pk, fields=fields, actor=_actor(request))
        else:
            obj.pk = catalogue_entry_create(fields=fields, actor=_actor(request)).pk


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

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # records, cases and the audit log refer to subjects

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

    # Batches are the imports' own account of what they did: written by the import, never by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SubjectBinding)
class SubjectBindingAdmin(ReadOnlyAdmin):
    """Requests to act for a subject, for reading: they are decided in the dashboard's identity
    checks and ended there or by the user, through audited services. Neither the identifier's
    hash nor the code's is shown."""

    list_display = (
        "public_id",
        "user",
        "kind",
        "claimed_name",
        "identifier_masked",
        "method",
        "status",
        "created_at",
        "decided_at",
    )
    list_filter = ("status", "method", "kind")
    list_select_related = ("user",)
    fields = (
        "public_id",
        "user",
        "subject",
        "kind",
        "claimed_name",
        "identifier_masked",
        "method",
        "status",
        "code_expires_at",
        "code_attempts",
        "letter_name",
        "letter_size",
        "decided_by",
        "decided_at",
        "reason",
        "created_at",
    )
    readonly_fields = fields
    show_full_result_count = False
