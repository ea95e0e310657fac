"""Workflow definitions as versioned rows: built-in files are synced in, edits make new versions."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from audit.services import audit_record, audited
from objections import workflow
from objections.exceptions import FilingRefused
from objections.models import WorkflowDefinition
from records.models import Jurisdiction

if TYPE_CHECKING:
    from accounts.models import User


@functools.lru_cache(maxsize=256)
def _parsed(source_hash: str, source_text: str) -> workflow.Definition:
    return workflow.parse_definition(source_text, origin=source_hash[:12])


def definition_of(row: WorkflowDefinition) -> workflow.Definition:
    """The parsed definition of a stored version (cached by content hash; rows never change)."""
    return _parsed(row.source_hash, row.source_text)


def workflow_definition_check(*, source_text: str, key: str | None = None) -> workflow.Definition:
    """The parsed definition, if `source_text` may be published (as a version of `key`, when
    given); otherwise workflow.DefinitionError listing every problem."""
    definition = workflow.parse_definition(source_text, origin="published definition")
    problems = []
    if not Jurisdiction.objects.filter(code=definition.jurisdiction).exists():
        problems.append(
            f"jurisdiction: {definition.jurisdiction!r} is not a jurisdiction of this platform"
        )
    if key is not None and definition.key != key:
        problems.append(
            f"key: a new version of {key!r} must keep its key (not {definition.key!r}); "
            "add a new definition for another workflow"
        )
    if problems:
        raise workflow.DefinitionError(problems)
    return definition


@audited()
def workflow_definition_publish(
    *, source_text: str, actor: User | None
) -> tuple[WorkflowDefinition, bool]:
    """Validate `source_text` and make it the current version of its key.

    Returns (row, created). Publishing text identical to the current version creates nothing.
    Raises workflow.DefinitionError listing every problem; then nothing changes.
    """
    definition = workflow_definition_check(source_text=source_text)
    source_hash = workflow.definition_hash(source_text)
    jurisdiction = Jurisdiction.objects.get(code=definition.jurisdiction)
    current = (
        WorkflowDefinition.objects.select_for_update()
        .filter(key=definition.key, is_current=True)
        .first()
    )
    if current is not None and current.source_hash == source_hash:
        return current, False
    last_version = (
        WorkflowDefinition.objects.filter(key=definition.key)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    ) or 0
    if current is not None:
        current.is_current = False
        current.save(update_fields=["is_current", "updated_at"])
    row = WorkflowDefinition.objects.create(
        key=definition.key,
        version=last_version + 1,
        jurisdiction=jurisdiction,
        case_kind=definition.case_kind,
        source_text=source_text,
        source_hash=source_hash,
        parameters_verified=definition.parameters_verified,
        is_current=True,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="workflow.published",
        target=row,
        data={
            "key": row.key,
            "version": row.version,
            "sha256": source_hash,
            "before": (
                {"version": current.version, "sha256": current.source_hash}
                if current is not None
                else None
            ),
        },
    )
    return row, True


def workflow_definitions_sync(*, actor: User | None = None) -> list[WorkflowDefinition]:
    """Store each built-in definition whose text is not yet a version. Idempotent.

    A built-in file that has not changed since it was last stored does not displace a newer
    version an administrator published.
    """
    created = []
    for key, (definition, text) in workflow.load_builtin_sources().items():
        if not Jurisdiction.objects.filter(code=definition.jurisdiction).exists():
            continue  # that jurisdiction is not configured on this platform
        if WorkflowDefinition.objects.filter(
            key=key, source_hash=workflow.definition_hash(text)
        ).exists():
            continue
        row, was_created = workflow_definition_publish(source_text=text, actor=actor)
        if was_created:
            created.append(row)
    return created


def route_problem(*, jurisdiction_code: str, kind: str, key: str) -> str | None:
    """Why `key` cannot run `jurisdiction_code`'s cases of `kind`, or None: it must name a
    workflow (stored, or built in) of that kind, for that jurisdiction or the national one."""
    row = WorkflowDefinition.objects.filter(key=key, is_current=True).first()
    if row is not None:
        definition = definition_of(row)
    else:
        builtin = workflow.load_builtin_sources().get(key)
        if builtin is None:
            return f"No workflow has the key {key!r}."
        definition = builtin[0]
    if definition.case_kind != kind:
        return f"Workflow {key!r} runs {definition.case_kind} cases, not {kind} cases."
    if definition.jurisdiction not in (jurisdiction_code, "national"):
        return (
            f"Workflow {key!r} is {definition.jurisdiction}'s; it cannot run "
            f"{jurisdiction_code}'s cases."
        )
    return None


def documents_checked(
    definition: workflow.Definition, documents: Mapping[str, str]
) -> dict[str, str]:
    """Checklist entries given with a filing or a step: each names a document the workflow
    declares, with a reference of at most 200 characters."""
    checked: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key, reference in documents.items():
        text = reference.strip() if isinstance(reference, str) else ""
        if key not in definition.documents:
            errors[str(key)[:64]] = "This procedure asks for no such document."
        elif not text or len(text) > 200:
            errors[key] = "Give the document's reference (1 to 200 characters)."
        else:
            checked[key] = text
    if errors:
        raise FilingRefused("Some documents could not be recorded.", errors=errors)
    return checked
