"""Demo and benchmark data: jurisdictions, agencies, the catalogue, and generated records.

Everything here is deterministic (seeded), so loading it twice changes nothing.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from django.utils import timezone

from records import identifiers
from records.crypto import identifier_encrypt
from records.imports import FIELDS
from records.models import Agency, CatalogueEntry, Jurisdiction, Subject, SubjectContact

JURISDICTIONS = [
    # code, Chinese name, English name, retention counted from
    ("national", "全国", "National", Jurisdiction.RetentionStart.CONDUCT_ENDED),
    ("shanghai", "上海市", "Shanghai", Jurisdiction.RetentionStart.CONDUCT_ENDED),
    ("zhejiang", "浙江省", "Zhejiang", Jurisdiction.RetentionStart.DECIDED),
    ("hubei", "湖北省", "Hubei", Jurisdiction.RetentionStart.CONDUCT_ENDED),
]

_UNITS = [
    ("market", "市场监督管理局", "Administration for Market Regulation"),
    ("tax", "税务局", "Tax Service"),
    ("ecology", "生态环境局", "Bureau of Ecology and Environment"),
    ("transport", "交通运输委员会", "Transport Commission"),
]
_PLACE = {
    "national": ("国家", "National"),
    "shanghai": ("上海市", "Shanghai"),
    "zhejiang": ("浙江省", "Zhejiang"),
    "hubei": ("湖北省", "Hubei"),
}

_CATALOGUE_2024 = "《全国公共信用信息基础目录（2024年版）》"
_REPAIR_2025 = "《信用修复管理办法》（国家发展改革委令2025年第36号）"
CATALOGUE = [
    # code, Chinese, English, legal basis, severity, persons, organisations, min, max, repairable
    (
        "penalty-minor",
        "行政处罚信息（轻微）",
        "Administrative penalty (minor)",
        f"{_CATALOGUE_2024}；{_REPAIR_2025}第十条",
        CatalogueEntry.Severity.MINOR,
        True,
        True,
        0,
        3,
        True,
    ),
    (
        "penalty-general",
        "行政处罚信息（一般）",
        "Administrative penalty (general)",
        f"{_CATALOGUE_2024}；{_REPAIR_2025}第十条",
        CatalogueEntry.Severity.GENERAL,
        True,
        True,
        3,
        12,
        True,
    ),
    (
        "penalty-serious",
        "行政处罚信息（严重）",
        "Administrative penalty (serious)",
        f"{_CATALOGUE_2024}；{_REPAIR_2025}第十条",
        CatalogueEntry.Severity.SERIOUS,
        True,
        True,
        12,
        36,
        True,
    ),
    (
        "abnormal-operation",
        "经营异常名录信息",
        "List of enterprises with abnormal operations",
        f"《企业信息公示暂行条例》第十七条；{_CATALOGUE_2024}",
        CatalogueEntry.Severity.GENERAL,
        False,
        True,
        3,
        12,
        True,
    ),
    (
        "tax-arrears",
        "欠缴税款信息",
        "Unpaid taxes",
        f"《中华人民共和国税收征收管理法》第四十五条；{_CATALOGUE_2024}",
        CatalogueEntry.Severity.GENERAL,
        True,
        True,
        3,
        12,
        True,
    ),
    (
        "credit-loan-overdue",
        "信贷逾期信息",
        "Overdue loan repayments (credit reporting)",
        "《征信业管理条例》第十三条、第十六条",
        CatalogueEntry.Severity.GENERAL,
        True,
        True,
        0,
        60,
        False,
    ),
    (
        "serious-dishonesty-list",
        "严重失信主体名单信息",
        "Serious-dishonesty list",
        f"《国务院办公厅关于进一步完善失信约束制度构建诚信建设长效机制的指导意见》"
        f"（国办发〔2020〕49号）；{_REPAIR_2025}",
        CatalogueEntry.Severity.SERIOUS,
        True,
        True,
        12,
        36,
        True,
    ),
    (
        "court-dishonest",
        "失信被执行人信息",
        "Dishonest judgment debtors",
        "《最高人民法院关于公布失信被执行人名单信息的若干规定》第一条",
        CatalogueEntry.Severity.SERIOUS,
        True,
        True,
        12,
        36,
        False,
    ),
]
# What each entry's information is (the rest: other adverse information); it decides which
# procedure an objection or a repair follows (objections/routes.yaml).
INFORMATION_KINDS = {
    "penalty-minor": CatalogueEntry.InformationKind.PENALTY,
    "penalty-general": CatalogueEntry.InformationKind.PENALTY,
    "penalty-serious": CatalogueEntry.InformationKind.PENALTY,
    "court-dishonest": CatalogueEntry.InformationKind.DISHONESTY_LIST,
    "serious-dishonesty-list": CatalogueEntry.InformationKind.DISHONESTY_LIST,
    "credit-loan-overdue": CatalogueEntry.InformationKind.CREDIT_REPORTING,
}
LOCAL_CATALOGUE = {
    "shanghai": [
        (
            "sh-social-insurance-arrears",
            "欠缴社会保险费信息",
            "Unpaid social insurance contributions",
            "《上海市社会信用条例》第十四条",
            CatalogueEntry.Severity.GENERAL,
            True,
            True,
            3,
            12,
            True,
        )
    ],
    "zhejiang": [
        (
            "zj-fire-safety-suspension",
            "消防责令停产停业信息",
            "Fire-safety order to suspend operations",
            "《浙江省公共信用信息管理条例》第十二条",
            CatalogueEntry.Severity.SERIOUS,
            False,
            True,
            12,
            36,
            True,
        )
    ],
}


# The bodies that review, approve or supervise, one of each per jurisdiction: the development
# and reform commission (Zhejiang Regulations Arts 30–31) and the PBoC branch (Credit Reporting
# Regulation Art 26).
_REVIEW_BODIES = {
    "national": (
        ("国家发展和改革委员会", "National Development and Reform Commission"),
        ("中国人民银行征信管理局", "People's Bank of China, Credit Information System Bureau"),
    ),
    "shanghai": (
        ("上海市发展和改革委员会", "Shanghai Development and Reform Commission"),
        ("中国人民银行上海总部", "People's Bank of China, Shanghai Head Office"),
    ),
    "zhejiang": (
        ("浙江省发展和改革委员会", "Zhejiang Development and Reform Commission"),
        ("中国人民银行浙江省分行", "People's Bank of China, Zhejiang Branch"),
    ),
    "hubei": (
        ("湖北省发展和改革委员会", "Hubei Development and Reform Commission"),
        ("中国人民银行湖北省分行", "People's Bank of China, Hubei Branch"),
    ),
}
# Credit service agencies holding records: the PBoC's credit reference centre (credit-reporting
# data) and a Shanghai agency (Shanghai Regulations Art 36 ¶3).
CREDIT_SERVICES = {
    "national": ("中国人民银行征信中心", "Credit Reference Center of the People's Bank of China"),
    "shanghai": ("上海示范信用服务有限公司", "Shanghai Demonstration Credit Services Co."),
}


def credit_centre_code(jurisdiction: str) -> str:
    return f"{jurisdiction}-credit-centre"


def drc_code(jurisdiction: str) -> str:
    return f"{jurisdiction}-drc"


def pboc_code(jurisdiction: str) -> str:
    return f"{jurisdiction}-pboc"


def credit_service_code(jurisdiction: str) -> str:
    return f"{jurisdiction}-credit-service"


def unit_code(jurisdiction: str, unit: str) -> str:
    return f"{jurisdiction}-{unit}"


def registry_load() -> None:
    """Jurisdictions, agencies and the lawful catalogue. Idempotent."""
    for code, name_zh, name_en, retention_from in JURISDICTIONS:
        jurisdiction, _ = Jurisdiction.objects.update_or_create(
            code=code,
            defaults={
                "name_zh": name_zh,
                "name_en": name_en,
                "retention_years": 5,
                "retention_starts_from": retention_from,
            },
        )
        place_zh, place_en = _PLACE[code]
        Agency.objects.update_or_create(
            code=credit_centre_code(code),
            defaults={
                "name_zh": f"{place_zh}公共信用信息服务中心",
                "name_en": f"{place_en} Public Credit Information Service Centre",
                "jurisdiction": jurisdiction,
                "kind": Agency.Kind.CREDIT_CENTRE,
            },
        )
        (drc_zh, drc_en), (pboc_zh, pboc_en) = _REVIEW_BODIES[code]
        bodies = [
            (drc_code(code), drc_zh, drc_en, Agency.Kind.DRC),
            (pboc_code(code), pboc_zh, pboc_en, Agency.Kind.PBOC_BRANCH),
        ]
        if code in CREDIT_SERVICES:
            service_zh, service_en = CREDIT_SERVICES[code]
            bodies.append(
                (credit_service_code(code), service_zh, service_en, Agency.Kind.CREDIT_SERVICE)
            )
        for agency_code, agency_zh, agency_en, kind in bodies:
            Agency.objects.update_or_create(
                code=agency_code,
                defaults={
                    "name_zh": agency_zh,
                    "name_en": agency_en,
                    "jurisdiction": jurisdiction,
                    "kind": kind,
                },
            )
        for unit, unit_zh, unit_en in _UNITS:
            Agency.objects.update_or_create(
                code=unit_code(code, unit),
                defaults={
                    "name_zh": f"{place_zh}{unit_zh}",
                    "name_en": f"{place_en} {unit_en}",
                    "jurisdiction": jurisdiction,
                    "kind": Agency.Kind.PROVIDING_UNIT,
                },
            )
        entries = CATALOGUE if code == "national" else LOCAL_CATALOGUE.get(code, [])
        for (
            entry_code,
            name_zh_entry,
            name_en_entry,
            basis,
            severity,
            persons,
            organisations,
            minimum,
            maximum,
            repairable,
        ) in entries:
            CatalogueEntry.objects.update_or_create(
                jurisdiction=jurisdiction,
                code=entry_code,
                defaults={
                    "name_zh": name_zh_entry,
                    "name_en": name_en_entry,
                    "legal_basis": basis,
                    "severity": severity,
                    "applies_to_persons": persons,
                    "applies_to_organisations": organisations,
                    "publication_min_months": minimum,
                    "publication_max_months": maximum,
                    "repairable": repairable,
                    "information_kind": INFORMATION_KINDS.get(
                        entry_code, CatalogueEntry.InformationKind.OTHER
                    ),
                    "active": True,
                },
            )


_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
_COMPANY_WORDS = ["华信", "东方", "长江", "明德", "瑞丰", "嘉禾", "宏远", "新城", "晨光", "天成"]
_COMPANY_KINDS = [
    "贸易有限公司",
    "科技有限公司",
    "餐饮管理有限公司",
    "建筑工程有限公司",
    "物流有限公司",
]
_TITLES = {
    "penalty-minor": ["未按规定公示信息", "占道经营", "未按规定办理登记"],
    "penalty-general": ["销售不合格产品", "超标排放污染物", "未按规定申报纳税"],
    "penalty-serious": ["生产销售伪劣商品", "非法倾倒危险废物", "严重超载运输"],
    "abnormal-operation": ["通过登记的住所无法联系", "未按期公示年度报告"],
    "tax-arrears": ["欠缴增值税", "欠缴个人所得税"],
    "court-dishonest": ["有履行能力而拒不履行生效法律文书确定义务"],
    "credit-loan-overdue": ["个人住房贷款逾期", "经营性贷款逾期", "信用卡透支逾期"],
    "serious-dishonesty-list": ["拒不履行法定义务被列入严重失信主体名单"],
    "sh-social-insurance-arrears": ["欠缴职工社会保险费"],
    "zj-fire-safety-suspension": ["消防安全隐患责令停产停业"],
}


@dataclass(frozen=True)
class GeneratedSubject:
    kind: str
    identifier: str
    name: str


def subjects_generate(count: int, *, seed: int) -> list[GeneratedSubject]:
    rng = random.Random(seed)
    subjects = []
    for _ in range(count):
        if rng.random() < 0.6:
            name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2)))
            subjects.append(
                GeneratedSubject(identifiers.PERSON, identifiers.make_resident_id(rng), name)
            )
        else:
            name = "上海" + rng.choice(_COMPANY_WORDS) + rng.choice(_COMPANY_KINDS)
            subjects.append(
                GeneratedSubject(identifiers.ORGANISATION, identifiers.make_credit_code(rng), name)
            )
    return subjects


# About three years and ten months of decisions.
DEMO_DECISION_SPAN_DAYS = 1_400


def records_csv_write(
    path: Path,
    *,
    agency: Agency,
    records: int,
    subjects: list[GeneratedSubject],
    seed: int,
    number_prefix: str = "",
    progress: Callable[[int], object] | None = None,
    today: date | None = None,
) -> None:
    """Write `records` valid rows for `agency`, spread over `subjects`, to a CSV file.

    Decisions fall in the 46 months before `today` (default: the local date), ending a month
    before it, so demo data loaded on any date has records still published.
    """
    rng = random.Random(seed)
    # A credit service agency holds credit-reporting data; the other agencies public credit
    # information.
    reporting = agency.kind == Agency.Kind.CREDIT_SERVICE
    entries = [
        entry
        for entry in CatalogueEntry.objects.filter(
            active=True, jurisdiction__code__in=["national", agency.jurisdiction.code]
        )
        if (entry.information_kind == CatalogueEntry.InformationKind.CREDIT_REPORTING) == reporting
    ]
    person_entries = [e for e in entries if e.applies_to_persons]
    organisation_entries = [e for e in entries if e.applies_to_organisations]
    last_day = (today or timezone.localdate()) - timedelta(days=30)
    span = DEMO_DECISION_SPAN_DAYS
    first_day = last_day - timedelta(days=span)
    prefix = number_prefix or agency.code.upper()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for index in range(records):
            subject = (
                subjects[index % len(subjects)] if index < len(subjects) else rng.choice(subjects)
            )
            pool = person_entries if subject.kind == identifiers.PERSON else organisation_entries
            entry = rng.choice(pool)
            decided = first_day + timedelta(days=rng.randrange(span))
            conduct_ended = decided - timedelta(days=rng.randrange(0, 90))
            months = rng.randint(entry.publication_min_months, entry.publication_max_months)
            title = rng.choice(_TITLES.get(entry.code, ["违法行为"]))
            writer.writerow(
                (
                    f"{prefix}-{index + 1:08d}",
                    subject.kind,
                    subject.identifier,
                    subject.name,
                    entry.code,
                    title,
                    f"经查，当事人{title}，违反了相关规定，依法作出处罚决定。",
                    f"{agency.jurisdiction.name_zh[:1]}罚决字〔{decided.year}〕{index + 1}号",
                    decided.isoformat(),
                    conduct_ended.isoformat(),
                    str(months),
                )
            )
            if progress is not None and (index + 1) % 10_000 == 0:
                progress(10_000)
        if progress is not None:
            progress(records % 10_000)


def demo_contacts_load() -> int:
    """Give every subject without one a demo contact (an address at example.org, which mail
    never reaches), so that a person can prove who they are by a one-time code. Idempotent;
    returns how many contacts were added."""
    from records.binding import mask_email

    missing = Subject.objects.filter(contact__isnull=True).only("id", "public_id")
    contacts = []
    for subject in missing.iterator(chunk_size=1_000):
        email = f"subject-{subject.public_id.hex[:12]}@example.org"
        contacts.append(
            SubjectContact(
                subject=subject,
                email_encrypted=identifier_encrypt(email),
                email_masked=mask_email(email),
            )
        )
    SubjectContact.objects.bulk_create(contacts, batch_size=1_000)
    return len(contacts)
