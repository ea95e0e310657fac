"""factory_boy factories. Subjects get a valid, encrypted identifier like an import would give."""

from __future__ import annotations

import random
from datetime import date

import factory
from django.contrib.auth.models import Group

from accounts.models import User
from records import identifiers
from records.crypto import identifier_encrypt, identifier_hash
from records.models import Agency, CatalogueEntry, CreditRecord, Jurisdiction, Subject

_rng = random.Random(7)


class JurisdictionFactory(factory.django.DjangoModelFactory[Jurisdiction]):
    class Meta:
        model = Jurisdiction
        django_get_or_create = ("code",)

    code = "shanghai"
    name_zh = "上海市"
    name_en = "Shanghai"


class AgencyFactory(factory.django.DjangoModelFactory[Agency]):
    class Meta:
        model = Agency
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"agency-{n}")
    name_zh = factory.Sequence(lambda n: f"测试执法机关{n}")
    name_en = factory.Sequence(lambda n: f"Test enforcement agency {n}")
    jurisdiction = factory.SubFactory(JurisdictionFactory)
    kind = Agency.Kind.PROVIDING_UNIT


class CatalogueEntryFactory(factory.django.DjangoModelFactory[CatalogueEntry]):
    class Meta:
        model = CatalogueEntry
        django_get_or_create = ("jurisdiction", "code")

    jurisdiction = factory.SubFactory(
        JurisdictionFactory, code="national", name_zh="全国", name_en="National"
    )
    code = "penalty-general"
    name_zh = "行政处罚信息（一般）"
    name_en = "Administrative penalty (general)"
    legal_basis = "《全国公共信用信息基础目录（2024年版）》"
    severity = CatalogueEntry.Severity.GENERAL
    publication_min_months = 3
    publication_max_months = 12


class SubjectFactory(factory.django.DjangoModelFactory[Subject]):
    class Meta:
        model = Subject

    class Params:
        identifier = factory.LazyFunction(lambda: identifiers.make_resident_id(_rng))

    kind = Subject.Kind.PERSON
    name = factory.Sequence(lambda n: f"测试人{n}")
    identifier_encrypted = factory.LazyAttribute(lambda o: identifier_encrypt(o.identifier))
    identifier_hash = factory.LazyAttribute(lambda o: identifier_hash(o.kind, o.identifier))
    identifier_masked = factory.LazyAttribute(lambda o: identifiers.mask_identifier(o.identifier))


class CreditRecordFactory(factory.django.DjangoModelFactory[CreditRecord]):
    class Meta:
        model = CreditRecord

    agency = factory.SubFactory(AgencyFactory)
    record_number = factory.Sequence(lambda n: f"REC-{n:06d}")
    subject = factory.SubFactory(SubjectFactory)
    category = factory.SubFactory(CatalogueEntryFactory)
    title = "未按规定公示信息"
    facts = "经查，当事人未按规定公示信息。"
    decision_document_number = factory.Sequence(lambda n: f"沪罚决字〔2026〕{n}号")
    decision_date = date(2026, 6, 1)
    conduct_ended_on = date(2026, 5, 1)
    publication_start = date(2026, 6, 1)
    publication_end = date(2027, 6, 1)
    retention_end = date(2031, 5, 1)
    content_hash = factory.Sequence(lambda n: f"{n:064x}")


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create and extracted:
            group, _ = Group.objects.get_or_create(name=extracted)
            self.groups.add(group)


def registry_record(
    agency_code: str, subject: Subject, number: str, **fields: object
) -> CreditRecord:
    """A general penalty of the demo registry's `agency_code` about `subject` (the one builder
    of case tests' records: a stored agency and the national catalogue entry)."""
    values: dict[str, object] = {
        "agency": Agency.objects.get(code=agency_code),
        "subject": subject,
        "record_number": number,
        "category": CatalogueEntry.objects.get(
            jurisdiction__code="national", code="penalty-general"
        ),
        "decision_date": date(2024, 1, 10),
        "conduct_ended_on": date(2024, 1, 1),
        "publication_start": date(2024, 1, 10),
        "publication_end": date(2027, 1, 10),
        "retention_end": date(2029, 1, 1),
    }
    values.update(fields)
    return CreditRecordFactory(**values)
