from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect

from accounts.models import User
from objections import workflow
from objections.exceptions import FilingRefused
from objections.models import (
    CalendarOverride,
    CalendarYear,
    Case,
    CaseReferencePrefix,
    Clock,
    Decision,
    Escalation,
    WorkflowDefinition,
    WorkflowRoute,
)
from objections.services.calendars import (
    calendar_override_delete,
    calendar_override_set,
    calendar_year_complete,
    calendar_year_missing,
    calendar_year_reopen,
)
from objections.services.definitions import workflow_definition_publish
from objections.services.routes import workflow_route_set
from scs_cases.admin import ReadOnlyAdmin
from scs_cases.errors import DomainError


class WorkflowDefinitionForm(forms.ModelForm):
    class Meta:
        model = WorkflowDefinition
        fields = ["source_text"]
        widgets = {"source_text": forms.Textarea(attrs={"rows": 40, "cols": 120})}

    def clean_source_text(self) -> str:
        text: str = self.cleaned_data["source_text"]
        try:
            workflow.parse_definition(text, origin="edited definition")
        except workflow.DefinitionError as error:
            raise forms.ValidationError(list(error.problems)) from error
        return text


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(admin.ModelAdmin):
    """Editing a definition publishes a new version; stored versions never change."""

    form = WorkflowDefinitionForm
    list_display = ("key", "version", "is_current", "parameters_verified", "created_at")
    list_filter = ("is_current", "parameters_verified", "jurisdiction")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["key", "version", "is_current", "parameters_verified", "source_hash"] if obj else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["source_text"]
        return ["key", "version", "is_current", "parameters_verified", "source_hash", "source_text"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        row, created = workflow_definition_publish(
            source_text=form.cleaned_data["source_text"], actor=cast(User, request.user)
        )
        obj.pk = row.pk
        if created:
            messages.success(request, f"Published {row.key} version {row.version}.")
        else:
            messages.info(request, "The text is identical to the current version; nothing changed.")

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponseRedirect:
        return HttpResponseRedirect("../../")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CalendarOverride)
class CalendarOverrideAdmin(admin.ModelAdmin):
    """Each save or removal goes through the calendar service, which audits it (who, which day,
    before, after, the notice). Other processes pick a change up within a minute; this one at
    once."""

    list_display = ("day", "working", "source")
    date_hierarchy = "day"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A different day is a different override: remove this one and add that one.
        return ["day"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        row = calendar_override_set(
            actor=cast(User, request.user), day=obj.day, working=obj.working, source=obj.source
        )
        obj.pk = row.pk

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        calendar_override_delete(actor=cast(User, request.user), day=obj.day)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for day in queryset.values_list("day", flat=True):
            calendar_override_delete(actor=cast(User, request.user), day=day)


class CalendarYearForm(forms.ModelForm):
    class Meta:
        model = CalendarYear
        fields = ["year", "source"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        year = cleaned.get("year") or self.instance.year
        if year is not None:
            try:
                missing = calendar_year_missing(year=year)
            except DomainError as error:
                raise forms.ValidationError(error.message) from error
            if missing:
                raise forms.ValidationError(
                    [
                        f"{year} cannot be marked complete until its overrides cover the State "
                        "Council notice. Missing:",
                        *missing,
                    ]
                )
        return cleaned


@admin.register(CalendarYear)
class CalendarYearAdmin(admin.ModelAdmin):
    """Marking a year complete requires every statutory holiday entered as a day off; completing
    it recomputes the provisional deadlines that counted in it. Audited like every calendar
    change."""

    form = CalendarYearForm
    list_display = ("year", "source")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["year"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        row = calendar_year_complete(
            actor=cast(User, request.user), year=obj.year, source=obj.source
        )
        obj.pk = row.pk

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        calendar_year_reopen(actor=cast(User, request.user), year=obj.year)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for year in queryset.values_list("year", flat=True):
            calendar_year_reopen(actor=cast(User, request.user), year=year)


class ClockInline(admin.TabularInline):
    model = Clock
    fields = (
        "timer",
        "state",
        "unit",
        "amount",
        "extended_by",
        "due_on",
        "provisional",
        "status",
        "trace",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("reference", "kind", "state", "is_open", "responsible_agency", "next_due_on")
    list_filter = ("kind", "is_open", "jurisdiction")
    search_fields = ("reference",)
    raw_id_fields = ("record", "subject", "filed_by", "representative", "assignee", "parent")
    inlines = [ClockInline]
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cases change only through the workflow

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Escalation)
class EscalationAdmin(ReadOnlyAdmin):
    """Read-only: escalations are raised by the clock sweep and handled in the workflow."""

    list_display = ("case", "clock", "created_at", "resolved_at")
    raw_id_fields = ("case", "clock", "resolved_by")


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    """Read-only: a decision is recorded by the step that takes it."""

    list_display = ("case", "transition", "outcome", "remedy", "decided_by", "created_at")
    list_filter = ("outcome", "remedy")
    raw_id_fields = ("case", "record", "decided_by", "approved_by")


@admin.register(WorkflowRoute)
class WorkflowRouteAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Which workflow runs a jurisdiction's cases; saved through the audited service, which
    refuses a workflow of another kind or jurisdiction."""

    list_display = (
        "jurisdiction",
        "kind",
        "information_kind",
        "holder_kind",
        "workflow_key",
        "updated_at",
    )
    fields = ("jurisdiction", "kind", "information_kind", "holder_kind", "workflow_key")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        narrowing = ("jurisdiction", "kind", "information_kind", "holder_kind")
        return narrowing if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        try:
            saved = workflow_route_set(
                jurisdiction=obj.jurisdiction,
                kind=obj.kind,
                workflow_key=obj.workflow_key,
                actor=request.user,  # type: ignore[arg-type]
                information_kind=obj.information_kind,
                holder_kind=obj.holder_kind,
            )
        except FilingRefused as error:
            self.message_user(request, error.message, level=messages.ERROR)
            return
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CaseReferencePrefix)
class CaseReferencePrefixAdmin(ReadOnlyAdmin):
    """Prefixes are seeded from objections/routes.yaml; references already given keep theirs."""

    list_display = ("jurisdiction", "prefix")
