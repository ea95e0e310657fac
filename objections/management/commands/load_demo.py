import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import roles
from accounts.models import User
from objections.models import Case
from objections.services import case_file, case_route, workflow_definitions_sync
from records import demo
from records.crypto import identifier_hash
from records.imports import import_batch_run
from records.models import Agency, CreditRecord, ImportBatch, Subject
from records.selectors import subject_list_for_user
from records.services import subject_access_grant

DEMO_USERS = [
    # username, role, password, agency code
    ("citizen", roles.CITIZEN, "citizen-demo-2026", None),
    ("company-rep", roles.CITIZEN, "company-demo-2026", None),
    ("caseworker", roles.CASEWORKER, "caseworker-demo-2026", "shanghai-credit-centre"),
    ("agency-caseworker", roles.CASEWORKER, "agency-caseworker-demo-2026", "shanghai-market"),
    ("supervisor", roles.SUPERVISOR, "supervisor-demo-2026", "shanghai-credit-centre"),
    ("auditor", roles.AUDITOR, "auditor-demo-2026", None),
    ("admin", roles.ADMINISTRATOR, "admin-demo-2026", "shanghai-credit-centre"),
    ("agency-system", roles.AGENCY_SYSTEM, "agency-demo-2026", "shanghai-market"),
]
# Staff for every body of every built-in workflow, so that each can be walked end to end:
# per jurisdiction, the credit centre's caseworker and supervisor, the market regulator's
# caseworker and head, the DRC's and the PBoC branch's caseworker and supervisor, and the
# credit service agencies' caseworker and supervisor. Usernames are <jurisdiction>-<body>-<role>,
# passwords <username>-2026 (the Shanghai centre and market regulator have the users above too).
_BODIES = [
    # body in the username, agency code suffix, jurisdictions
    ("centre", "credit-centre", ("shanghai", "zhejiang", "hubei", "national")),
    ("market", "market", ("shanghai", "zhejiang", "hubei", "national")),
    ("drc", "drc", ("shanghai", "zhejiang", "hubei", "national")),
    ("pboc", "pboc", ("shanghai", "zhejiang", "hubei", "national")),
    ("credit-service", "credit-service", ("shanghai", "national")),
]
DEMO_STAFF = [
    (f"{place}-{body}-{role}", role, f"{place}-{body}-{role}-2026", f"{place}-{suffix}")
    for body, suffix, places in _BODIES
    for place in places
    for role in (roles.CASEWORKER, roles.SUPERVISOR)
]
DEMO_SEED = 20261126


# It lives in the objections app because it loads every app's demo data (records must not
# import objections).
class Command(BaseCommand):
    help = "Load demo jurisdictions, agencies, catalogue, subjects, records and one user per role."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subjects", type=int, default=2_000)
        parser.add_argument("--records-per-agency", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("Demo data is for development machines only.")
        with transaction.atomic():
            demo.registry_load()
            users = self._users()
        for row in workflow_definitions_sync():
            self.stdout.write(f"workflow {row.key} v{row.version} stored")
        subjects = demo.subjects_generate(options["subjects"], seed=DEMO_SEED)
        citizen_subject, company_subject = (
            subjects[0],
            next(s for s in subjects if s.kind == "organisation"),
        )
        # Providing units first, so that adding credit service agencies left their data as it was.
        agencies = [
            *Agency.objects.filter(kind=Agency.Kind.PROVIDING_UNIT).select_related("jurisdiction"),
            *Agency.objects.filter(kind=Agency.Kind.CREDIT_SERVICE).select_related("jurisdiction"),
        ]
        with tempfile.TemporaryDirectory() as folder:
            for offset, agency in enumerate(agencies):
                if CreditRecord.objects.filter(agency=agency).exists():
                    # Loaded before: re-running changes nothing (the dates follow the day of the
                    # first load, so a second import on a later day would make new versions).
                    self.stdout.write(f"{agency.code}: already loaded")
                    continue
                path = Path(folder) / f"{agency.code}.csv"
                demo.records_csv_write(
                    path,
                    agency=agency,
                    records=options["records_per_agency"],
                    # every agency has a record about the demo citizen and the demo company
                    subjects=[citizen_subject, company_subject, *subjects[2 + offset * 100 :]],
                    seed=DEMO_SEED + offset,
                )
                with path.open("rb") as stream:
                    report = import_batch_run(
                        agency=agency,
                        stream=stream,
                        file_name=path.name,
                        actor=None,
                        source=ImportBatch.Source.COMMAND,
                    )
                self.stdout.write(
                    f"{agency.code}: {report.rows_inserted} inserted, "
                    f"{report.rows_unchanged} unchanged, {report.rows_rejected} rejected"
                )
        # A contact for every subject, so that a new account can prove who it is by a code.
        self.stdout.write(f"{demo.demo_contacts_load()} subject contacts added")
        for username, generated in (("citizen", citizen_subject), ("company-rep", company_subject)):
            subject = Subject.objects.get(
                identifier_hash=identifier_hash(generated.kind, generated.identifier)
            )
            subject_access_grant(subject=subject, user=users[username], actor=None)
        self._demo_case(users["citizen"])
        self.stdout.write(self.style.SUCCESS("Demo data loaded. Demo logins (user / password):"))
        for username, role, password, _agency in DEMO_USERS:
            self.stdout.write(f"  {role:<14} {username:<14} {password}")
        self.stdout.write(
            f"  and {len(DEMO_STAFF)} staff of every body, e.g. zhejiang-drc-supervisor / "
            "zhejiang-drc-supervisor-2026 (README: 'Demo staff')"
        )

    def _demo_case(self, citizen: User) -> None:
        """One open Shanghai objection of the demo citizen, routed now, so that the demo shows
        running deadlines on whatever day it is loaded."""
        if Case.objects.filter(filed_by=citizen).exists():
            return
        record = (
            CreditRecord.objects.filter(
                subject__in=subject_list_for_user(user=citizen),
                agency__jurisdiction__code="shanghai",
                status=CreditRecord.Status.PUBLISHED,
            )
            .order_by("id")
            .first()
        )
        if record is None:
            return
        case = case_file(
            actor=citizen,
            record=record,
            kind=Case.Kind.OBJECTION,
            grounds=Case.Grounds.INACCURATE,
            statement="处罚决定书记载的违法事实与实际不符。",
            requested_remedy=Case.Remedy.CORRECT,
            fields_objected=["facts"],
        )
        case = case_route(case_id=case.pk)
        self.stdout.write(f"demo case {case.reference}: {case.state}, next due {case.next_due_on}")

    def _users(self) -> dict[str, User]:
        users = {}
        for username, role, password, agency_code in [*DEMO_USERS, *DEMO_STAFF]:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User(username=username)
                user.set_password(password)
            user.agency = Agency.objects.get(code=agency_code) if agency_code else None
            user.is_staff = role == roles.ADMINISTRATOR
            user.is_superuser = role == roles.ADMINISTRATOR
            user.save()
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
            users[username] = user
        return users
