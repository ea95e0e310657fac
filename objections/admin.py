from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from objections import workflow
from objections.calendar import DayOverride
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
from objections.services.definitions import (
    route_problem,
    workflow_definition_check,
    workflow_definition_publish,
)
from objections.services.routes import (
    case_reference_prefix_set,
    workflow_route_delete,
    workflow_route_set,
)
from records.admin import KeptRowsAdmin, ServiceErrorsShown
from scs_cases.admin import ReadOnlyAdmin
from scs_cases.errors import DomainError


def _shown(name: str, label: Any, *, boolean: bool = False, ordering: str = "") -> Any:
    """A column or read-only field showing `name` under a translated label, for the fields whose
    model gives them no verbose name of their own."""

    @admin.display(description=label, ordering=ordering or name, boolean=boolean)
    def shown(model_admin: Any, obj: Any) -> Any:
        value = getattr(obj, name)
        return value() if callable(value) else value

    return shown


class ShownLabels:
    """The translated labels of the configuration admins' columns and read-only fields."""

    shown_key = _shown("key", _("key"))
    shown_version = _shown("version", _("version"))
    shown_current = _shown("is_current", _("current"), boolean=True)
    shown_verified = _shown("parameters_verified", _("parameters verified"), boolean=True)
    shown_source_hash = _shown("source_hash", _("sha256 of the definition"))
    shown_created = _shown("created_at", _("created"))
    shown_updated = _shown("updated_at", _("updated"))
    shown_day = _shown("day", _("day"))
    shown_working = _shown("working", _("working day"), boolean=True)
    shown_source = _shown("source", _("source"))
    shown_year = _shown("year", _("year"))
    shown_jurisdiction = _shown("jurisdiction", _("jurisdiction"), ordering="jurisdiction__code")
    shown_kind = _shown("get_kind_display", _("kind of case"), ordering="kind")
    shown_information = _shown(
        "get_information_kind_display", _("kind of information"), ordering="information_kind"
    )
    shown_holder = _shown("get_holder_kind_display", _("kind of holder"), ordering="holder_kind")
    shown_workflow = _shown("workflow_key", _("workflow"))
    shown_prefix = _shown("prefix", _("prefix"))


class WorkflowDefinitionForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = WorkflowDefinition
        fields = ["source_text"]
        labels = {"source_text": _("definition (YAML)")}
        widgets = {"source_text": forms.Textarea(attrs={"rows": 40, "cols": 120})}

    def clean_source_text(self) -> str:
        text: str = self.cleaned_data["source_text"]
        try:
            # Editing a stored version publishes a new version of the same workflow.
            workflow_definition_check(source_text=text, key=self.instance.key or None)
        except workflow.DefinitionError as error:
            raise forms.ValidationError(list(error.problems)) from error
        return text


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(ShownLabels, ServiceErrorsShown):
    """Editing a definition publishes a new, validated version through the audited service;
    stored versions never change and are never deleted (cases run under them)."""

    form = WorkflowDefinitionForm
    list_display = (
        "shown_key",
        "shown_version",
        "shown_current",
        "shown_verified",
        "shown_created",
    )
    list_filter = ("is_current", "parameters_verified", "jurisdiction")
    shown = ["shown_key", "shown_version", "shown_current", "shown_verified", "shown_source_hash"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.shown if obj else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.shown, "source_text"] if obj is not None else ["source_text"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        row, created = workflow_definition_publish(
            source_text=form.cleaned_data["source_text"], actor=cast(User, request.user)
        )
        obj.pk = row.pk
        if created:
            messages.success(
                request,
                _("Published %(key)s version %(version)s.")
                % {"key": row.key, "version": row.version},
            )
        else:
            messages.info(
                request, _("The text is identical to the current version; nothing changed.")
            )

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponseRedirect:
        return HttpResponseRedirect("../../")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CalendarOverrideForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = CalendarOverride
        fields = ["day", "working", "source"]
        labels = {"day": _("day"), "working": _("working day"), "source": _("source")}

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        day = cleaned.get("day") or self.instance.day
        if day is not None and cleaned.get("source"):
            try:
                DayOverride(day=day, working=bool(cleaned.get("working")), source=cleaned["source"])
            except (TypeError, ValueError) as error:
                raise forms.ValidationError(str(error)) from error
        return cleaned


@admin.register(CalendarOverride)
class CalendarOverrideAdmin(ShownLabels, ServiceErrorsShown):
    """Each save or removal goes through the calendar service, which audits it (who, which day,
    before, after, the notice). Other processes pick a change up within a minute; this one at
    once."""

    form = CalendarOverrideForm
    list_display = ("shown_day", "shown_working", "shown_source")
    date_hierarchy = "day"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A different day is a different override: remove this one and add that one.
        return ["shown_day"] if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["shown_day" if obj is not None else "day", "working", "source"]

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


class CalendarYearForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = CalendarYear
        fields = ["year", "source"]
        labels = {"year": _("year"), "source": _("source")}

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
class CalendarYearAdmin(ShownLabels, ServiceErrorsShown):
    """Marking a year complete requires every statutory holiday entered as a day off; completing
    it recomputes the provisional deadlines that counted in it. Audited like every calendar
    change."""

    form = CalendarYearForm
    list_display = ("shown_year", "shown_source")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["shown_year"] if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["shown_year" if obj is not None else "year", "source"]

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


class WorkflowRouteForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = WorkflowRoute
        fields = ["jurisdiction", "kind", "information_kind", "holder_kind", "workflow_key"]
        labels = {
            "jurisdiction": _("jurisdiction"),
            "kind": _("kind of case"),
            "information_kind": _("kind of information"),
            "holder_kind": _("kind of holder"),
            "workflow_key": _("workflow"),
        }

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        jurisdiction = cleaned.get("jurisdiction") or getattr(self.instance, "jurisdiction", None)
        kind = cleaned.get("kind") or self.instance.kind
        key = cleaned.get("workflow_key")
        if jurisdiction is not None and kind and key:
            problem = route_problem(jurisdiction_code=jurisdiction.code, kind=kind, key=key)
            if problem:
                self.add_error("workflow_key", problem)
        return cleaned


@admin.register(WorkflowRoute)
class WorkflowRouteAdmin(ShownLabels, ServiceErrorsShown):
    """Which workflow runs a jurisdiction's cases; saved and removed through the audited
    services, which refuse a workflow of another kind or jurisdiction."""

    form = WorkflowRouteForm
    list_display = (
        "shown_jurisdiction",
        "shown_kind",
        "shown_information",
        "shown_holder",
        "shown_workflow",
        "shown_updated",
    )
    list_select_related = ("jurisdiction",)
    # What a route narrows to is what it is: a different narrowing is another route.
    narrowing = ("shown_jurisdiction", "shown_kind", "shown_information", "shown_holder")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.narrowing if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:
            return [*self.narrowing, "workflow_key"]
        return ["jurisdiction", "kind", "information_kind", "holder_kind", "workflow_key"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved = workflow_route_set(
            jurisdiction=obj.jurisdiction,
            kind=obj.kind,
            workflow_key=obj.workflow_key,
            actor=cast(User, request.user),
            information_kind=obj.information_kind,
            holder_kind=obj.holder_kind,
        )
        obj.pk = saved.pk

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each checked and audited
        return actions

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        workflow_route_delete(route_id=obj.pk, actor=cast(User, request.user))


class CaseReferencePrefixForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = CaseReferencePrefix
        fields = ["jurisdiction", "prefix"]
        labels = {"jurisdiction": _("jurisdiction"), "prefix": _("prefix")}


@admin.register(CaseReferencePrefix)
class CaseReferencePrefixAdmin(ShownLabels, KeptRowsAdmin):
    """The prefix of a jurisdiction's new case references, seeded from objections/routes.yaml
    and changed through the audited service; references already given keep theirs."""

    form = CaseReferencePrefixForm
    list_display = ("shown_jurisdiction", "shown_prefix")
    list_select_related = ("jurisdiction",)
    kept_reason = _(
        "A jurisdiction's reference prefix is not deleted (its next case would get the default "
        "one again); change it instead."
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("shown_jurisdiction",) if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["shown_jurisdiction" if obj is not None else "jurisdiction", "prefix"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved = case_reference_prefix_set(
            jurisdiction=obj.jurisdiction, prefix=obj.prefix, actor=cast(User, request.user)
        )
        obj.pk = saved.pk
