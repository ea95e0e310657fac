"""The registry's configuration an administrator edits (the admin): jurisdictions, agencies (their
kind says which body they are), the lawful catalogue. Each write is validated by the model's own
rules and audited with the changed fields before and after (links as ids). Agencies and catalogue
entries are never deleted: records, cases and the audit log refer to them (a catalogue entry is
made inactive instead)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models

from audit.services import audit_record, audited
from records.models import (
    Agency,
    CatalogueEntry,
    Jurisdiction,
)
from scs_cases.errors import Conflict, DomainError

if TYPE_CHECKING:
    from accounts.models import User


class ConfigurationInvalid(DomainError):
    """A configuration row would break a rule of its model; `errors` maps fields to messages."""

    code = "configuration_invalid"


@dataclass(frozen=True)
class JurisdictionFields:
    code: str
    name_zh: str
    name_en: str
    retention_years: int
    retention_starts_from: str


@dataclass(frozen=True)
class AgencyFields:
    code: str
    name_zh: str
    name_en: str
    jurisdiction: Jurisdiction
    kind: str


@dataclass(frozen=True)
class CatalogueEntryFields:
    jurisdiction: Jurisdiction
    code: str
    name_zh: str
    name_en: str
    legal_basis: str
    severity: str
    information_kind: str
    applies_to_persons: bool
    applies_to_organisations: bool
    publication_min_months: int
    publication_max_months: int
    repairable: bool
    active: bool


_Configured = TypeVar("_Configured", Jurisdiction, Agency, CatalogueEntry)


def _names(fields: Any) -> list[str]:
    return [field.name for field in dataclasses.fields(fields)]


def _stored_values(row: models.Model, names: Iterable[str]) -> dict[str, Any]:
    # Links by id, so that the payload holds ids and never a row's text twice.
    return {
        name: getattr(row, getattr(row._meta.get_field(name), "attname", name)) for name in names
    }


def _configuration_save(
    row: _Configured, *, fields: Any, actor: User | None, action: str
) -> tuple[_Configured, bool]:
    values = {name: getattr(fields, name) for name in _names(fields)}
    adding = row.pk is None
    before = None if adding else _stored_values(row, values)
    for name, value in values.items():
        setattr(row, name, value)
    try:
        row.full_clean()
    except ValidationError as error:
        raise ConfigurationInvalid(
            "; ".join(message for messages in error.message_dict.values() for message in messages),
            errors=error.message_dict,
        ) from error
    after = _stored_values(row, values)
    if before is not None:
        names: list[str] = sorted(name for name in after if after[name] != before[name])
        if not names:
            return row, False
        before = {name: before[name] for name in names}
        after = {name: after[name] for name in names}
        row.save(update_fields=[*names, "updated_at"])
    else:
        row.save()
    audit_record(actor=actor, action=action, target=row, data={"before": before, "after": after})
    return row, True


@audited()
def jurisdiction_create(*, fields: JurisdictionFields, actor: User | None) -> Jurisdiction:
    row, _ = _configuration_save(
        Jurisdiction(), fields=fields, actor=actor, action="jurisdiction.created"
    )
    return row


@audited()
def jurisdiction_update(
    *, jurisdiction_id: int, fields: JurisdictionFields, actor: User | None
) -> bool:
    """Change a jurisdiction; returns False when nothing changed. Its code is what its
    definitions and routes name: changing it is refused while anything refers to it."""
    row = Jurisdiction.objects.select_for_update().get(pk=jurisdiction_id)
    if fields.code != row.code and (users := referenced_by(row)):
        raise Conflict(
            f"The code of {row.code} cannot change: {', '.join(users)} refer to it.",
            referenced_by=users,
        )
    return _configuration_save(row, fields=fields, actor=actor, action="jurisdiction.updated")[1]


def referenced_by(row: models.Model) -> list[str]:
    """The kinds of rows (verbose plural names) that refer to `row`, which keep it."""
    names = set()
    # Hidden relations too (related_name="+"): cases and routes name their jurisdiction that way.
    for relation in row._meta.get_fields(include_hidden=True):
        if not (relation.is_relation and relation.auto_created and not relation.concrete):
            continue
        model = relation.related_model
        if model is None or relation.many_to_many:
            continue
        if model._default_manager.filter(**{relation.field.name: row}).exists():  # type: ignore[union-attr]
            names.add(str(model._meta.verbose_name_plural))  # type: ignore[union-attr]
    return sorted(names)


@audited()
def jurisdiction_delete(*, jurisdiction_id: int, actor: User | None) -> None:
    """Remove a jurisdiction nothing refers to (one added by mistake). Refused with `Conflict`,
    naming what refers to it, otherwise."""
    row = Jurisdiction.objects.select_for_update().get(pk=jurisdiction_id)
    users = referenced_by(row)
    if users:
        raise Conflict(
            f"{row.code} cannot be deleted: {', '.join(users)} refer to it.", referenced_by=users
        )
    audit_record(
        actor=actor,
        action="jurisdiction.deleted",
        target=row,
        data={"before": _stored_values(row, _names(JurisdictionFields)), "after": None},
    )
    row.delete()


@audited()
def agency_create(*, fields: AgencyFields, actor: User | None) -> Agency:
    """Add an agency; its kind says which body it is (credit centre, providing unit, credit
    service agency, DRC, PBoC branch)."""
    return _configuration_save(Agency(), fields=fields, actor=actor, action="agency.created")[0]


@audited()
def agency_update(*, agency_id: int, fields: AgencyFields, actor: User | None) -> bool:
    row = Agency.objects.select_for_update().get(pk=agency_id)
    return _configuration_save(row, fields=fields, actor=actor, action="agency.updated")[1]


@audited()
def catalogue_entry_create(*, fields: CatalogueEntryFields, actor: User | None) -> CatalogueEntry:
    return _configuration_save(
        CatalogueEntry(), fields=fields, actor=actor, action="catalogue.entry_created"
    )[0]


@audited()
def catalogue_entry_update(
    *, entry_id: int, fields: CatalogueEntryFields, actor: User | None
) -> bool:
    """Change a catalogue entry (made inactive, records of it are refused at import); records
    already published keep the periods they were given."""
    row = CatalogueEntry.objects.select_for_update().get(pk=entry_id)
    return _configuration_save(row, fields=fields, actor=actor, action="catalogue.entry_updated")[1]
