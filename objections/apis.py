"""REST API of cases: file, list, read (with what the caller may do now), transition, approve."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django.db.models import Value
from django.db.models.functions import Coalesce
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.models import User
from audit.reads import case_opened_record, read_by_staff
from objections.evidence.uploads import EvidenceUploads, evidence_uploaded, form_values
from objections.models import Case, CaseDocument, DisputeStatement, PendingApproval
from objections.selectors import (
    case_clocks,
    case_get_for_user,
    case_list_for_user,
    case_pending_approval,
    decision_in_force,
    import_conflict_get_for_user,
    import_conflict_list_for_user,
)
from objections.services import (
    TransitionInput,
    case_approval_decide,
    case_dispute_statement_add,
    case_file,
    case_transition,
    case_transitions_available,
    import_conflict_resolve,
)
from objections.services.definitions import definition_of
from objections.services.evidence import case_file_with_evidence
from records.apis import DisputeStatementOutput, RecordOutput, SubjectOutput
from records.models import ImportConflict
from records.selectors import record_get_for_provider, record_get_for_user
from scs_cases.pagination import Key, page_parameters, paged

# Remaining statutory time first; a case without a running deadline after those with one.
CASE_KEYS = (Key("is_open", descending=True), Key("due_key"), Key("id"))
NO_DEADLINE = date(9999, 12, 31)


def _user(request: Request) -> User:
    return cast(User, request.user)


class ClockOutput(serializers.Serializer):
    timer = serializers.CharField()
    state = serializers.CharField()
    unit = serializers.CharField()
    amount = serializers.IntegerField()
    extended_by = serializers.IntegerField()
    started_on = serializers.DateField()
    due_on = serializers.DateField()
    status = serializers.CharField()
    provisional = serializers.BooleanField(
        help_text="The deadline reaches a year whose State Council schedule is not known yet: "
        "it was counted Monday to Friday less the computed statutory holidays, and is "
        "recomputed when the year is completed."
    )
    provisional_years = serializers.ListField(child=serializers.IntegerField())
    trace = serializers.CharField()
    legal_source = serializers.CharField(source="source_citation")
    source_verified = serializers.BooleanField()
    escalated = serializers.SerializerMethodField()

    def get_escalated(self, clock: Any) -> bool:
        return clock.escalated_at is not None


class CaseSummaryOutput(serializers.Serializer):
    reference = serializers.CharField()
    kind = serializers.CharField()
    state = serializers.CharField()
    is_open = serializers.BooleanField()
    record = serializers.UUIDField(source="record.public_id")
    record_title = serializers.CharField(source="record.title")
    agency = serializers.CharField(source="record.agency.code")
    responsible_agency = serializers.CharField(
        source="responsible_agency.code", allow_null=True, default=None
    )
    next_due_on = serializers.DateField(allow_null=True)
    filed_at = serializers.DateTimeField()
    lock_version = serializers.IntegerField()


def _shown(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


class FieldChangeOutput(serializers.Serializer):
    field = serializers.CharField()
    current = serializers.CharField(allow_null=True, help_text="The record's value now.")
    proposed = serializers.CharField(allow_null=True, help_text="The applicant's value.")
    decided = serializers.CharField(allow_null=True, help_text="The value the decision set.")


class DecisionOutput(serializers.Serializer):
    outcome = serializers.CharField()
    remedy = serializers.CharField(help_text="What happens to the record; empty: nothing.")
    reasons = serializers.CharField()
    transition = serializers.CharField()
    decided_at = serializers.DateTimeField(source="created_at")
    approved = serializers.SerializerMethodField(help_text="A second person approved it.")
    changes = serializers.SerializerMethodField(
        help_text="Each field the applicant proposed or the decision set, side by side."
    )

    def get_approved(self, decision: Any) -> bool:
        return decision.approved_by_id is not None

    @extend_schema_field(FieldChangeOutput(many=True))
    def get_changes(self, decision: Any) -> list[dict[str, Any]]:
        record = self.context["record"]
        names = sorted(set(decision.proposed) | set(decision.correction))
        return [
            {
                "field": name,
                "current": _shown(getattr(record, name)),
                "proposed": decision.proposed.get(name),
                "decided": decision.correction.get(name),
            }
            for name in names
        ]


class CaseConflictOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    # Declared fields are taken off the class, so Serializer.fields is not shadowed at run time.
    fields = serializers.DictField()  # type: ignore[assignment]
    reasons = serializers.CharField()
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)


class CaseDocumentOutput(serializers.Serializer):
    key = serializers.CharField()
    name_zh = serializers.CharField()
    name_en = serializers.CharField()
    legal_source = serializers.CharField()
    reference = serializers.CharField(allow_null=True)
    recorded_at = serializers.DateTimeField(allow_null=True)


class AppealOutput(serializers.Serializer):
    zh = serializers.CharField()
    en = serializers.CharField()
    legal_source = serializers.CharField()


class CaseDetailOutput(CaseSummaryOutput):
    grounds = serializers.CharField()
    statement = serializers.CharField()
    requested_remedy = serializers.CharField()
    fields_objected = serializers.ListField(child=serializers.CharField())
    outcome = serializers.CharField()
    reasons = serializers.CharField()
    subject = SubjectOutput(help_text="The subject of the record; its identifier masked.")
    record_content = RecordOutput(
        source="record", help_text="The record as it stands now (its current version)."
    )
    proposed_changes = serializers.SerializerMethodField(
        help_text="The applicant's proposed correction, field by field against the record now."
    )
    decision = serializers.SerializerMethodField(
        help_text="The decision in force: outcome, reasons, remedy and the values it set."
    )
    dispute_statement = serializers.SerializerMethodField()
    import_conflicts = serializers.SerializerMethodField(
        help_text="Agency content held back because it would change what this case decided, "
        "and how each was resolved (accepted: the agency's values replaced the decided ones)."
    )
    workflow = serializers.SerializerMethodField()
    documents = serializers.SerializerMethodField(
        help_text="The documents this procedure asks for, each with the reference recorded "
        "on the case (null until someone records it)."
    )
    appeal = serializers.SerializerMethodField(
        help_text="The routes of appeal the procedure states, in Chinese and English."
    )
    available_transitions = serializers.SerializerMethodField()
    clocks = serializers.SerializerMethodField()
    pending_approval = serializers.SerializerMethodField()

    @extend_schema_field(FieldChangeOutput(many=True))
    def get_proposed_changes(self, case: Any) -> list[dict[str, Any]]:
        return [
            {
                "field": name,
                "current": _shown(getattr(case.record, name)),
                "proposed": value,
                "decided": None,
            }
            for name, value in sorted(case.correction.items())
        ]

    @extend_schema_field(DecisionOutput(allow_null=True))
    def get_decision(self, case: Any) -> dict[str, Any] | None:
        decision = decision_in_force(case)
        if decision is None:
            return None
        return dict(DecisionOutput(decision, context={"record": case.record}).data)

    @extend_schema_field(DisputeStatementOutput(allow_null=True))
    def get_dispute_statement(self, case: Any) -> dict[str, Any] | None:
        statement = DisputeStatement.objects.filter(case=case).select_related("case").first()
        return None if statement is None else dict(DisputeStatementOutput(statement).data)

    @extend_schema_field(CaseConflictOutput(many=True))
    def get_import_conflicts(self, case: Any) -> list[dict[str, Any]]:
        conflicts = ImportConflict.objects.filter(case_reference=case.reference).order_by("id")
        return list(CaseConflictOutput(conflicts, many=True).data)

    def get_workflow(self, case: Any) -> dict[str, Any] | None:
        if case.workflow is None:
            return None
        return {
            "key": case.workflow.key,
            "version": case.workflow.version,
            "parameters_verified": case.workflow.parameters_verified,
        }

    def get_available_transitions(self, case: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": step.name,
                "to": step.target,
                "requires": list(step.requires),
                "documents": list(step.documents),
                "second_person": step.second_person,
            }
            for step in case_transitions_available(user=self.context["user"], case=case)
        ]

    @extend_schema_field(CaseDocumentOutput(many=True))
    def get_documents(self, case: Any) -> list[dict[str, Any]]:
        if case.workflow is None:
            return []
        declared = definition_of(case.workflow).documents
        held = {entry.key: entry for entry in CaseDocument.objects.filter(case=case)}
        return [
            {
                "key": key,
                "name_zh": document.label_zh,
                "name_en": document.label_en,
                "legal_source": document.source.citation,
                "reference": held[key].reference if key in held else None,
                "recorded_at": held[key].created_at if key in held else None,
            }
            for key, document in declared.items()
        ]

    @extend_schema_field(AppealOutput(allow_null=True))
    def get_appeal(self, case: Any) -> dict[str, Any] | None:
        appeal = definition_of(case.workflow).appeal if case.workflow is not None else None
        if appeal is None:
            return None
        return {"zh": appeal.text_zh, "en": appeal.text_en, "legal_source": appeal.source.citation}

    def get_clocks(self, case: Any) -> list[dict[str, Any]]:
        return list(ClockOutput(case_clocks(case=case), many=True).data)

    def get_pending_approval(self, case: Any) -> dict[str, Any] | None:
        approval = case_pending_approval(case=case)
        if approval is None:
            return None
        return {"id": approval.pk, "transition": approval.transition}


class CaseListCreateApi(EvidenceUploads, APIView):
    throttle_scope = "filing"

    @extend_schema_serializer(component_name="CaseFilingInput")
    class InputSerializer(serializers.Serializer):
        record = serializers.UUIDField()
        kind = serializers.ChoiceField(
            choices=[Case.Kind.OBJECTION, Case.Kind.REPAIR, Case.Kind.DELETION],
            help_text="deletion: filed by the unit that provided the record, when the act it "
            "rests on was revoked (Shanghai Regulations Art 37).",
        )
        grounds = serializers.ChoiceField(choices=Case.Grounds.choices)
        statement = serializers.CharField(max_length=10_000)
        requested_remedy = serializers.ChoiceField(choices=Case.Remedy.choices)
        fields_objected = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, default=list
        )
        correction = serializers.DictField(required=False, default=dict)
        documents = serializers.DictField(
            child=serializers.CharField(max_length=200),
            required=False,
            default=dict,
            help_text="Entries for the case's document checklist: document key -> reference "
            "(e.g. the revocation notice of a deletion).",
        )

    def get_throttles(self) -> list[Any]:
        return [ScopedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema_serializer(component_name="CasePage")
    class PageOutput(serializers.Serializer):
        results = CaseSummaryOutput(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="v1_cases_list", parameters=page_parameters("Cases"), responses=PageOutput
    )
    def get(self, request: Request) -> Response:
        cases = case_list_for_user(user=_user(request)).annotate(
            due_key=Coalesce("next_due_on", Value(NO_DEADLINE))
        )
        return Response(
            paged(
                request,
                cases,
                keys=CASE_KEYS,
                output=lambda rows: CaseSummaryOutput(rows, many=True).data,
            )
        )

    @extend_schema(request=InputSerializer, responses={201: CaseDetailOutput})
    def post(self, request: Request) -> Response:
        # Sent as multipart/form-data: the same fields, `correction` and `documents` as JSON
        # text, and files as `evidence`; every file is checked before the case is created.
        evidence = evidence_uploaded(request)
        data = self.InputSerializer(
            data=form_values(
                request, lists=("fields_objected",), objects=("correction", "documents")
            )
        )
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        find = (
            record_get_for_provider if values["kind"] == Case.Kind.DELETION else record_get_for_user
        )
        record = find(user=_user(request), public_id=values.pop("record"))
        if evidence:
            case = case_file_with_evidence(
                actor=_user(request), record=record, evidence=evidence, **values
            )
        else:
            case = case_file(actor=_user(request), record=record, **values)
        case = case_get_for_user(user=_user(request), reference=case.reference)
        return Response(
            CaseDetailOutput(case, context={"user": _user(request)}).data,
            status=status.HTTP_201_CREATED,
        )


class CaseDetailApi(APIView):
    @extend_schema(responses=CaseDetailOutput)
    def get(self, request: Request, reference: str) -> Response:
        user = _user(request)
        case = case_get_for_user(user=user, reference=reference)
        body = CaseDetailOutput(case, context={"user": user}).data
        if read_by_staff(user):
            # Once the page is built and before it leaves: no record of the read, no page.
            case_opened_record(actor=user, case=case)
        return Response(body)


class CaseTransitionApi(APIView):
    @extend_schema_serializer(component_name="CaseTransitionInput")
    class InputSerializer(serializers.Serializer):
        transition = serializers.CharField(max_length=64)
        reasons = serializers.CharField(required=False, allow_blank=True, default="")
        outcome = serializers.ChoiceField(
            choices=Case.Outcome.choices, required=False, allow_blank=True, default=""
        )
        material_request = serializers.CharField(required=False, allow_blank=True, default="")
        statement = serializers.CharField(required=False, allow_blank=True, default="")
        extension_reason = serializers.CharField(required=False, allow_blank=True, default="")
        extension_days = serializers.IntegerField(required=False, min_value=0, default=0)
        remedy = serializers.ChoiceField(
            choices=Case.Remedy.choices,
            required=False,
            allow_blank=True,
            default="",
            help_text="A grant: what happens to the record (by default the one asked for, when "
            "the step can carry it out).",
        )
        correction = serializers.DictField(
            required=False,
            default=dict,
            help_text="A grant that corrects: the value to apply for each field, taken from the "
            "applicant's proposal, amended, or written by the decider.",
        )
        documents = serializers.DictField(
            child=serializers.CharField(max_length=200),
            required=False,
            default=dict,
            help_text="Documents the step needs (see the case's `documents`): key -> the "
            "reference of the document relied on.",
        )
        lock_version = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(request=InputSerializer, responses=CaseDetailOutput)
    def post(self, request: Request, reference: str) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        transition = values.pop("transition")
        lock_version = values.pop("lock_version", None)
        case_transition(
            case_id=case.pk,
            transition=transition,
            actor=_user(request),
            data=TransitionInput(**values),
            expected_lock_version=lock_version,
        )
        case = case_get_for_user(user=_user(request), reference=reference)
        return Response(CaseDetailOutput(case, context={"user": _user(request)}).data)


class CaseApprovalApi(APIView):
    @extend_schema_serializer(component_name="CaseApprovalInput")
    class InputSerializer(serializers.Serializer):
        approve = serializers.BooleanField()
        reasons = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses=CaseDetailOutput)
    def post(self, request: Request, reference: str, approval_id: int) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        approval = PendingApproval.objects.filter(pk=approval_id, case=case).first()
        if approval is None:
            return Response({"detail": "No such approval."}, status=status.HTTP_404_NOT_FOUND)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case_approval_decide(approval_id=approval.pk, actor=_user(request), **data.validated_data)
        case = case_get_for_user(user=_user(request), reference=reference)
        return Response(CaseDetailOutput(case, context={"user": _user(request)}).data)


class CaseDisputeStatementApi(APIView):
    """The applicant's statement of dispute after a refused objection; kept with the record."""

    @extend_schema_serializer(component_name="DisputeStatementInput")
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=10_000)

    @extend_schema(request=InputSerializer, responses={201: DisputeStatementOutput})
    def post(self, request: Request, reference: str) -> Response:
        case = case_get_for_user(user=_user(request), reference=reference)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        statement = case_dispute_statement_add(
            case_id=case.pk, actor=_user(request), text=data.validated_data["text"]
        )
        return Response(DisputeStatementOutput(statement).data, status=status.HTTP_201_CREATED)


class ImportConflictOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    agency = serializers.CharField(source="record.agency.code")
    record = serializers.UUIDField(source="record.public_id")
    record_number = serializers.CharField(source="record.record_number")
    case = serializers.CharField(source="case_reference")
    batch = serializers.IntegerField(source="batch_id")
    line = serializers.IntegerField()
    # Declared fields are taken off the class, so Serializer.fields is not shadowed at run time.
    fields = serializers.DictField(  # type: ignore[assignment]
        help_text="Per field held back: the agency's value and the decided value."
    )
    reasons = serializers.CharField()
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)


CONFLICT_KEYS = (Key("id", descending=True),)


class ImportConflictListApi(APIView):
    """Import rows held back because they would change fields a decided case set."""

    @extend_schema_serializer(component_name="ImportConflictPage")
    class PageOutput(serializers.Serializer):
        results = ImportConflictOutput(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="v1_import_conflicts_list",
        parameters=[
            OpenApiParameter("status", str, enum=ImportConflict.Status.values),
            *page_parameters("Import conflicts"),
        ],
        responses=PageOutput,
    )
    def get(self, request: Request) -> Response:
        conflicts = import_conflict_list_for_user(user=_user(request))
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in ImportConflict.Status.values:
                return Response(
                    {
                        "detail": "Unknown status.",
                        "code": "invalid",
                        "allowed": ImportConflict.Status.values,
                    },
                    status=status.HTTP_400_BAD_REQUEST,
                )
            conflicts = conflicts.filter(status=wanted)
        return Response(
            paged(
                request,
                conflicts,
                keys=CONFLICT_KEYS,
                output=lambda rows: ImportConflictOutput(rows, many=True).data,
            )
        )


class ImportConflictResolveApi(APIView):
    @extend_schema_serializer(component_name="ImportConflictResolution")
    class InputSerializer(serializers.Serializer):
        resolution = serializers.ChoiceField(
            choices=[("accept", "accept the agency's content"), ("keep", "keep the decision")]
        )
        reasons = serializers.CharField(max_length=10_000)

    @extend_schema(request=InputSerializer, responses=ImportConflictOutput)
    def post(self, request: Request, conflict_id: int) -> Response:
        conflict = import_conflict_get_for_user(user=_user(request), conflict_id=conflict_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        import_conflict_resolve(
            conflict_id=conflict.pk,
            actor=_user(request),
            accept=data.validated_data["resolution"] == "accept",
            reasons=data.validated_data["reasons"],
        )
        conflict = import_conflict_get_for_user(user=_user(request), conflict_id=conflict_id)
        return Response(ImportConflictOutput(conflict).data)
